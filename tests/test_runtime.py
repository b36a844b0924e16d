"""Selection, status, events, logging and environment propagation."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import code_patch
from packaging.specifiers import SpecifierSet
from test_importer import MOVED, RESTORED

import hotfix
from hotfix._runtime import select


def make(patch_id: str, default: bool = True, unsafe: bool = False) -> hotfix.Patch:
    return hotfix.Patch(
        id=patch_id, summary="s", distribution="d", affected=SpecifierSet(">=1"), probe=lambda m: (True, ""),
        apply=lambda m, s: None, modules=("m",), default=default, unsafe=unsafe,
    )  # fmt: skip


PATCHES = [make("a-one"), make("a-two"), make("b-one"), make("opt-in", default=False), make("risky", False, True)]


@pytest.mark.parametrize(
    ("selection", "selected"),
    [
        (None, {"a-one", "a-two", "b-one"}),
        (["-a-two"], {"a-one", "b-one"}),
        (["-a-*"], {"b-one"}),
        (["a-*"], {"a-one", "a-two"}),
        (["a-*", "-a-two"], {"a-one"}),
        (["*"], {"a-one", "a-two", "b-one"}),
        (["*", "opt-in"], {"a-one", "a-two", "b-one", "opt-in"}),
        (["*", "risky"], {"a-one", "a-two", "b-one", "risky"}),
        (["r*"], set()),  # a glob never turns on an unsafe patch
    ],
)
def test_selection(selection: list[str] | None, selected: set[str]) -> None:
    result = select(PATCHES, selection)
    assert {k for k, v in result.items() if v is None} == selected
    assert result["risky"] is not None or "risky" in selected


def test_selection_from_the_environment(
    fakelib: Callable[..., Path], register: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fakelib("2.0.0")
    register(MOVED, RESTORED)
    monkeypatch.setenv("HOTFIX_PATCHES", "fake-*, -fake-restored")
    hotfix.enable()
    importlib.import_module("fakelib.core")
    status = hotfix.status()
    assert status["fake-moved"].state == "applied"
    assert status["fake-restored"].state == "skipped" and status["fake-restored"].reason == "denied by the selection"
    assert status["m3-no-init-weights"].reason == "not in the selection"


def test_status_lists_every_patch_with_versions(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib("2.0.0")
    register(MOVED)
    before = hotfix.status()
    assert not before.enabled and before["fake-moved"].state == "pending"
    assert "will probe when fakelib.core is imported" in before["fake-moved"].reason
    hotfix.enable()
    importlib.import_module("fakelib.core")
    status = hotfix.status()
    assert status.enabled and status.versions["fakelib"] == "2.0.0"
    moved = status["fake-moved"]
    assert (moved.state, moved.modules, moved.version) == ("applied", ["fakelib.core"], "2.0.0")
    assert moved.seconds > 0
    assert "[applied] fake-moved on fakelib.core" in str(status)
    assert json.loads(json.dumps(status.as_dict()))["patches"]


def test_observer_hooks_see_every_event(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib("2.0.0", extra={"fakelib/other.py": "def moved():\n    return 1\n"})
    seen: list[tuple[str, str]] = []

    class Observer:
        @hotfix.hookimpl
        def hotfix_patch_applied(self, patch: hotfix.Patch, module: types.ModuleType, seconds: float) -> None:
            if patch.id.startswith("fake"):
                seen.append(("applied", patch.id))

        @hotfix.hookimpl
        def hotfix_patch_skipped(self, patch: hotfix.Patch, reason: str) -> None:
            if patch.id.startswith("fake"):
                seen.append(("skipped", patch.id))

        @hotfix.hookimpl
        def hotfix_patch_failed(self, patch: hotfix.Patch, error: BaseException) -> None:
            seen.append(("failed", patch.id))

        @hotfix.hookimpl
        def hotfix_patch_reverted(self, patch: hotfix.Patch) -> None:
            if patch.id.startswith("fake"):
                seen.append(("reverted", patch.id))

    def boom(module: types.ModuleType, shims: hotfix.Shims) -> None:
        raise RuntimeError("x")

    register(
        MOVED,
        {**MOVED, "id": "fake-skip", "owner": "fakelib.other"},
        code_patch("fake-fail", boom, modules=("fakelib.new",)),
    )
    hotfix.register_plugin(Observer(), name="observer")
    hotfix.enable()
    importlib.import_module("fakelib.core")
    importlib.import_module("fakelib.other")
    importlib.import_module("fakelib.new")
    hotfix.disable()
    # fake-moved's probe imports fakelib.new (the new home), so fake-fail may come first.
    assert sorted(seen[:3]) == [("applied", "fake-moved"), ("failed", "fake-fail"), ("skipped", "fake-skip")]
    assert seen[3:] == [("reverted", "fake-moved")]


def test_a_failing_observer_does_not_break_the_import(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    class Broken:
        @hotfix.hookimpl
        def hotfix_patch_applied(self, patch: hotfix.Patch, module: types.ModuleType, seconds: float) -> None:
            raise RuntimeError("observer bug")

    fakelib("2.0.0")
    register(MOVED)
    hotfix.register_plugin(Broken(), name="broken-observer")
    hotfix.enable()
    assert importlib.import_module("fakelib.core").moved() == "moved"


def test_log_events_go_through_the_hotfix_logger(
    fakelib: Callable[..., Path], register: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    fakelib("2.0.0")
    register(MOVED, {**MOVED, "id": "fake-old", "affected": "<1"})
    root_handlers = list(logging.getLogger().handlers)
    caplog.set_level(logging.DEBUG, logger="hotfix")
    hotfix.enable()
    importlib.import_module("fakelib.core")
    hotfix.disable()
    records = [r for r in caplog.records if r.name == "hotfix"]
    text = "\n".join(r.getMessage() for r in records)
    assert "event='patch.applied' patch='fake-moved'" in text
    for field in ("distribution='fakelib'", "version='2.0.0'", "module='fakelib.core'", "seconds="):
        assert field in text
    assert "event='patch.reverted' patch='fake-moved'" in text
    assert "event='patch.skipped' patch='fake-old'" in text and "reason='fakelib 2.0.0 is outside <1'" in text
    assert logging.getLogger().handlers == root_handlers


def test_json_log_format(
    fakelib: Callable[..., Path], register: Callable[..., Any], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    fakelib("2.0.0")
    register(MOVED)
    monkeypatch.setenv("HOTFIX_LOG_FORMAT", "json")
    caplog.set_level(logging.INFO, logger="hotfix")
    hotfix.enable()
    importlib.import_module("fakelib.core")
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "hotfix"]
    applied = next(e for e in events if e["event"] == "patch.applied" and e["patch"] == "fake-moved")
    assert applied["patch"] == "fake-moved" and applied["module"] == "fakelib.core" and applied["level"] == "info"


def test_enable_propagates_to_workers_through_the_environment() -> None:
    os.environ["HOTFIX_STRICT"] = "0"
    hotfix.enable(patches=["m3-*"], strict=True)
    assert os.environ["HOTFIX_ENABLE"] == "1"
    assert os.environ["HOTFIX_PATCHES"] == "m3-*"
    assert os.environ["HOTFIX_STRICT"] == "1"
    hotfix.disable()
    assert "HOTFIX_ENABLE" not in os.environ and "HOTFIX_PATCHES" not in os.environ
    assert os.environ["HOTFIX_STRICT"] == "0"
    hotfix.enable(propagate=False)
    assert "HOTFIX_ENABLE" not in os.environ


FORKSERVER_FIRST = """
import multiprocessing, sys

def enabled(_):
    import hotfix
    return hotfix.is_enabled()

if __name__ == "__main__":
    import hotfix
    context = multiprocessing.get_context("forkserver")
    if sys.argv[1] == "pool-first":
        with context.Pool(1) as pool:
            pool.map(enabled, [0])
    hotfix.enable()
    with context.Pool(1) as pool:
        print("worker enabled:", pool.map(enabled, [0])[0])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no forkserver")
@pytest.mark.parametrize("order", ["pool-first", "enable-first"])
def test_enable_warns_that_a_forkserver_started_before_it_forks_workers_without_hotfix(
    order: str, tmp_path: Path
) -> None:
    script = tmp_path / "forkserver_first.py"
    script.write_text(FORKSERVER_FIRST, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HOTFIX_", "PYTEST_"))}
    completed = subprocess.run(
        [sys.executable, str(script), order], capture_output=True, text=True, env=environment, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    if order == "pool-first":
        assert "worker enabled: False" in completed.stdout
        assert "enable.forkserver" in completed.stderr and "call enable() before the first" in completed.stderr
    else:
        assert "worker enabled: True" in completed.stdout
        assert "enable.forkserver" not in completed.stderr


def test_registering_while_enabled_is_refused() -> None:
    hotfix.enable()
    with pytest.raises(hotfix.HotfixError, match="disable"):
        hotfix.register_plugin(object())


def test_strict_from_the_environment(
    fakelib: Callable[..., Path], register: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        raise RuntimeError("fault")

    fakelib("2.0.0")
    register(code_patch("fake-fail", apply))
    monkeypatch.setenv("HOTFIX_STRICT", "1")
    hotfix.enable()
    with pytest.raises(hotfix.PatchFailedError, match="HOTFIX_PATCHES=-fake-fail"):
        importlib.import_module("fakelib.core")


def test_invalid_plugin_declarations_are_logged_at_enable_not_only_listed(
    fakelib: Callable[..., Path], register: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    fakelib("2.0.0")
    register(MOVED, {**MOVED, "id": "fake-bad", "affected": 5})
    caplog.set_level(logging.WARNING, logger="hotfix")
    hotfix.enable()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "hotfix")
    assert "event='plugin.error'" in text and "fake-bad" in text
    assert hotfix.status()["fake-moved"].state != "failed"  # the valid declaration still loads


def test_a_failed_patch_logs_its_traceback_at_debug_only(
    fakelib: Callable[..., Path], register: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    def broken_apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        raise LookupError("inside the patch")

    fakelib("2.0.0")
    register(code_patch("fake-broken", broken_apply))
    caplog.set_level(logging.DEBUG, logger="hotfix")
    hotfix.enable()
    importlib.import_module("fakelib.core")
    messages = [r.getMessage() for r in caplog.records if r.name == "hotfix"]
    traceback_events = [m for m in messages if "patch.failed.traceback" in m]
    assert len(traceback_events) == 1 and "broken_apply" in traceback_events[0] and "LookupError" in traceback_events[0]
    hotfix.disable()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="hotfix")
    hotfix.enable()
    importlib.reload(importlib.import_module("fakelib.core"))
    assert not [r for r in caplog.records if "traceback" in r.getMessage()]


def test_a_plugin_registered_without_a_name_is_named_after_its_class() -> None:
    class Observer:
        @hotfix.hookimpl
        def hotfix_patch_skipped(self, patch: Any, reason: str) -> None: ...

    first, second = Observer(), Observer()
    hotfix.register_plugin(first)
    hotfix.register_plugin(second)
    from hotfix._runtime import RUNTIME

    names = {RUNTIME.plugins.manager().get_name(p) for p in (first, second)}
    qualified = f"{__name__}.{Observer.__qualname__}"
    assert names == {qualified, f"{qualified}#2"}


def _warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "hotfix" and r.levelno >= logging.WARNING)


def test_a_selection_item_that_names_no_patch_is_reported_with_what_it_may_have_meant(
    fakelib: Callable[..., Path], register: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    fakelib("2.0.0")
    register(MOVED, RESTORED)
    caplog.set_level(logging.WARNING, logger="hotfix")
    monkeypatch.setenv("HOTFIX_PATCHES", "fake-move")
    hotfix.enable()
    text = _warnings(caplog)
    assert "event='config.invalid'" in text and "setting='HOTFIX_PATCHES'" in text
    assert "'fake-move' names no patch (did you mean fake-moved" in text
    hotfix.disable()
    caplog.clear()
    hotfix.enable(patches=["-fake-restord"])
    assert "'-fake-restord' names no patch (did you mean fake-restored" in _warnings(caplog)
    hotfix.disable()
    with pytest.raises(hotfix.ConfigurationError, match=r"^HOTFIX_PATCHES: 'fake-move' names no patch"):
        hotfix.enable(strict=True)
    assert not hotfix.is_enabled()


def test_selection_items_may_be_separated_by_semicolons_or_spaces_in_any_case(
    fakelib: Callable[..., Path], register: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fakelib("2.0.0")
    register(MOVED, RESTORED)
    monkeypatch.setenv("HOTFIX_PATCHES", "Fake-Moved; FAKE-RESTORED  -m3-no-init-weights")
    hotfix.enable(strict=True)
    importlib.import_module("fakelib.core")
    status = hotfix.status()
    assert status["fake-moved"].state == "applied" and status["fake-restored"].state == "applied"
    assert status["m3-no-init-weights"].reason == "denied by the selection"


@pytest.mark.parametrize(("value", "level"), [("verbose", None), ("10", logging.DEBUG), ("Info", logging.INFO)])
def test_a_bad_log_level_is_reported_and_ignored_never_fatal(
    value: str, level: int | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOTFIX_LOG_LEVEL", value)
    hotfix.enable()
    assert hotfix.is_enabled()
    if level is None:
        assert "'verbose' is not a log level" in _warnings(caplog)
        hotfix.disable()
        with pytest.raises(hotfix.ConfigurationError, match=r"^HOTFIX_LOG_LEVEL: 'verbose' is not a log level"):
            hotfix.enable(strict=True)
    else:
        assert logging.getLogger("hotfix").level == level


def test_enable_again_with_another_selection_says_it_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hotfix")
    hotfix.enable(patches=["m3-no-init-weights"])
    hotfix.enable(patches=["m3-no-init-weights"])
    assert "enable.ignored" not in _warnings(caplog)
    hotfix.enable(patches=["g2-cache-get-max-length"])
    assert "event='enable.ignored'" in _warnings(caplog) and "call disable() first" in _warnings(caplog)
    hotfix.disable()
    hotfix.enable(patches=["m3-no-init-weights"], strict=True)
    with pytest.raises(hotfix.ConfigurationError, match="enabled already with patches=\\['m3-no-init-weights'\\]"):
        hotfix.enable(patches=["g2-cache-get-max-length"])
