"""Test patches the way hotfix tests its own: a pytest plugin and the three-way check.

Installed with hotfix as the pytest plugin ``hotfix`` (entry point group
``pytest11``), so a pack's tests can use its fixtures without a conftest.
It defines fixtures only; nothing runs unless a test asks for it:

``hotfix_isolated``
    hotfix disabled, no ``HOTFIX_*`` variables, the registry, plugins, usage
    records and version cache reset, before and after the test; a test that
    leaves hotfix's finder on ``sys.meta_path`` fails.
``hotfix_library``
    writes a small library with distribution metadata (a name and version
    that version gates read) under the test's ``tmp_path`` and puts it on
    ``sys.path``: a stand-in for the library a patch repairs, in the version
    where the break exists.

The three-way check, :func:`check_patch`, runs a scenario (legacy code
using the broken API) under hotfix with every patch, and with every patch
but the one under test, and shows: where the patch's break exists, the
scenario fails without the patch with the error users saw and works with it
(and gives the expected result); where it does not (outside the declared
range, or a probe that found the API intact), the patch reports itself
skipped and the scenario works. :func:`inline` runs a scenario in this
process, :func:`in_subprocess` in a fresh interpreter (for libraries that
cannot be imported twice, such as transformers with torch).

::

    from hotfix.testing import check_patch, inline

    def scenario():
        from mylib.old import thing      # the legacy code's import
        return thing()

    def test_moved_thing(hotfix_isolated, hotfix_library):
        hotfix_library("mylib", "2.0", {"mylib/__init__.py": "", "mylib/new.py": "def thing(): return 1"})
        check_patch("mypack-moved-thing", inline(scenario, fresh=["mylib"]),
                    error="ImportError: cannot import name 'thing'", expected=1)

This module imports pytest; it is meant for test code only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import operator
import os
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from . import _boot, _usage, _versions
from ._errors import ConfigurationError
from ._importer import Finder
from ._runtime import RUNTIME

__all__ = [
    "NOTHING",
    "Outcome",
    "Run",
    "check_patch",
    "in_subprocess",
    "inline",
    "installed_as",
    "isolated_runtime",
    "write_library",
]


class _Nothing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Final = _Nothing()
"""No expected result given: the check compares none."""


@dataclass(slots=True)
class Outcome:
    """What one run of a scenario gave: whether it worked, its error or result, and every patch's state."""

    ok: bool
    error: str | None = None
    """``"ExceptionType: message"`` of what the scenario raised."""
    traceback: str | None = None
    result: Any = None
    status: dict[str, dict[str, str]] = field(default_factory=dict)
    """``{patch id: {"state": ..., "reason": ...}}`` as :func:`hotfix.status` reported it after the run."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """An outcome from its JSON form (what :func:`in_subprocess` prints)."""
        return cls(
            ok=bool(data["ok"]), error=data.get("error"), traceback=data.get("traceback"),
            result=data.get("result"), status=dict(data.get("status") or {}),
        )  # fmt: skip


Run = Callable[[Sequence[str]], Outcome]
"""Runs the scenario once with ``hotfix.enable(patches=selection)`` and tells what happened."""


def _statuses() -> dict[str, dict[str, str]]:
    return {p.id: {"state": p.state, "reason": p.error or p.reason} for p in RUNTIME.status().patches}


@contextlib.contextmanager
def isolated_runtime() -> Iterator[None]:
    """hotfix disabled and reset (registry, plugins, usage, version cache, ``HOTFIX_*``) before and after."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("HOTFIX_")}
    for name in saved:
        del os.environ[name]
    meta_path = list(sys.meta_path)

    def reset() -> None:
        RUNTIME.disable()
        RUNTIME.reload()
        _usage.clear()
        _versions.clear_cache()

    reset()
    try:
        yield
    finally:
        reset()
        for name in [name for name in os.environ if name.startswith("HOTFIX_")]:
            del os.environ[name]
        os.environ.update(saved)
        left = [finder for finder in sys.meta_path if isinstance(finder, Finder) and finder not in meta_path]
        if left:
            sys.meta_path[:] = [finder for finder in sys.meta_path if finder not in left]
            raise AssertionError("the test left hotfix's finder on sys.meta_path")


@contextlib.contextmanager
def installed_as(distribution: str, version: str) -> Iterator[None]:
    """Make version gates in this process read *version* for *distribution* (to test a patch outside its range)."""
    found = _versions._FOUND
    before = found.get(distribution)
    found[distribution] = version
    try:
        yield
    finally:
        if before is None:
            found.pop(distribution, None)
        else:
            found[distribution] = before


def _forget(prefixes: Sequence[str]) -> None:
    for name, _ in _boot.modules_snapshot():
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            del sys.modules[name]
    importlib.invalidate_caches()


def _failure(error: BaseException) -> Outcome:
    return Outcome(
        ok=False, error=f"{type(error).__name__}: {error}",
        traceback="".join(traceback.format_exception(type(error), error, error.__traceback__)),
    )  # fmt: skip


def inline(scenario: Callable[[], Any], *, fresh: Sequence[str] = ()) -> Run:
    """Run *scenario* in this process: the modules named in *fresh* (and their submodules) are imported anew.

    Name in *fresh* the library the patch targets and the legacy code's own
    modules, so that each run imports them under that run's patches. The
    plugins registered in this process stay registered between runs.
    """

    def run(selection: Sequence[str]) -> Outcome:
        RUNTIME.disable()
        _usage.clear()
        _forget(fresh)
        try:
            RUNTIME.enable(patches=list(selection), strict=False, propagate=False)
            try:
                outcome = Outcome(ok=True, result=scenario())
            except Exception as error:  # noqa: BLE001 - the scenario's failure is the observation
                outcome = _failure(error)
            outcome.status = _statuses()
            return outcome
        finally:
            RUNTIME.disable()
            _forget(fresh)

    return run


_HARNESS = textwrap.dedent(
    """
    import importlib, json, sys, traceback
    selection, reference, path = json.loads(sys.argv[1])
    sys.path[:0] = path
    import hotfix
    hotfix.enable(patches=selection, propagate=False)
    outcome = {"ok": True}
    module, _, name = reference.partition(":")
    try:
        function = importlib.import_module(module)
        for part in name.split("."):
            function = getattr(function, part)
        outcome["result"] = function()
    except Exception as error:
        outcome = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    outcome["status"] = {p.id: {"state": p.state, "reason": p.error or p.reason} for p in hotfix.status().patches}
    print()
    print(json.dumps(outcome, default=repr))
    """
)


def in_subprocess(
    reference: str, *, path: Sequence[str | os.PathLike[str]] = (), env: Mapping[str, str] | None = None,
    timeout: float = 600, python: str | None = None,
) -> Run:  # fmt: skip
    """Run the scenario function named by *reference* (``"module:function"``) in a fresh interpreter per run.

    *path* is prepended to the child's ``sys.path`` (where the scenario
    module lives); *env* adds environment variables (``HOTFIX_*`` from this
    process are not passed on). The function's return value must be JSON
    (other values come back as their ``repr``).
    """

    def run(selection: Sequence[str]) -> Outcome:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
        environment.update(env or {})
        argument = json.dumps([list(selection), reference, [str(p) for p in path]])
        completed = subprocess.run(
            [python or sys.executable, "-c", _HARNESS, argument],
            capture_output=True, text=True, env=environment, timeout=timeout,
        )  # fmt: skip
        lines = completed.stdout.strip().splitlines()
        if completed.returncode != 0 or not lines:
            raise AssertionError(f"the scenario {reference} did not report (exit {completed.returncode}):\n"
                                 f"{completed.stderr[-3000:]}")  # fmt: skip
        return Outcome.from_dict(json.loads(lines[-1]))

    return run


def _users_saw(error: str, seen: str | None) -> bool:
    return seen is not None and any(part in seen for part in error.split("|"))


def check_patch(
    patch_id: str,
    run: Run,
    *,
    error: str | None,
    expected: Any = NOTHING,
    same: Callable[[Any, Any], bool] = operator.eq,
    also_deny: Sequence[str] = (),
) -> Outcome:
    """The three-way check of one patch; returns the outcome with every patch, or raises AssertionError.

    *run* runs the scenario (:func:`inline`, :func:`in_subprocess`, or any
    callable taking the selection). *error* is what users saw without the
    patch (a substring of ``"Type: message"``; ``|`` separates alternatives);
    ``None`` declares a silent break: without the patch the scenario runs and
    its result differs from *expected*, which is then required. *also_deny*
    lists patches that would hide this one's break (denied with it). *same*
    compares a result with *expected* (default ``==``; pass a tolerance for
    floating-point outputs).

    * Outside the patch's range (or where its distribution is not installed),
      the patch must report itself skipped, and the scenario must work.
    * In range, where the patch's probe found the API intact, it must report
      itself skipped, and the scenario must work the same with and without it.
    * Otherwise the patch must be applied, the scenario must fail without it
      with *error* (or give a result other than *expected*), and work with it,
      giving *expected* when one is given.
    """
    if error is None and expected is NOTHING:
        raise ConfigurationError("check_patch", "a silent break (error=None) needs the expected result")
    repaired = run(["*", patch_id])
    state = repaired.status.get(patch_id)
    if state is None:
        raise AssertionError(f"no patch {patch_id!r} is known: is its pack installed or registered?")
    where = f"patch {patch_id}: {state['state']} ({state['reason']})"

    def works(outcome: Outcome, what: str) -> None:
        if not outcome.ok:
            raise AssertionError(f"{where}: the scenario fails {what}: {outcome.error}\n{outcome.traceback or ''}")
        if expected is not NOTHING and not same(outcome.result, expected):
            raise AssertionError(f"{where}: the scenario {what} gives {outcome.result!r}, expected {expected!r}")

    if state["state"] == "failed":
        raise AssertionError(f"{where}: the patch failed")
    if state["state"] == "skipped" and not state["reason"].startswith("probe:"):
        if "is outside" not in state["reason"] and "not installed" not in state["reason"]:
            raise AssertionError(f"{where}: skipped, but not for its range")
        works(repaired, "where the patch is out of range")
        return repaired
    without = run([f"-{patch_id}", *(f"-{other}" for other in also_deny)])
    if state["state"] == "skipped":
        works(repaired, "where the probe found no break")
        works(without, "without the patch, where its probe found no break")
        if expected is NOTHING and without.result != repaired.result:
            raise AssertionError(f"{where}: the patch is off, yet the scenario gives {without.result!r} without it")
        return repaired
    if state["state"] != "applied":
        raise AssertionError(f"{where}: the scenario never imported what the patch watches")
    if error is None:
        if not without.ok:
            raise AssertionError(f"{where}: a silent break, but without the patch the scenario fails: {without.error}")
        if same(without.result, expected):
            raise AssertionError(f"{where}: without the patch the scenario already gives {expected!r}: no break")
    elif without.ok:
        raise AssertionError(f"{where}: without the patch the scenario works; it should fail with {error!r}")
    elif not _users_saw(error, without.error):
        raise AssertionError(f"{where}: without the patch the scenario fails with {without.error!r}, not {error!r}")
    works(repaired, "with the patch")
    return repaired


def write_library(root: Path, name: str, version: str, files: Mapping[str, str]) -> Path:
    """Write *files* (relative path -> source, dedented) and ``name-version.dist-info`` under *root*."""
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    return root


# -- the pytest plugin --------------------------------------------------------------


@pytest.fixture
def hotfix_isolated() -> Iterator[None]:
    """hotfix disabled and reset before and after the test (see :func:`isolated_runtime`)."""
    with isolated_runtime():
        yield


@pytest.fixture
def hotfix_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """``make(name, version, files)``: a stand-in library on ``sys.path`` for this test (see :func:`write_library`)."""
    created: list[str] = []

    def make(name: str, version: str, files: Mapping[str, str]) -> Path:
        root = write_library(tmp_path / f"site-{name}-{version}", name, version, files)
        monkeypatch.syspath_prepend(str(root))
        created.extend(relative.split("/")[0].removesuffix(".py") for relative in files)
        _versions.clear_cache()
        importlib.invalidate_caches()
        return root

    yield make
    _forget(created)
    _versions.clear_cache()
