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
also gives such a model its ``generation_config`` again.
"""

from __future__ import annotations

import types
from typing import Any

from hotfix import Finding, Shims


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
    shims.on_subclass(module.PreTrainedModel, _adapt, exclude=("transformers.",))


def probe_generation_mixin(module: types.ModuleType) -> Finding:
    from transformers.generation import GenerationMixin

    if issubclass(module.PreTrainedModel, GenerationMixin):
        return False, "PreTrainedModel still inherits GenerationMixin"
    return True, "PreTrainedModel no longer inherits GenerationMixin"


def _add_generation_mixin(cls: type, shims: Shims) -> None:
    from transformers.generation import GenerationMixin

    if "prepare_inputs_for_generation" not in vars(cls) or issubclass(cls, GenerationMixin):
        return
    original = cls.__bases__
    cls.__bases__ = (*original, GenerationMixin)

    def undo() -> str | None:
        if cls.__bases__ != (*original, GenerationMixin):
            return f"{cls.__qualname__}.__bases__ changed after hotfix extended it; left as it is"
        cls.__bases__ = original
        return None

    shims.record(f"{cls.__module__}.{cls.__qualname__}.__bases__ + GenerationMixin", undo)


def apply_generation_mixin(module: types.ModuleType, shims: Shims) -> None:
    shims.on_subclass(module.PreTrainedModel, _add_generation_mixin, exclude=("transformers.",))
