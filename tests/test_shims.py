"""The recorded primitives, on plain objects: apply, then revert exactly."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import wrapt

import hotfix
from hotfix import Shims
from hotfix._shims import MISSING


def make_module() -> types.ModuleType:
    module = types.ModuleType("hotfix_test_target")

    class Base:
        def method(self, a: int, b: int = 1) -> tuple[str, int, int]:
            return ("method", a, b)

        @classmethod
        def build(cls, x: int) -> tuple[str, int]:
            return (cls.__name__, x)

    class Child(Base):
        pass

    def function(x: int, *, new_name: int = 0) -> int:
        return x + new_name

    module.Base, module.Child, module.function = Base, Child, function  # type: ignore[attr-defined]
    return module


def test_alias_and_revert_restore_the_namespace_exactly() -> None:
    module = make_module()
    before = dict(vars(module))
    shims = Shims("t")
    shims.alias(module, "old_name", module.function)
    assert module.old_name is module.function
    assert shims.changes[0].existed is False and shims.changes[0].original is MISSING
    assert shims.revert() == []
    assert vars(module) == before


def test_alias_over_an_existing_name_puts_the_same_object_back() -> None:
    module = make_module()
    original = module.function
    shims = Shims("t")
    shims.alias(module, "function", len)
    assert module.function is len
    shims.revert()
    assert module.function is original


@pytest.mark.parametrize("kind", ["method", "property", "classmethod", "staticmethod", "function"])
def test_restore_each_kind(kind: str) -> None:
    module = make_module()
    shims = Shims("t")
    if kind == "method":
        shims.restore(module.Base, "extra", lambda self, n: n * 2, kind)
        assert module.Child().extra(4) == 8
    elif kind == "property":
        shims.restore(module.Base, "extra", lambda self: 5, kind)
        assert module.Child().extra == 5
    elif kind == "classmethod":
        shims.restore(module.Base, "extra", lambda cls: cls.__name__, kind)
        assert module.Child.extra() == "Child"
    elif kind == "staticmethod":
        shims.restore(module.Base, "extra", lambda: "static", kind)
        assert module.Child().extra() == "static"
    else:
        shims.restore(module, "extra", lambda: "function", kind)
        assert module.extra() == "function"
    shims.revert()
    assert "extra" not in vars(module.Base) and "extra" not in vars(module)


def test_adapt_arguments_drops_renames_and_rewrites_positionals() -> None:
    module = make_module()
    original = vars(module)["function"]
    shims = Shims("t")
    shims.adapt_arguments(module, "function", drop=["legacy_flag"], rename={"old_name": "new_name"})
    assert module.function(1, legacy_flag=True) == 1
    assert module.function(1, old_name=2) == 3
    shims.revert()
    assert vars(module)["function"] is original
    with pytest.raises(TypeError, match="unexpected keyword argument 'legacy_flag'"):
        module.function(1, legacy_flag=True)

    def swap(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # args as the function sees them: self first for a method
        return args[:2], {"b": args[2]} if len(args) > 2 else kwargs

    shims.adapt_arguments(module.Base, "method", positional=swap)
    assert module.Base().method(1, 5) == ("method", 1, 5)
    shims.revert()


def test_adapter_on_an_inherited_method_is_removed_by_revert() -> None:
    module = make_module()
    shims = Shims("t")
    shims.adapt_arguments(module.Child, "method", drop=["gone"])
    assert module.Child().method(1, gone=1) == ("method", 1, 1)
    assert "method" in vars(module.Child)
    shims.revert()
    assert "method" not in vars(module.Child)


def test_wrap_a_classmethod_keeps_binding() -> None:
    module = make_module()
    shims = Shims("t")
    shims.wrap(module.Base, "build", lambda wrapped, instance, args, kwargs: ("wrapped", *wrapped(*args, **kwargs)))
    assert module.Child.build(2) == ("wrapped", "Child", 2)
    shims.revert()
    assert module.Child.build(2) == ("Child", 2)


def test_proxy_return_wraps_the_result() -> None:
    module = make_module()

    class Legacy(wrapt.ObjectProxy):  # type: ignore[misc]
        def legacy(self) -> str:
            return "legacy view"

    shims = Shims("t")
    shims.proxy_return(module.Base, "method", Legacy)
    result = module.Base().method(1)
    assert result == ("method", 1, 1) and isinstance(result, tuple) and result.legacy() == "legacy view"
    shims.revert()
    assert not hasattr(module.Base().method(1), "legacy")


def test_revert_keeps_a_foreign_wrapt_wrapper_and_points_it_at_the_original() -> None:
    module = make_module()
    original = vars(module)["function"]
    shims = Shims("t")
    shims.adapt_arguments(module, "function", drop=["legacy_flag"])
    calls: list[str] = []

    def observe(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append("foreign")
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "function", observe)
    foreign = vars(module)["function"]
    assert shims.revert() == []
    assert vars(module)["function"] is foreign
    assert foreign.__wrapped__ is original
    assert module.function(2) == 2 and calls == ["foreign"]


def test_revert_reports_what_it_cannot_undo() -> None:
    module = make_module()
    shims = Shims("t")
    shims.alias(module, "function", len)
    module.function = abs  # somebody else replaced hotfix's alias
    warnings = shims.revert()
    assert module.function is abs
    assert warnings and "replaced by someone else" in warnings[0]


def test_a_failing_undo_does_not_stop_the_others() -> None:
    module = make_module()
    shims = Shims("t")
    shims.alias(module, "a", 1)

    def boom() -> str | None:
        raise RuntimeError("boom")

    shims.record("broken", boom)
    warnings = shims.revert()
    assert "a" not in vars(module)
    assert warnings == ["broken: undo raised RuntimeError: boom"]


def test_wrap_of_a_missing_attribute_is_an_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        Shims("t").wrap(make_module(), "nope", lambda *a: None)


def test_primitives_that_need_the_runtime_say_so() -> None:
    with pytest.raises(hotfix.PatchError, match=r"^patch 't': provide_module .*hotfix\.enable"):
        Shims("t").provide_module("x", types.ModuleType)
    with pytest.raises(hotfix.PatchError, match=r"^patch 't': on_subclass .*hotfix\.enable"):
        Shims("t").on_subclass(object, lambda cls, shims: None)
    with pytest.raises(hotfix.PatchError, match=r"^patch 't': .* has no attribute 'nope' to adapt") as raised:
        Shims("t").replace(make_module(), "nope", lambda function: function)
    assert isinstance(raised.value, hotfix.HotfixError) and raised.value.patch_id == "t"


def test_an_unknown_patch_id_in_status_is_a_hotfix_error() -> None:
    with pytest.raises(hotfix.UnknownPatchError, match="no patch 'nope' is known") as raised:
        hotfix.status()["nope"]
    assert isinstance(raised.value, KeyError)


def test_missing_bundled_patches_are_a_hotfix_error(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hotfix import _resources

    monkeypatch.setattr(_resources, "_CHECKOUT", tmp_path)
    monkeypatch.setattr(_resources.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "hotfix._patches", raising=False)
    with pytest.raises(_resources.MissingPatchesError, match="the bundled patches are missing") as raised:
        _resources.ensure_patches_package()
    assert isinstance(raised.value, hotfix.HotfixError) and isinstance(raised.value, ImportError)


def test_redirect_legacy_calls_changes_the_class_functions_and_reverts() -> None:
    import functools

    from hotfix.authoring import redirect_legacy_calls, result_tested_for_none_at

    class Cache:
        def size(self) -> int:
            return -1

        def legacy_size(self) -> None:
            return None

    def decorator(function: Any) -> Any:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        return wrapper

    namespace: dict[str, Any] = {"decorator": decorator}
    source = (
        "class Legacy:\n"
        "    def method(self, c):\n        m = c.size()\n        return m is None\n"
        "    @staticmethod\n    def static(c):\n        return c.size() is None\n"
        "    @property\n    def prop(self):\n        return self.c.size() is None\n"
        "    @decorator\n    def decorated(self, c):\n        return c.size() is None\n"
        "    def modern(self, c):\n        return c.size() < 0\n"
    )
    exec(compile(source, "<legacy>", "exec"), namespace)
    legacy = namespace["Legacy"]()
    legacy.c = Cache()
    before = (legacy.method(legacy.c), legacy.static(legacy.c), legacy.prop, legacy.decorated(legacy.c))
    assert before == (False, False, False, False)
    shims = Shims("t")
    assert redirect_legacy_calls(shims, type(legacy), "size", "legacy_size", when=result_tested_for_none_at) == 4
    assert (legacy.method(legacy.c), legacy.static(legacy.c), legacy.prop, legacy.decorated(legacy.c)) == (True,) * 4
    assert legacy.modern(legacy.c) is True  # compares with a number: unchanged
    assert shims.revert() == []
    assert (legacy.method(legacy.c), legacy.static(legacy.c), legacy.prop, legacy.decorated(legacy.c)) == before
