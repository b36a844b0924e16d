"""Legacy model classes, adapted as they are defined.

**M1: ``_tied_weights_keys`` must be a dict ``{target: source}`` from transformers 5.0.**

Legacy models declare ``_tied_weights_keys = ["lm_head.weight"]``: a list of
the parameters tied to the input embeddings. transformers 5.0 reads it as a
mapping, and building such a model fails in ``post_init()`` with::

    AttributeError: 'list' object has no attribute 'keys'

(huggingface/transformers#44861, LG-AI-EXAONE/EXAONE-3.5#7; vLLM, unsloth and
NVIDIA Model-Optimizer each carry their own copy of this fix).

The shim acts on classes as they are defined: a legacy subclass of
``PreTrainedModel`` whose own ``_tied_weights_keys`` is a list gets a
descriptor in its place that, on each instance, maps every listed parameter
to the parameter name of that instance's input embedding weight. A key that
*is* the input embedding is never mapped to itself (that would drop the
tensor at save time); whether weights are tied at all is still decided by
``config.tie_word_embeddings``, which transformers checks before reading
the mapping. The list stays visible on the class, so code that reads
``cls._tied_weights_keys`` still sees what it declared.

**G7: ``PreTrainedModel`` no longer inherits ``GenerationMixin`` (4.52).**
Remote code written before that defines ``prepare_inputs_for_generation`` on
its model and calls ``model.generate(...)``, which fails with::

    AttributeError: 'InternLM2ForCausalLM' object has no attribute 'generate'

(OpenGVLab/InternVL#1068). The shim appends ``GenerationMixin`` to the bases
of a legacy class (defined outside transformers) that defines
``prepare_inputs_for_generation`` itself and does not inherit the mixin, which
is where 4.x had it in the MRO: after the model classes. transformers then
also gives such a model its ``generation_config`` again. The class's
``generate`` becomes a thin wrapper (around its own ``generate``, if it has
one) that counts the calls under way: ``hotfix.disable()`` while a model is
generating leaves the mixin in place until the last of them returns.

**M2 (part): remote ``_init_weights`` re-initialises loaded weights (5.0 to 5.12).**
transformers 5.0 runs ``initialize_weights()`` after loading and relies on an
``_is_hf_initialized`` flag on loaded tensors that its own ``init.*``
functions check. Legacy ``_init_weights`` writes through
``module.weight.data.normal_(...)``, which sees no flag: every loaded weight is
silently replaced by random values and the model produces garbage with no
error. Upstream fixed it for custom code in a later 5.x (``_initialize_weights``
skips a custom-code module whose own parameters and buffers were all loaded);
the shim does the same for legacy classes on the versions without that fix,
and for a module with some loaded and some missing tensors it puts the loaded
values back after the legacy initialiser ran (4.x initialised only what was
missing).
"""

from __future__ import annotations

import functools
import threading
import types
from typing import Any, ClassVar

from hotfix.authoring import (
    Finding,
    Shims,
    is_legacy,
    on_legacy_subclass,
    revert_incomplete,
    takes,
    wrap_outermost_init,
)


class LegacyTiedWeightsKeys:
    """Stands where a legacy class declared a list: the list on the class, a dict on instances."""

    __slots__ = ("keys",)

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.keys
        source = _input_embedding_weight(instance)
        if source is None:
            return {}
        return {key: source for key in self.keys if key != source}


def _input_embedding_weight(model: Any) -> str | None:
    try:
        embedding = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    weight = getattr(embedding, "weight", None)
    if weight is None:
        return None
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if parameter is weight:
            return str(name)
    return None


def probe(module: types.ModuleType) -> Finding:
    method = getattr(module.PreTrainedModel, "get_expanded_tied_weights_keys", None)
    if method is None:
        return False, "PreTrainedModel has no get_expanded_tied_weights_keys: lists are still read as lists"
    return True, "PreTrainedModel reads _tied_weights_keys as a {target: source} mapping"


def _adapt(cls: type, shims: Shims) -> None:
    declared = vars(cls).get("_tied_weights_keys")
    if isinstance(declared, (list, tuple)) and all(isinstance(key, str) for key in declared):
        shims.set(cls, "_tied_weights_keys", LegacyTiedWeightsKeys(list(declared)))


def apply(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _adapt)


def probe_generation_mixin(module: types.ModuleType) -> Finding:
    from transformers.generation import GenerationMixin

    if issubclass(module.PreTrainedModel, GenerationMixin):
        return False, "PreTrainedModel still inherits GenerationMixin"
    return True, "PreTrainedModel no longer inherits GenerationMixin"


class _GenerationBase:
    """``GenerationMixin`` appended to one legacy class's bases, and the ``generate()`` calls running on it.

    ``disable()`` while a model of the class is in ``generate()`` (another
    thread, a streamer) must not take the mixin away mid-call: the next mixin
    method that ``generate()`` calls would be missing. A wrapper set as the
    class's ``generate`` (around its own, when it defines one) counts the
    calls, and the bases go back when the last one returns.
    """

    def __init__(self, cls: type) -> None:
        from transformers.generation import GenerationMixin

        self.cls: type = cls
        self.original: tuple[type, ...] = cls.__bases__
        self.mixin: Any = GenerationMixin
        self.lock = threading.Lock()
        self.running = 0
        self.pending = False  # disable() came while a generate() was running
        self.own: Any = None

    def extend(self) -> None:
        cls: Any = self.cls
        own = self.own = vars(cls).get("generate")  # a legacy generate() of its own, calling super().generate()
        cls.__bases__ = (*self.original, self.mixin)
        calls = self

        @functools.wraps(own if own is not None else self.mixin.generate)
        def generate(model: Any, *args: Any, **kwargs: Any) -> Any:
            with calls.lock:
                calls.running += 1
            try:
                if own is not None:
                    return own(model, *args, **kwargs)
                return getattr(super(cls, model), "generate")(*args, **kwargs)  # noqa: B009 - typed as object
            finally:
                warning = None
                with calls.lock:
                    calls.running -= 1
                    if calls.running == 0 and calls.pending:
                        warning = calls.restore()
                if warning is not None:  # the deferred undo: disable() has returned long ago
                    revert_incomplete("g7-generation-mixin", warning)

        generate.__hotfix_generation_base__ = self  # type: ignore[attr-defined]
        type.__setattr__(cls, "generate", generate)

    def undo(self) -> str | None:
        with self.lock:
            if self.running:
                self.pending = True  # the last generate() to return restores the bases
                return None
            return self.restore()

    def restore(self) -> str | None:
        """The class as it was defined (called under the lock)."""
        cls = self.cls
        self.pending = False
        if getattr(vars(cls).get("generate"), "__hotfix_generation_base__", None) is self:
            if self.own is None:
                type.__delattr__(cls, "generate")
            else:
                type.__setattr__(cls, "generate", self.own)
        if cls.__bases__ != (*self.original, self.mixin):
            return f"{cls.__qualname__}.__bases__ changed after hotfix extended it; left as it is"
        cls.__bases__ = self.original
        return None


def _add_generation_mixin(cls: type, shims: Shims) -> None:
    from transformers.generation import GenerationMixin

    if "prepare_inputs_for_generation" not in vars(cls):
        return
    wrapper = vars(cls).get("generate")
    base = getattr(wrapper, "__hotfix_generation_base__", None)
    if isinstance(base, _GenerationBase) and base.pending:
        with base.lock:
            base.pending = False  # enabled again while a generate() from before disable() runs: the bases stay
    elif issubclass(cls, GenerationMixin):
        return
    else:
        base = _GenerationBase(cls)
        base.extend()
    shims.record(f"{cls.__module__}.{cls.__qualname__}.__bases__ + GenerationMixin", base.undo)


def _legacy_generative(cls: Any) -> bool:
    from transformers.generation import GenerationMixin

    return issubclass(cls, GenerationMixin) and any(
        "prepare_inputs_for_generation" in vars(klass) for klass in cls.__mro__ if is_legacy(klass.__module__)
    )


def apply_generation_mixin(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _add_generation_mixin)

    def make(function: Any) -> Any:
        def can_generate(cls: Any) -> bool:
            # can_generate() looks for GenerationMixin among a class's own bases and skips bases
            # named *PreTrainedModel*: a legacy ForCausalLM inheriting the mixin (given above) from its
            # XxxPreTrainedModel base (phi-1.5 MixFormer) would get no generation_config.
            return bool(function(cls)) or _legacy_generative(cls)

        return can_generate

    shims.replace(module.PreTrainedModel, "can_generate", make)


# -- M2: legacy _init_weights re-initialising loaded weights (5.0-5.12) -------------


def _is_legacy_model(model: Any) -> bool:
    return is_legacy(type(model).__module__)


def probe_init_weights(module: types.ModuleType) -> Finding:
    method = getattr(module.PreTrainedModel, "_initialize_weights", None)
    if method is None:
        return False, "PreTrainedModel._initialize_weights not found"
    if takes(method, "is_custom_code"):
        return False, "_initialize_weights already skips loaded modules of custom code"
    return True, "_initialize_weights runs legacy _init_weights over loaded weights"


def apply_init_weights(module: types.ModuleType, shims: Shims) -> None:
    import torch

    def make(function: Any) -> Any:
        def _initialize_weights(self: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
            if not _is_legacy_model(self) or getattr(target, "_is_hf_initialized", False):
                return function(self, target, *args, **kwargs)
            tensors = [*target.parameters(recurse=False), *(b for b in target.buffers(recurse=False) if b is not None)]
            loaded = [t for t in tensors if getattr(t, "_is_hf_initialized", False)]
            if tensors and len(loaded) == len(tensors):
                target._is_hf_initialized = True
                return None
            saved = [(t, t.detach().clone()) for t in loaded]
            result = function(self, target, *args, **kwargs)
            with torch.no_grad():
                for tensor, value in saved:
                    tensor.copy_(value)
            return result

        return _initialize_weights

    shims.replace(module.PreTrainedModel, "_initialize_weights", make)


# -- M23: legacy models with their own generate() get no generation_config (5.0) -----


def probe_generation_config(module: types.ModuleType) -> Finding:
    code = module.PreTrainedModel.can_generate.__func__.__code__
    if "generate" in code.co_names:  # 4.x up to 4.44 looked at cls.generate
        return False, "can_generate() still counts an overridden generate()"
    return True, "can_generate() ignores an overridden generate(): such models get no generation_config"


def _defines_generate(cls: type) -> bool:
    return any("generate" in vars(klass) for klass in cls.__mro__ if is_legacy(klass.__module__))


def _legacy_generation_config(config: Any) -> Any:
    """``GenerationConfig.from_model_config`` with the 4.x defaults filled in (5.x leaves unset values None)."""
    from transformers import GenerationConfig

    generation_config = GenerationConfig.from_model_config(config)
    defaults = getattr(GenerationConfig, "_get_default_generation_params", None)
    for name, value in (defaults() if defaults is not None else {}).items():
        if getattr(generation_config, name, None) is None:
            setattr(generation_config, name, value)
    return generation_config


def _give_generation_config(cls: type, shims: Shims) -> None:
    if "__init__" not in vars(cls) or not _defines_generate(cls):
        return

    def make(function: Any) -> Any:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            function(self, *args, **kwargs)
            if getattr(self, "generation_config", None) is None and getattr(self, "config", None) is not None:
                self.generation_config = _legacy_generation_config(self.config)

        return __init__

    shims.replace(cls, "__init__", make)


def apply_generation_config(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _give_generation_config)


# -- M20: legacy _set_gradient_checkpointing overrides get every_n_layers= (5.0) ------


def probe_gradient_checkpointing(module: types.ModuleType) -> Finding:
    if takes(module.PreTrainedModel._set_gradient_checkpointing, "every_n_layers"):
        return True, "gradient_checkpointing_enable passes every_n_layers= to _set_gradient_checkpointing overrides"
    return False, "_set_gradient_checkpointing takes no every_n_layers"


def _adapt_gradient_checkpointing(cls: type, shims: Shims) -> None:
    own = vars(cls).get("_set_gradient_checkpointing")
    if own is None:
        return
    if takes(own, "value") or takes(own, "every_n_layers", var_keyword=True):
        return  # the pre-4.35 format (transformers adapts it itself), already current, or takes **kwargs

    def make(function: Any) -> Any:
        def _set_gradient_checkpointing(self: Any, *args: Any, every_n_layers: int = 1, **kwargs: Any) -> Any:
            if every_n_layers != 1:
                raise ValueError(
                    f"{type(self).__name__}._set_gradient_checkpointing (legacy remote code) checkpoints every layer; "
                    f"every_n_layers={every_n_layers} cannot be honoured (hotfix patch m20)"
                )
            return function(self, *args, **kwargs)

        return _set_gradient_checkpointing

    shims.replace(cls, "_set_gradient_checkpointing", make)


def apply_gradient_checkpointing(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _adapt_gradient_checkpointing)


# -- M2: legacy models that never call post_init() (5.0) ------------------------------


def probe_post_init(module: types.ModuleType) -> Finding:
    if "all_tied_weights_keys" in module.PreTrainedModel.post_init.__code__.co_names:
        return True, "post_init() sets all_tied_weights_keys, which saving and loading read"
    return False, "post_init() sets no all_tied_weights_keys"


def _post_init_if_never_called(model: Any, _: None) -> None:
    if not hasattr(model, "all_tied_weights_keys"):
        model.post_init()


def _call_post_init(cls: type, shims: Shims) -> None:
    # post_init runs once, at the end of the outermost __init__ (super().__init__ chains nest), as a model that
    # calls it itself does.
    wrap_outermost_init(shims, cls, after=_post_init_if_never_called)


def apply_post_init(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _call_post_init)


# -- M2: legacy tie_weights(self) overrides called with missing_keys=, recompute_mapping= (5.0)


def probe_tie_weights(module: types.ModuleType) -> Finding:
    if takes(module.PreTrainedModel.tie_weights, "missing_keys"):
        return True, "tie_weights is called with missing_keys= and recompute_mapping="
    return False, "tie_weights takes no missing_keys"


def _forget_tied_missing(model: Any, missing_keys: set[str]) -> None:
    """Take parameters the legacy tie_weights tied to a loaded one out of *missing_keys*, as upstream's does."""
    groups: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    for names in groups.values():
        if len(names) > 1 and any(name not in missing_keys for name in names):
            missing_keys.difference_update(names)


def _adapt_tie_weights(cls: type, shims: Shims) -> None:
    own = vars(cls).get("tie_weights")
    if own is None or not callable(own) or takes(own, "missing_keys", var_keyword=True):
        return

    def make(function: Any) -> Any:
        def tie_weights(self: Any, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> Any:
            result = function(self)
            if missing_keys is not None:
                _forget_tied_missing(self, missing_keys)
            return result

        return tie_weights

    shims.replace(cls, "tie_weights", make)


def apply_tie_weights(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _adapt_tie_weights)


# -- M25: models are built on the meta device (5.0) -----------------------------------


def probe_meta_init(module: types.ModuleType) -> Finding:
    method = getattr(module.PreTrainedModel, "get_init_context", None)
    if method is None:
        return False, "PreTrainedModel.get_init_context not found"
    if "meta" not in method.__func__.__code__.co_consts:
        return False, "get_init_context does not build models on the meta device"
    return True, "get_init_context builds every model on the meta device"


class _ParametersOnMeta:
    """Parameters registered on this thread go to the meta device; buffers and plain tensors stay real.

    What 4.x did for every load with ``low_cpu_mem_usage`` or a ``device_map`` (accelerate's
    ``init_empty_weights(include_buffers=False)``): a module's ``__init__`` allocates one layer at a time
    and initialises it on meta, for free, and whatever it computes that is not a parameter (RoPE tables,
    masks, non-persistent buffers, tensor attributes) keeps its value. ``nn.Module.register_parameter`` is
    wrapped while any thread is inside; only the threads inside are affected.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _threads: ClassVar[dict[int, int]] = {}  # thread id -> depth
    _original: ClassVar[Any] = None

    def __enter__(self) -> None:
        import torch

        with self._lock:
            if not self._threads:
                type(self)._original = original = torch.nn.Module.register_parameter
                threads = self._threads
                meta = torch.device("meta")

                @functools.wraps(original)
                def register_parameter(module: Any, name: str, param: Any) -> None:
                    original(module, name, param)
                    if param is None or threading.get_ident() not in threads or param.device.type == "meta":
                        return
                    registered = module._parameters[name]
                    kind = type(registered)
                    if kind is torch.nn.Parameter:
                        moved = torch.nn.Parameter(registered.to(meta), requires_grad=registered.requires_grad)
                        moved.__dict__.update(registered.__dict__)
                    else:  # a parameter class of a quantization library: built as accelerate built it
                        kwargs = dict(registered.__dict__, requires_grad=registered.requires_grad)
                        moved = kind(registered.to(meta), **kwargs)
                    module._parameters[name] = moved

                torch.nn.Module.register_parameter = register_parameter
            ident = threading.get_ident()
            self._threads[ident] = self._threads.get(ident, 0) + 1

    def __exit__(self, *exc: object) -> None:
        import torch

        with self._lock:
            ident = threading.get_ident()
            self._threads[ident] -= 1
            if not self._threads[ident]:
                del self._threads[ident]
            if not self._threads:
                torch.nn.Module.register_parameter = type(self)._original
                type(self)._original = None


def apply_meta_init(module: types.ModuleType, shims: Shims) -> None:
    import torch

    meta = torch.device("meta")
    no_init_weights = getattr(getattr(module, "init", None), "no_init_weights", None)

    def make(function: Any) -> Any:
        def get_init_context(cls: Any, *args: Any, **kwargs: Any) -> Any:
            contexts = function(cls, *args, **kwargs)
            if not is_legacy(cls.__module__) or not any(_is_meta(context, meta) for context in contexts):
                return contexts
            if not shims.marked:
                shims.mark_used(f"{cls.__name__}: parameters on meta, buffers real")
            # Legacy code computes tensors in __init__ (RoPE tables, non-persistent buffers, plain tensor
            # attributes) that loading never fills in: only its parameters go on meta, as in 4.x. As on meta,
            # post_init() initialises nothing, so that loading initialises exactly the missing weights.
            contexts = [_ParametersOnMeta() if _is_meta(context, meta) else context for context in contexts]
            return [*contexts, no_init_weights()] if no_init_weights is not None else contexts

        return get_init_context

    shims.replace(module.PreTrainedModel, "get_init_context", make)
    if hasattr(module.PreTrainedModel, "_move_missing_keys_from_meta_to_device"):
        shims.replace(module.PreTrainedModel, "_move_missing_keys_from_meta_to_device", _keep_legacy_buffers)


def _is_meta(context: Any, meta: Any) -> bool:
    return isinstance(context, type(meta)) and context == meta


def _keep_legacy_buffers(function: Any) -> Any:
    """Loading replaces every non-persistent buffer, and every missing key, by ``torch.empty_like`` and leaves
    their values to ``_init_weights``, which legacy code does not write for buffers: keep the values its
    __init__ computed, as 4.x did (moved to the device and dtype loading chose)."""
    import torch

    def _move_missing_keys_from_meta_to_device(self: Any, missing_keys: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_legacy_model(self):
            return function(self, missing_keys, *args, **kwargs)
        missing = set(missing_keys)
        non_persistent = {name for name, _ in self.named_non_persistent_buffers()}
        kept = {name: buffer.detach().clone() for name, buffer in self.named_buffers()
                if (name in non_persistent or name in missing) and buffer.device.type != "meta"}  # fmt: skip
        result = function(self, missing_keys, *args, **kwargs)
        with torch.no_grad():
            for name, buffer in self.named_buffers():
                if name in kept and buffer.shape == kept[name].shape:
                    buffer.copy_(kept[name].to(buffer.device, buffer.dtype))
                    buffer._is_hf_initialized = True
        return result

    return _move_missing_keys_from_meta_to_device


# -- M33: the 4.x default tie of input and output embeddings (5.0) -----------------------


def _module_name(model: Any, module: Any) -> str | None:
    for name, candidate in model.named_modules(remove_duplicate=False):
        if candidate is module:
            return str(name)
    return None


def _default_tie(model: Any) -> dict[str, str]:
    """``{output weight: input weight}`` where 4.x tied them by default, else ``{}``.

    Named by module, not by parameter: once tied, both names hold one parameter.
    """
    try:
        output, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return {}
    weight, source = getattr(output, "weight", None), getattr(embedding, "weight", None)
    if weight is None or source is None or tuple(weight.shape) != tuple(source.shape):
        return {}
    target_name, source_name = _module_name(model, output), _module_name(model, embedding)
    if not target_name or not source_name or target_name == source_name:
        return {}
    return {f"{target_name}.weight": f"{source_name}.weight"}


class DefaultTiedWeightsKeys:
    """``_tied_weights_keys`` of a legacy class that declared none: the tie 4.x made by default, per instance."""

    __slots__ = ()

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return None
        config = instance.__dict__.get("config")
        if config is None or not getattr(config, "tie_word_embeddings", True):
            return None
        return _default_tie(instance) or None


def _declared_tied_keys(cls: type) -> Any:
    """What the class (or a base) declares as ``_tied_weights_keys``: the first in the MRO, as lookup finds it."""
    for klass in cls.__mro__:
        if "_tied_weights_keys" in vars(klass):
            return vars(klass)["_tied_weights_keys"]
    return None


def _adapt_default_tie(cls: type, shims: Shims) -> None:
    declared = _declared_tied_keys(cls)
    if declared is None:
        shims.set(cls, "_tied_weights_keys", DefaultTiedWeightsKeys())


def probe_default_tie(module: types.ModuleType) -> Finding:
    base = module.PreTrainedModel
    if not hasattr(base, "get_expanded_tied_weights_keys"):
        return False, "PreTrainedModel ties embeddings from config.tie_word_embeddings, which defaults to True"
    config_class = getattr(module, "PreTrainedConfig", None) or module.PretrainedConfig
    if hasattr(config_class(), "tie_word_embeddings"):
        return False, "configs still default tie_word_embeddings"
    return True, "a config that never set tie_word_embeddings no longer ties the output embedding to the input one"


def apply_default_tie(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, module.PreTrainedModel, _adapt_default_tie)

    def make(function: Any) -> Any:
        def get_expanded_tied_weights_keys(self: Any, *args: Any, **kwargs: Any) -> Any:
            mapping = function(self, *args, **kwargs)
            # A legacy config that never set tie_word_embeddings meant True (the 4.x default).
            if not mapping and isinstance(_declared_tied_keys(type(self)), DefaultTiedWeightsKeys):
                config = self.__dict__.get("config")
                if config is not None and not hasattr(config, "tie_word_embeddings"):
                    if not shims.marked:
                        shims.mark_used(f"{type(self).__name__}: lm_head tied to the input embedding")
                    mapping = dict(self._tied_weights_keys or {})
            return mapping

        return get_expanded_tied_weights_keys

    shims.replace(module.PreTrainedModel, "get_expanded_tied_weights_keys", make)
