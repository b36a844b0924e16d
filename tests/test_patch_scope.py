"""Which classes the class-level shims of T5, T6 and G11 pick: only legacy code that relies on the old default.

These rules decide whether a shim changes anything for code that needs none,
so they are tested on stand-in classes, without transformers.
"""

from __future__ import annotations

from typing import Any

from hotfix._resources import ensure_patches_package

ensure_patches_package()

from hotfix._patches.generation import _legacy_prepare  # noqa: E402
from hotfix._patches.tokenizers import _inherits_default  # noqa: E402


class GenericBase:
    model_input_names = ["input_ids", "attention_mask"]


class ConcreteTokenizer(GenericBase):
    model_input_names = ["input_ids", "attention_mask"]


ConcreteTokenizer.__module__ = "transformers.models.concrete.tokenization_concrete"


def legacy(name: str, bases: tuple[type, ...], namespace: dict[str, Any] | None = None) -> type:
    return type(name, bases, {"__module__": "transformers_modules.repo.code", **(namespace or {})})


def test_only_legacy_classes_that_take_the_generic_default_are_picked() -> None:
    assert _inherits_default(legacy("OnGeneric", (GenericBase,)), "model_input_names", GenericBase)
    # A legacy tokenizer built on a concrete transformers tokenizer keeps that tokenizer's names.
    assert not _inherits_default(legacy("OnConcrete", (ConcreteTokenizer,)), "model_input_names", GenericBase)
    # One that declares its own names, directly or through a legacy parent, is left alone.
    own = legacy("Own", (GenericBase,), {"model_input_names": ["input_ids"]})
    assert not _inherits_default(own, "model_input_names", GenericBase)
    assert not _inherits_default(legacy("Child", (own,)), "model_input_names", GenericBase)
    # Classes outside remote code are never picked.
    mine = type("Mine", (GenericBase,), {"__module__": "my_package.tokenizer"})
    assert not _inherits_default(mine, "model_input_names", GenericBase)


class ModernBase:
    def prepare_inputs_for_generation(self, input_ids: Any, **kwargs: Any) -> dict[str, Any]:
        return {"input_ids": input_ids, **kwargs}


def _own_prepare(self: Any, input_ids: Any, past_key_values: Any = None, **kwargs: Any) -> dict[str, Any]:
    position_ids = kwargs.get("position_ids")
    return {"input_ids": input_ids, "position_ids": position_ids}


def _delegating_prepare(self: Any, input_ids: Any, **kwargs: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = super(type(self), self).prepare_inputs_for_generation(input_ids, **kwargs)
    return inputs


def test_generate_made_position_ids_are_withheld_only_from_legacy_self_contained_prepare() -> None:
    _own_prepare.__module__ = _delegating_prepare.__module__ = "transformers_modules.repo.code"
    assert _legacy_prepare(legacy("Old", (ModernBase,), {"prepare_inputs_for_generation": _own_prepare})())
    # Remote code that delegates to transformers' own prepare_inputs_for_generation gets 5.x behaviour.
    assert not _legacy_prepare(legacy("New", (ModernBase,), {"prepare_inputs_for_generation": _delegating_prepare})())
    assert not _legacy_prepare(ModernBase())
