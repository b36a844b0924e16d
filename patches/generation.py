"""``GenerationMixin._extract_past_from_model_output``: return changed, keyword removed, method removed.

ChatGLM2/3-era remote code overrides ``_update_model_kwargs_for_generation``
and calls ``self._extract_past_from_model_output(outputs,
standardize_cache_format=standardize_cache_format)``, expecting the cache
back. transformers changed that method three times:

* 4.42 made it return ``(cache_name, cache)``: ChatGLM3 code stored the tuple
  as its cache and generated garbage, silently;
* 4.44 removed the keyword: ``TypeError: GenerationMixin._extract_past_from_model_output()
  got an unexpected keyword argument 'standardize_cache_format'``
  (zai-org/GLM-4#439);
* 4.49 removed the method: ``AttributeError: 'ChatGLMForConditionalGeneration'
  object has no attribute '_extract_past_from_model_output'`` (zai-org/GLM-4#715,
  huggingface/transformers#39336).

2024 GLM-4 code was written for 4.42 and unpacks ``cache_name, cache = ...``.
The shim restores the method with the 4.42 contract, ``(name, cache)``, which
transformers' own 4.42-4.48 code unpacks too, accepting the old keyword.
ChatGLM-era code gets the bare cache: when a model class that is not
transformers' own is defined, each of its functions whose calls of the
method are none unpacked into two names (read from its bytecode, once)
calls ``_hotfix_extract_past`` instead, which returns the cache alone. Nothing inspects frames while the model
generates.

**G6: ``generate()`` always passes a ``DynamicCache`` (4.54; tuples rejected in 5.0).**
Until 4.53, ``generate`` created a cache object only for models that declared
``_supports_cache_class = True``; every other model received
``past_key_values=None`` on the first step and got back, on each next step,
whatever it had returned (the legacy tuple format). From 4.54 every model gets
a ``DynamicCache``, which 2023 remote code indexes as ``past_key_values[i]``
or unpacks as tuples, and which needs config fields legacy configs do not
have (``num_hidden_layers``). The shim restores the old rule for legacy model
classes: one that does not declare ``_supports_cache_class = True`` is treated
like the models that build their cache in ``prepare_inputs_for_generation``
(transformers' own escape for Mamba-like models), so ``generate`` leaves the
cache to the model, as 4.x did.

**G15: generate() hands prepare_inputs_for_generation keywords 4.38 did not (4.39).**
From 4.39 ``generate`` keeps ``cache_position`` among the model keywords it passes
on each step, from 5.0 it passes ``is_first_iteration`` and from 5.23
``next_sequence_length``. A legacy override
that forwards every keyword it gets into the model (OLMo's ``hf_olmo``:
``model_inputs.update(kwargs)``) then calls a ``forward`` that takes neither::

    TypeError: OLMoForCausalLM.forward() got an unexpected keyword argument 'cache_position'

For legacy classes that override ``prepare_inputs_for_generation``, the shim
removes from its result those of these keywords that the class's ``forward``
does not take (nor ``**kwargs``). A forward that takes them gets them.
"""

from __future__ import annotations

import inspect
import types
import weakref
from typing import Any

from hotfix.authoring import (
    Finding,
    Shims,
    is_legacy,
    on_legacy_subclass,
    redirect_legacy_calls,
    result_unpacked_at,
    takes,
)

_CACHE_NAMES = ("past_key_values", "mems", "past_buckets_states", "cache_params")


def _past_from(outputs: Any) -> tuple[str, Any]:
    """``(cache name, cache)``; like upstream, the name is ``past_key_values`` when the output holds no cache.

    From 5.24 model outputs name the field ``cache``; legacy callers store the
    result under the name they get back and read it as ``past_key_values``.
    """
    for name in _CACHE_NAMES:
        if name in outputs:
            return name, getattr(outputs, name)
    if "cache" in outputs:
        return "past_key_values", outputs["cache"]
    return "past_key_values", None


def extract_past_from_model_output(self: Any, outputs: Any, standardize_cache_format: bool = False) -> tuple[str, Any]:
    """``(name, cache)`` from a model output (the contract of 4.42-4.48; the keyword of 4.43 and before)."""
    name, past = _past_from(outputs)
    if standardize_cache_format and past is not None and hasattr(self, "_convert_to_standard_cache"):
        past = self._convert_to_standard_cache(past, batch_size=outputs.logits.shape[0])
    return name, past


def _extract_past(self: Any, outputs: Any, standardize_cache_format: bool = False) -> Any:
    """The cache alone (the contract of 4.41 and before), for legacy code that does not unpack a pair."""
    return extract_past_from_model_output(self, outputs, standardize_cache_format)[1]


_BARE = "_hotfix_extract_past"


def _not_unpacked(code: types.CodeType, offset: int) -> bool:
    return not result_unpacked_at(code, offset, 2)


class _Outputs(dict[str, Any]):
    """The smallest stand-in for a ``ModelOutput``: membership and attribute access."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def probe(module: types.ModuleType) -> Finding:
    from transformers.generation.utils import GenerationMixin as mixin

    method = getattr(mixin, "_extract_past_from_model_output", None)
    if method is None:
        return True, "GenerationMixin._extract_past_from_model_output is missing"
    marker = object()
    try:
        result = method(mixin, _Outputs(past_key_values=marker), standardize_cache_format=False)
    except TypeError as error:
        return True, f"it no longer accepts standardize_cache_format ({error})"
    if result is not marker:
        return True, "it returns (cache_name, cache) where ChatGLM-era callers expect the cache"
    return False, "it accepts standardize_cache_format and returns the cache"


def apply(module: types.ModuleType, shims: Shims) -> None:
    from transformers.generation.utils import GenerationMixin

    shims.restore(GenerationMixin, "_extract_past_from_model_output", extract_past_from_model_output, "method")
    shims.restore(GenerationMixin, _BARE, _extract_past, "method")

    def adapt(cls: type, class_shims: Shims) -> None:
        # Any model class but transformers' own: calling the method without unpacking it is the old contract.
        redirect_legacy_calls(class_shims, cls, "_extract_past_from_model_output", _BARE, when=_not_unpacked)

    on_legacy_subclass(shims, module.PreTrainedModel, adapt)


# -- G6: generate() gives every model a DynamicCache (4.54) -------------------------


def _declares_cache_support(cls: Any) -> bool:
    return bool(getattr(cls, "_supports_cache_class", False))


def probe_default_cache(module: types.ModuleType) -> Finding:
    mixin = module.GenerationMixin
    if not hasattr(mixin, "_supports_default_dynamic_cache") or not hasattr(mixin, "_prepare_cache_for_generation"):
        return False, "generate has no default-cache decision to adapt"
    names = set(mixin._prepare_cache_for_generation.__code__.co_names)
    names |= set(mixin._supports_default_dynamic_cache.__func__.__code__.co_names)
    if "_supports_cache_class" in names:
        return False, "generate still creates a cache only for models with _supports_cache_class"
    return True, "generate gives every model a DynamicCache, legacy tuple-cache models included"


def apply_default_cache(module: types.ModuleType, shims: Shims) -> None:
    def make(function: Any) -> Any:
        def _supports_default_dynamic_cache(cls: Any) -> Any:
            if is_legacy(cls.__module__) and not _declares_cache_support(cls):
                if not shims.marked:
                    shims.mark_used(f"{cls.__name__} gets no DynamicCache from generate()")
                return False
            return function(cls)

        return _supports_default_dynamic_cache

    shims.replace(module.GenerationMixin, "_supports_default_dynamic_cache", make)


# -- G11: generate() makes position_ids for legacy prepare_inputs_for_generation (5.x) --


def probe_position_ids(module: types.ModuleType) -> Finding:
    if hasattr(module.GenerationMixin, "_prepare_position_ids_for_generation"):
        return True, "generate() makes position_ids for every model whose forward takes them"
    return False, "generate() passes position_ids only when the caller gives them"


def _legacy_prepare(model: Any) -> bool:
    """A prepare_inputs_for_generation of legacy code that does it all itself (does not call super()'s)."""
    prepare = getattr(type(model), "prepare_inputs_for_generation", None)
    if not is_legacy(getattr(prepare, "__module__", "")):
        return False
    code = getattr(prepare, "__code__", None)
    return code is not None and "prepare_inputs_for_generation" not in code.co_names


def apply_position_ids(module: types.ModuleType, shims: Shims) -> None:
    def make(function: Any) -> Any:
        def _prepare_position_ids_for_generation(self: Any, inputs_tensor: Any, model_kwargs: Any) -> Any:
            # Legacy prepare_inputs_for_generation makes (and slices) its own position_ids when none are given;
            # given full-length ones it passes them on unsliced. Give none, as 4.x did.
            if _legacy_prepare(self):
                if not shims.marked:
                    shims.mark_used(f"{type(self).__name__}.prepare_inputs_for_generation makes its own position_ids")
                return None
            return function(self, inputs_tensor, model_kwargs)

        return _prepare_position_ids_for_generation

    shims.replace(module.GenerationMixin, "_prepare_position_ids_for_generation", make)

    def make_expand(function: Any) -> Any:
        def _expand_inputs_for_generation(self: Any, *args: Any, **kwargs: Any) -> Any:
            # generate() stored the None given above under "position_ids"; legacy code tests for the key.
            if "position_ids" in kwargs and kwargs["position_ids"] is None and _legacy_prepare(self):
                del kwargs["position_ids"]
            return function(self, *args, **kwargs)

        return _expand_inputs_for_generation

    shims.replace(module.GenerationMixin, "_expand_inputs_for_generation", make_expand)


# -- G12: generate() drops an all-ones attention mask (5.23) -----------------------


def _legacy_update_kwargs(model: Any) -> bool:
    """A legacy class in the model's MRO overrides _update_model_kwargs_for_generation (the ChatGLM shape)."""
    return any(
        "_update_model_kwargs_for_generation" in vars(klass) and is_legacy(klass.__module__)
        for klass in type(model).__mro__
    )


def probe_dropped_mask(module: types.ModuleType) -> Finding:
    generate = inspect.unwrap(module.GenerationMixin.generate)
    if "_mask_length" in getattr(generate, "__code__", types.SimpleNamespace(co_names=())).co_names:
        return True, "generate() replaces an all-ones attention_mask with None"
    return False, "generate() keeps the attention_mask it makes"


def apply_dropped_mask(module: types.ModuleType, shims: Shims) -> None:
    def make(function: Any) -> Any:
        def _expand_inputs_for_generation(self: Any, *args: Any, **kwargs: Any) -> Any:
            # Called right after generate() dropped the mask: legacy code gets the
            # all-ones mask of the prompt that 4.x always passed (and tested for).
            if (
                "attention_mask" in kwargs
                and kwargs["attention_mask"] is None
                and (_legacy_update_kwargs(self) or _legacy_prepare(self))
            ):
                import torch

                prompt = kwargs.get("inputs_embeds")
                if prompt is None:
                    prompt = kwargs["input_ids"] if "input_ids" in kwargs else args[0] if args else None
                if prompt is not None:
                    if not shims.marked:
                        shims.mark_used(f"{type(self).__name__} got the all-ones attention mask back")
                    kwargs["attention_mask"] = torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device)
            return function(self, *args, **kwargs)

        return _expand_inputs_for_generation

    shims.replace(module.GenerationMixin, "_expand_inputs_for_generation", make)


# -- G13: prepare_inputs_for_generation gets the cache as cache= (5.24) -------------


def probe_cache_keyword(module: types.ModuleType) -> Finding:
    from transformers.generation.utils import GenerationMixin

    prepare = GenerationMixin.prepare_inputs_for_generation
    if takes(prepare, "cache") and not takes(prepare, "past_key_values"):
        return True, "generate() passes the cache to prepare_inputs_for_generation as cache="
    return False, "prepare_inputs_for_generation takes past_key_values"


def _wrap_legacy_prepare(cls: type, shims: Shims) -> None:
    prepare = vars(cls).get("prepare_inputs_for_generation")
    if not isinstance(prepare, types.FunctionType) or not is_legacy(cls.__module__):
        return
    if not takes(prepare, "past_key_values") or takes(prepare, "cache"):
        return

    def make(function: Any) -> Any:
        def prepare_inputs_for_generation(self: Any, *args: Any, **kwargs: Any) -> Any:
            if "cache" in kwargs:
                if not shims.marked:
                    shims.mark_used(
                        f"{type(self).__name__}.prepare_inputs_for_generation got its cache as past_key_values"
                    )
                cache = kwargs.pop("cache")
                # A legacy _update_model_kwargs_for_generation stores the new cache
                # as past_key_values: that one is current; "cache" is the first one.
                if kwargs.get("past_key_values") is None and len(args) < 2:
                    kwargs["past_key_values"] = cache
            return function(self, *args, **kwargs)

        return prepare_inputs_for_generation

    shims.replace(cls, "prepare_inputs_for_generation", make)


_PAST_ONLY: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def _forward_takes_past_only(model: Any) -> bool:
    """Whether the model's forward is legacy code taking past_key_values and not cache (per class, once)."""
    cls = type(model)
    answer = _PAST_ONLY.get(cls)
    if answer is None:
        forward = cls.forward
        answer = _PAST_ONLY[cls] = (
            is_legacy(getattr(forward, "__module__", ""))
            and takes(forward, "past_key_values")
            and not takes(forward, "cache")
        )
    return answer


def apply_cache_keyword(module: types.ModuleType, shims: Shims) -> None:
    from transformers.generation.utils import GenerationMixin

    on_legacy_subclass(shims, module.PreTrainedModel, _wrap_legacy_prepare)

    def make(function: Any) -> Any:
        def prepare_inputs_for_generation(self: Any, *args: Any, **kwargs: Any) -> Any:
            # transformers' own prepare serving a legacy model (one whose override calls super()'s).
            inputs = function(self, *args, **kwargs)
            if isinstance(inputs, dict) and "cache" in inputs and _forward_takes_past_only(self):
                if not shims.marked:
                    shims.mark_used(f"{type(self).__name__}.forward got its cache as past_key_values")
                inputs["past_key_values"] = inputs.pop("cache")
            return inputs

        return prepare_inputs_for_generation

    shims.replace(GenerationMixin, "prepare_inputs_for_generation", make)


# -- G15: generate() passes cache_position, is_first_iteration, next_sequence_length (4.39+) --

GENERATE_KEYWORDS = ("cache_position", "next_sequence_length", "is_first_iteration")


def probe_generate_keywords(module: types.ModuleType) -> Finding:
    from transformers.generation.utils import GenerationMixin as mixin

    passed = []
    update = getattr(mixin._update_model_kwargs_for_generation, "__code__", None)
    if update is not None and "cache_position" in update.co_consts:
        passed.append("cache_position")
    passed += [key for key in GENERATE_KEYWORDS[1:] if takes(mixin.prepare_inputs_for_generation, key)]
    if passed:
        return True, f"generate() passes {', '.join(passed)} to prepare_inputs_for_generation"
    return False, "generate() passes prepare_inputs_for_generation the keywords 4.38 did"


_NOT_TAKEN: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _not_taken(cls: type) -> tuple[str, ...]:
    """The generate() keywords the class's forward takes neither by name nor through ``**kwargs`` (once per class)."""
    answer = _NOT_TAKEN.get(cls)
    if answer is None:
        forward = getattr(cls, "forward", None)
        answer = _NOT_TAKEN[cls] = tuple(
            key
            for key in GENERATE_KEYWORDS
            if forward is not None and not takes(forward, key, var_keyword=True, unreadable=True)
        )
    return answer


def _drop_generate_keywords(cls: type, shims: Shims) -> None:
    prepare = vars(cls).get("prepare_inputs_for_generation")
    if not isinstance(prepare, types.FunctionType) or not is_legacy(cls.__module__):
        return

    def make(function: Any) -> Any:
        def prepare_inputs_for_generation(self: Any, *args: Any, **kwargs: Any) -> Any:
            inputs = function(self, *args, **kwargs)
            if isinstance(inputs, dict):
                for key in _not_taken(type(self)):
                    if key in inputs:
                        if not shims.marked:
                            shims.mark_used(f"{type(self).__name__}.forward does not get generate()'s {key}")
                        del inputs[key]
            return inputs

        return prepare_inputs_for_generation

    shims.replace(cls, "prepare_inputs_for_generation", make)


def apply_generate_keywords(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _drop_generate_keywords)
