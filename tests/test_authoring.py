"""hotfix.authoring: the primitives patches are written on, and the public surface itself."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import code_patch

import hotfix
from hotfix import authoring
from hotfix.authoring import Shims, on_legacy_subclass, takes, wrap_outermost_init


def test_every_public_name_is_documented_and_importable() -> None:
    for name in authoring.__all__:
        assert hasattr(authoring, name), name
    for name in ("on_legacy_subclass", "takes", "wrap_outermost_init"):
        assert getattr(authoring, name).__doc__, name


def test_takes() -> None:
    def plain(a: int, b: int = 0) -> None: ...
    def open_ended(a: int, **kwargs: Any) -> None: ...

    assert takes(plain, "b") and not takes(plain, "c")
    assert not takes(open_ended, "c") and takes(open_ended, "c", var_keyword=True)
    unreadable = object()  # no signature at all
    assert takes(unreadable, "c", unreadable=True) is True
    assert takes(unreadable, "c") is False


def _install(fakelib: Callable[..., Path], register: Callable[..., Any], apply: Callable[..., None]) -> None:
    fakelib()
    register(code_patch("authoring-test", apply))
    hotfix.enable()


def test_wrap_outermost_init_runs_once_per_instance_after_the_outermost_init(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    calls: list[tuple[str, str]] = []

    def apply(module: Any, shims: Shims) -> None:
        def adapt(cls: type, shims: Shims) -> None:
            wrap_outermost_init(
                shims, cls, before=lambda self: calls.append(("before", type(self).__name__)) or "state",
                after=lambda self, state: calls.append((state, type(self).__name__)),
            )  # fmt: skip

        on_legacy_subclass(shims, module.Base, adapt)

    _install(fakelib, register, apply)
    from fakelib.core import Base

    class Parent(Base):
        def __init__(self) -> None:
            self.parent = True

    class Child(Parent):
        def __init__(self) -> None:
            super().__init__()
            self.child = True

    child = Child()
    assert calls == [("before", "Child"), ("state", "Child")]
    assert vars(child) == {"parent": True, "child": True}  # the nesting count does not outlive __init__
    calls.clear()

    class Failing(Base):
        def __init__(self) -> None:
            raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        Failing()
    assert calls == [("before", "Failing")]  # after runs only when __init__ returned
    hotfix.disable()
    calls.clear()
    Child()
    assert calls == []


def test_on_legacy_subclass_leaves_the_librarys_own_classes_alone(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    seen: list[str] = []

    def apply(module: Any, shims: Shims) -> None:
        on_legacy_subclass(shims, module.Base, lambda cls, shims: seen.append(cls.__qualname__))

    _install(fakelib, register, apply)
    from fakelib.core import Base  # fakelib.core.Child exists: the library's own

    class Legacy(Base):
        pass

    assert seen == ["test_on_legacy_subclass_leaves_the_librarys_own_classes_alone.<locals>.Legacy"]


def test_bundled_patches_use_the_authoring_api(tmp_path: Path) -> None:
    # The lint test forbids private imports; this shows the recurring patterns went through the primitives.
    patches = Path(__file__).resolve().parent.parent / "patches"
    text = "\n".join(path.read_text(encoding="utf-8") for path in patches.glob("*.py"))
    assert 'exclude=("transformers.",)' not in text
    assert "inspect.signature" not in text
    assert "_init_depth" not in text
    example = textwrap.dedent(authoring.__doc__ or "")
    assert "from hotfix.authoring import" in example


def test_lists_name_answers_as_dir_does_without_calling_a_lazy_modules_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from hotfix.authoring import lists_name

    plain = types.ModuleType("plain_with_dir")
    plain.loaded = 1  # type: ignore[attr-defined]
    plain.__dir__ = lambda: ["loaded", "lazy_only"]  # type: ignore[method-assign]  # PEP 562
    assert lists_name(plain, "loaded") and lists_name(plain, "lazy_only") and not lists_name(plain, "absent")
    broken = types.ModuleType("broken_dir")
    broken.__dir__ = lambda: 1 / 0  # type: ignore[method-assign]
    assert not lists_name(broken, "anything")
    transformers = pytest.importorskip("transformers")
    names = dir(transformers)
    lazy = type(transformers)
    assert lazy.__name__ == "_LazyModule"

    def refused(self: Any) -> list[str]:
        raise AssertionError("dir() of a lazy module: 0.1-0.2 s each")

    monkeypatch.setattr(lazy, "__dir__", refused)
    for name in [*names[:: max(1, len(names) // 200)], "AutoModelForCausalLM", "PreTrainedModel"]:
        assert lists_name(transformers, name), name
    for name in ("AdamWeightDecay", "no_such_name", "modeling_attn_mask_utils_gone"):
        assert lists_name(transformers, name) == (name in names), name
