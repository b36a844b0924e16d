"""Guarantee: hotfix never breaks the import of the library it targets.

A missing or broken dependency of hotfix, a patch that raises anything (even
``SystemExit``), a probe that answers nonsense, or a provided module whose
factory fails: the host's import goes on as it would without hotfix, and the
problem is reported (status, log), never raised, except where strict mode
asks for it. ``KeyboardInterrupt`` still interrupts, after the patch's
changes are undone. Each test reproduces the failure in a fresh interpreter
or on the fake library of tests/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import code_patch

import hotfix

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, env: dict[str, str], path: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update(env)
    environment["PYTHONPATH"] = os.pathsep.join([*map(str, path), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment, timeout=300
    )


def _broken(tmp_path: Path, name: str) -> Path:
    """A directory that shadows *name* with a package that fails on import."""
    folder = tmp_path / f"broken-{name}"
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is broken on purpose')\n", encoding="utf-8")
    return folder


# The library whose import hotfix watches: the fake library, written where the subprocess finds it.
FAKE = {
    "fakelib/__init__.py": "",
    "fakelib/core.py": "VALUE = 1\n",
}
PACK = """
    import hotfix
    from packaging.specifiers import SpecifierSet

    def apply(module, shims):
        shims.set(module, "PATCHED", True)

    class Pack:
        @hotfix.hookimpl
        def hotfix_patches(self):
            return [hotfix.Patch(id="fake-patch", summary="s", distribution="fakelib", affected=SpecifierSet(">=1"),
                                 probe=lambda m: (True, "always"), apply=apply, modules=("fakelib.core",))]

    hotfix.register_plugin(Pack(), name="fake")
"""


def _library(tmp_path: Path) -> Path:
    from hotfix.testing import write_library

    return write_library(tmp_path / "site", "fakelib", "2.0", FAKE)


def test_a_broken_wrapt_leaves_watched_imports_working_and_says_so(tmp_path: Path) -> None:
    code = (
        PACK
        + """
    hotfix.enable()
    import fakelib.core
    assert fakelib.core.VALUE == 1 and not hasattr(fakelib.core, "PATCHED")
    print([e for e in hotfix.status().errors if "wrapt is broken" in e])
    """
    )
    done = _run(code, {}, [_broken(tmp_path, "wrapt"), _library(tmp_path)])
    assert done.returncode == 0, done.stderr
    assert "import hook: cannot hook the import of 'fakelib.core'" in done.stdout


def test_a_missing_wrapt_refuses_enable_and_leaves_hotfix_off() -> None:
    code = """
    import importlib.abc, sys

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "wrapt" or name.startswith("wrapt."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.modules.pop("wrapt", None)
    sys.meta_path.insert(0, Hide())
    import hotfix
    try:
        hotfix.enable()
    except hotfix.DependencyError as error:
        print("refused:", error)
    print("enabled:", hotfix.status().enabled, any(type(f).__name__ == "Finder" for f in sys.meta_path))
    """
    done = _run(code, {})
    assert done.returncode == 0, done.stderr
    assert "refused: hotfix needs wrapt: ModuleNotFoundError" in done.stdout and "enabled: False False" in done.stdout


def test_a_broken_structlog_at_info_still_logs_and_never_breaks_the_import(tmp_path: Path) -> None:
    code = (
        PACK
        + """
    hotfix.enable()
    import fakelib.core
    assert fakelib.core.PATCHED is True
    print("imported")
    """
    )
    done = _run(code, {"HOTFIX_LOG_LEVEL": "INFO"}, [_broken(tmp_path, "structlog"), _library(tmp_path)])
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr
    assert "patch.applied" in done.stderr and "structlog failed: ImportError: structlog is broken on purpose" in (
        done.stderr
    )


@pytest.mark.parametrize("where", ["probe", "apply"])
def test_a_patch_that_raises_system_exit_fails_alone_and_its_changes_are_undone(
    where: str, fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()

    def apply(module: Any, shims: hotfix.Shims) -> None:
        shims.set(module, "HALF_DONE", True)
        raise SystemExit(3)

    def probe(module: Any) -> tuple[bool, str]:
        raise SystemExit(3)

    register(code_patch("exits", apply, **({"probe": probe} if where == "probe" else {})))
    hotfix.enable()
    import fakelib.core  # type: ignore[import-not-found]

    assert not hasattr(fakelib.core, "HALF_DONE") and fakelib.core.function(1) == 1
    state = hotfix.status()["exits"]
    assert state.state == "failed" and "raised SystemExit(3)" in (state.error or "")


@pytest.mark.parametrize("outside", [False, True], ids=["through-shims", "also-outside"])
def test_the_rollback_says_what_it_undid_and_what_it_could_not(
    outside: bool, fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()

    def apply(module: Any, shims: hotfix.Shims) -> None:
        shims.set(module, "RECORDED", True)
        if outside:
            module.STRAY = True  # not through shims: nothing recorded it, nothing can undo it
            del module.function
        raise ValueError("half way")

    register(code_patch("half-way", apply))
    hotfix.enable()
    import fakelib.core

    reason = hotfix.status()["half-way"].reason
    assert not hasattr(fakelib.core, "RECORDED")
    assert reason.startswith("raised while applied on fakelib.core; its recorded changes were undone")
    if outside:
        assert reason.endswith("not through its shims, stay as they are: STRAY, function"), reason
        assert fakelib.core.STRAY is True
    else:
        assert "stay as they are" not in reason


def test_ctrl_c_in_a_patch_interrupts_the_import_after_undoing_its_changes(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()
    pressed: list[Any] = []

    def apply(module: Any, shims: hotfix.Shims) -> None:
        shims.set(module.Base, "HALF_DONE", True)
        if not pressed:  # once: the import that is tried again afterwards runs to the end
            pressed.append(module)
            raise KeyboardInterrupt

    register(code_patch("interrupted", apply))
    hotfix.enable()
    with pytest.raises(KeyboardInterrupt):
        import fakelib.core

    assert not hasattr(pressed[0].Base, "HALF_DONE")  # undone before the interrupt went on
    assert "fakelib.core" not in sys.modules  # the interrupted import did not finish
    assert hotfix.status()["interrupted"].state == "failed"
    import fakelib.core as core

    assert core.Base.HALF_DONE is True  # tried again, the patch applies


def test_a_probe_that_answers_nonsense_is_the_patch_failing(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()
    register(code_patch("nonsense", lambda module, shims: None, probe=lambda module: "yes"))  # type: ignore[arg-type,return-value]
    hotfix.enable()
    import fakelib.core

    state = hotfix.status()["nonsense"]
    assert state.state == "failed" and "its probe returned 'yes'" in (state.error or "")


def test_a_provided_module_whose_factory_fails_is_missing_as_without_hotfix(register: Callable[..., Any]) -> None:
    def broken_factory() -> Any:
        raise RuntimeError("factory broken on purpose")

    def apply(module: Any, shims: hotfix.Shims) -> None:
        shims.provide_module("fakelib_gone.old", broken_factory)

    from packaging.specifiers import SpecifierSet

    register(hotfix.Patch(
        id="provides-broken", summary="s", distribution="hotfix", affected=SpecifierSet(), probe=lambda m: (True, "x"),
        apply=apply, provides=("fakelib_gone.old",),
    ))  # fmt: skip
    hotfix.enable()
    with pytest.raises(ModuleNotFoundError, match="fakelib_gone"):
        import fakelib_gone.old  # type: ignore[import-not-found]  # noqa: F401
