"""The import hook on fake libraries: every ordering of import, enable, disable."""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import code_patch

import hotfix
from hotfix._runtime import RUNTIME

MOVED = {
    "id": "fake-moved",
    "shape": "moved-name",
    "summary": "moved() moved to fakelib.new",
    "distribution": "fakelib",
    "affected": ">=2.0",
    "owner": "fakelib.core",
    "name": "moved",
    "target": "fakelib.new:moved",
}
RESTORED = {
    "id": "fake-restored",
    "shape": "restored-attribute",
    "summary": "Base.old_method removed; it was method()",
    "distribution": "fakelib",
    "affected": ">=2.0",
    "owner": "fakelib.core:Base",
    "name": "old_method",
    "via": "method",
}
KEYWORD = {
    "id": "fake-keyword",
    "shape": "removed-keyword",
    "summary": "function() lost old_name",
    "distribution": "fakelib",
    "affected": ">=2.0",
    "owner": "fakelib.core",
    "name": "function",
    "rename": {"old_name": "new_name"},
    "drop": ["legacy_flag"],
}
MODULE = {
    "id": "fake-module",
    "shape": "removed-module",
    "summary": "fakelib.removed removed; its names are in fakelib.replacement",
    "distribution": "fakelib",
    "affected": ">=2.0",
    "module": "fakelib.removed",
    "target": "fakelib.replacement",
}
ALL = [MOVED, RESTORED, KEYWORD, MODULE]


def use_everything() -> list[Any]:
    core = importlib.import_module("fakelib.core")
    from fakelib.core import moved  # type: ignore[import-not-found]
    from fakelib.removed import X  # type: ignore[import-not-found]

    return [moved(), core.Base().old_method(4), core.function(1, old_name=2, legacy_flag=True), X]


EXPECTED = ["moved", ("method", 4, 1), 3, 1]


def assert_unpatched() -> None:
    core = importlib.import_module("fakelib.core")
    assert "moved" not in vars(core)
    assert not hasattr(core.Base, "old_method")
    with pytest.raises(TypeError):
        core.function(1, old_name=2)
    sys.modules.pop("fakelib.removed", None)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("fakelib.removed")


@pytest.fixture
def setup(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib("2.0.0")
    register(*ALL)


@pytest.mark.usefixtures("setup")
@pytest.mark.parametrize("order", ["enable-before-import", "enable-after-import"])
def test_patches_apply_whichever_comes_first(order: str) -> None:
    if order == "enable-after-import":
        importlib.import_module("fakelib.core")
        assert "moved" not in vars(sys.modules["fakelib.core"])
    hotfix.enable()
    assert use_everything() == EXPECTED
    states = {p.id: p.state for p in hotfix.status().patches if p.id.startswith("fake-")}
    assert states == dict.fromkeys(["fake-moved", "fake-restored", "fake-keyword", "fake-module"], "applied")


@pytest.mark.usefixtures("setup")
def test_disable_restores_every_attribute_to_the_original_object() -> None:
    core = importlib.import_module("fakelib.core")
    before_module = dict(vars(core))
    before_base = dict(vars(core.Base))
    hotfix.enable()
    use_everything()
    hotfix.disable()
    assert dict(vars(core)) == before_module
    assert all(vars(core)[k] is v for k, v in before_module.items())
    assert dict(vars(core.Base)) == before_base
    assert all(vars(core.Base)[k] is v for k, v in before_base.items())
    assert_unpatched()
    assert {p.state for p in hotfix.status().patches if p.id.startswith("fake-")} == {"reverted"}


@pytest.mark.usefixtures("setup")
def test_enable_disable_then_import_leaves_the_library_alone() -> None:
    hotfix.enable()
    hotfix.disable()
    assert not any(type(f).__name__ == "Finder" for f in sys.meta_path)
    assert_unpatched()


@pytest.mark.usefixtures("setup")
def test_double_enable_and_double_disable_are_no_ops() -> None:
    hotfix.enable()
    finder = sys.meta_path[0]
    hotfix.enable()
    assert sys.meta_path.count(finder) == 1
    assert use_everything() == EXPECTED
    hotfix.disable()
    hotfix.disable()
    assert finder not in sys.meta_path
    assert_unpatched()


@pytest.mark.usefixtures("setup")
def test_re_enable_applies_again() -> None:
    hotfix.enable()
    use_everything()
    hotfix.disable()
    assert_unpatched()
    hotfix.enable()
    assert use_everything() == EXPECTED


@pytest.mark.usefixtures("setup")
def test_unwatched_modules_are_answered_without_a_lookup() -> None:
    hotfix.enable()
    finder = sys.meta_path[0]
    watched_before = finder.watched_calls  # type: ignore[attr-defined]
    assert finder.find_spec("json.decoder") is None
    assert finder.find_spec("somepackage.sub.module") is None
    assert finder.watched_calls == watched_before  # type: ignore[attr-defined]


@pytest.mark.usefixtures("setup")
def test_a_removed_module_is_provided_only_when_nothing_else_finds_it(tmp_path: Path) -> None:
    hotfix.enable()
    from fakelib.removed import X, Y  # type: ignore[import-not-found]

    module = sys.modules["fakelib.removed"]
    assert (X, Y) == (1, 2)
    assert module._private == 3  # reached through the module's __getattr__
    assert sys.modules["fakelib"].removed is module
    hotfix.disable()
    assert "fakelib.removed" not in sys.modules
    assert "removed" not in vars(sys.modules["fakelib"])


def test_a_module_that_exists_is_not_replaced(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib("2.0.0", extra={"fakelib/removed.py": "X = 'real'\n"})
    register(MODULE)
    hotfix.enable()
    from fakelib.removed import X

    assert X == "real"
    assert hotfix.status()["fake-module"].state == "pending"


def test_version_gate_keeps_patches_off_outside_their_range(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib("1.9.0")
    register(*ALL)
    hotfix.enable()
    assert_unpatched()
    status = hotfix.status()
    for patch_id in ("fake-moved", "fake-restored", "fake-keyword", "fake-module"):
        assert status[patch_id].state == "skipped"
        assert status[patch_id].reason == "fakelib 1.9.0 is outside >=2.0"


@pytest.mark.parametrize(
    ("version", "applies"),
    [("2.0.0.dev3", True), ("2.0.0rc1", True), ("2.0.0+cu121", True), ("2.0.0.post1", True), ("1.9.9.post2", False)],
)
def test_version_gate_handles_dev_pre_local_and_post_versions(
    fakelib: Callable[..., Path], register: Callable[..., Any], version: str, applies: bool
) -> None:
    fakelib(version)
    register(MOVED)
    hotfix.enable()
    importlib.import_module("fakelib.core")
    assert hotfix.status()["fake-moved"].state == ("applied" if applies else "skipped")


def test_probe_keeps_a_shim_off_a_working_api(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib("2.0.0", extra={"fakelib/core.py": "def moved():\n    return 'still here'\n"})
    register(MOVED)
    hotfix.enable()
    from fakelib.core import moved

    assert moved() == "still here"
    status = hotfix.status()["fake-moved"]
    assert status.state == "skipped" and status.reason == "probe: fakelib.core.moved exists"


def test_a_faulty_patch_leaves_its_target_importable_and_unchanged(
    fakelib: Callable[..., Path], register: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    def probe(module: types.ModuleType) -> tuple[bool, str]:
        return True, "always"

    def apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        shims.alias(module, "half_done", 1)
        shims.adapt_arguments(module, "function", drop=["x"])
        raise RuntimeError("injected fault")

    fakelib("2.0.0")
    register(code_patch("fake-faulty", apply, probe=probe))
    hotfix.enable()
    caplog.set_level("WARNING", logger="hotfix")
    core = importlib.import_module("fakelib.core")
    assert "half_done" not in vars(core)
    assert core.function(1, new_name=1) == 2
    assert type(vars(core)["function"]).__name__ == "function"
    status = hotfix.status()["fake-faulty"]
    assert status.state == "failed" and status.error == "RuntimeError: injected fault"
    assert "patch.failed" in caplog.text and "fake-faulty" in caplog.text


def test_strict_mode_raises_and_still_rolls_back(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    def apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        shims.alias(module, "half_done", 1)
        raise RuntimeError("injected fault")

    fakelib("2.0.0")
    register(code_patch("fake-faulty", apply))
    hotfix.enable(strict=True)
    with pytest.raises(hotfix.PatchFailedError, match=r"patch 'fake-faulty' failed on fakelib\.core: RuntimeError"):
        importlib.import_module("fakelib.core")
    assert "half_done" not in vars(sys.modules.get("fakelib.core", types.ModuleType("x")))


def test_prefix_triggers_follow_dynamically_named_modules(
    tmp_path: Path, fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    root = fakelib("2.0.0")
    for name in ("fakeremote/__init__.py", "fakeremote/repo_a/__init__.py", "fakeremote/repo_b/__init__.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("", encoding="utf-8")
    (root / "fakeremote/repo_a/modeling.py").write_text("VALUE = 1\n", encoding="utf-8")
    (root / "fakeremote/repo_b/modeling.py").write_text("VALUE = 2\n", encoding="utf-8")
    seen: list[str] = []

    def apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        seen.append(module.__name__)
        shims.set(module, "PATCHED", True)

    has_value = lambda m: (hasattr(m, "VALUE"), "has VALUE")  # noqa: E731
    register(code_patch("fake-prefix", apply, probe=has_value, modules=(), prefixes=("fakeremote.",)))
    importlib.import_module("fakeremote.repo_a.modeling")  # imported before enable
    hotfix.enable()
    importlib.import_module("fakeremote.repo_b.modeling")
    assert sorted(seen) == ["fakeremote.repo_a.modeling", "fakeremote.repo_b.modeling"]
    assert sys.modules["fakeremote.repo_b.modeling"].PATCHED is True
    hotfix.disable()
    assert not hasattr(sys.modules["fakeremote.repo_a.modeling"], "PATCHED")


def test_a_module_that_replaces_itself_while_executing_is_patched_as_importers_see_it(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    """transformers' _LazyModule puts a new object in sys.modules from its own __init__.py."""
    lazy = """
        import sys, types

        class _Lazy(types.ModuleType):
            pass

        _replacement = _Lazy(__name__)
        _replacement.__dict__.update({k: v for k, v in globals().items() if k != "_replacement"})
        sys.modules[__name__] = _replacement
        """
    fakelib("2.0.0", {"fakelib/lazy.py": lazy})

    def apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        shims.set(module, "RESTORED", "yes")

    register(code_patch("fake-lazy", apply, modules=("fakelib.lazy",)))
    hotfix.enable()
    from fakelib.lazy import RESTORED  # type: ignore[attr-defined]

    assert RESTORED == "yes"
    assert type(sys.modules["fakelib.lazy"]).__name__ == "_Lazy"


def test_classes_are_adapted_as_they_are_defined(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib("2.0.0")

    def adapt(cls: type, shims: hotfix.Shims) -> None:
        if isinstance(vars(cls).get("legacy"), list):
            shims.set(cls, "legacy", tuple(vars(cls)["legacy"]))

    def apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        shims.on_subclass(module.Base, adapt, exclude=("fakelib.",))

    register(code_patch("fake-subclass", apply))
    core = importlib.import_module("fakelib.core")

    class Early(core.Base):  # defined before enable
        legacy = [1]

    hotfix.enable()

    class Late(core.Base):
        legacy = [2]

    class LateChild(Late):
        legacy = [3]

    assert (Early.legacy, Late.legacy, LateChild.legacy) == ((1,), (2,), (3,))
    assert core.Child.__dict__.get("legacy") is None  # the library's own classes are left alone
    hotfix.disable()
    assert (Early.legacy, Late.legacy, LateChild.legacy) == ([1], [2], [3])
    assert "__init_subclass__" not in vars(core.Base)

    class AfterDisable(core.Base):
        legacy = [4]

    assert AfterDisable.legacy == [4]


def test_threads_importing_while_enable_and_disable_run(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    count = 8
    extra = {f"fakelib/w{i}.py": "VALUE = 1\n" for i in range(count)}
    extra.update({f"fakelib/target{i}.py": f"X = {i}\n" for i in range(count)})
    fakelib("2.0.0", extra=extra)
    patches: list[dict[str, Any]] = []
    for i in range(count):
        patches.append({**MOVED, "id": f"fake-moved-{i}", "owner": f"fakelib.w{i}"})
        patches.append(
            {**MODULE, "id": f"fake-module-{i}", "module": f"fakelib.gone{i}", "target": f"fakelib.target{i}"}
        )
    register(*patches)
    errors: list[BaseException] = []
    stop = threading.Event()

    def importer(i: int) -> None:
        # Each thread re-imports its own modules: popping a module another
        # thread is importing would break the import system, not hotfix.
        try:
            while not stop.is_set():
                sys.modules.pop(f"fakelib.w{i}", None)
                module = importlib.import_module(f"fakelib.w{i}")
                moved = vars(module).get("moved")
                assert moved is None or moved() == "moved"
                sys.modules.pop(f"fakelib.gone{i}", None)
                with contextlib.suppress(ModuleNotFoundError):  # hotfix was disabled at that moment
                    assert i == importlib.import_module(f"fakelib.gone{i}").X
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=importer, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(50):
            hotfix.enable()
            hotfix.disable()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "deadlock: an importer thread hangs"
    assert errors == []
    for i in range(count):
        sys.modules.pop(f"fakelib.gone{i}", None)
        assert "moved" not in vars(sys.modules[f"fakelib.w{i}"])
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"fakelib.gone{i}")
    hotfix.enable()
    for i in range(count):
        assert importlib.import_module(f"fakelib.w{i}").moved() == "moved"
        assert i == importlib.import_module(f"fakelib.gone{i}").X


def test_enable_imports_no_target_library() -> None:
    for name in list(sys.modules):
        if name.startswith("fakelib"):
            del sys.modules[name]
    before = set(sys.modules)
    hotfix.enable()
    assert not {name for name in set(sys.modules) - before if not name.startswith("hotfix")}
    assert RUNTIME.enabled
