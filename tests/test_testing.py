"""hotfix.testing: the three-way check passes a good patch and fails each kind of bad one; the plugin loads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PatchPack

import hotfix
from hotfix.testing import NOTHING, Outcome, check_patch, in_subprocess, inline, installed_as

MOVED = {
    "id": "kit-moved",
    "shape": "moved-name",
    "summary": "fakelib 2.0 moved 'moved' from fakelib.core to fakelib.new",
    "distribution": "fakelib",
    "affected": ">=2.0",
    "owner": "fakelib.core",
    "name": "moved",
    "target": "fakelib.new:moved",
}
ERROR = "ImportError: cannot import name 'moved' from 'fakelib.core'"


def legacy() -> str:
    from fakelib.core import moved  # type: ignore[attr-defined]

    result: str = moved()
    return result


def _pack(**changes: Any) -> None:
    hotfix.register_plugin(PatchPack({**MOVED, **changes}), name="kit-test-pack")


def test_a_good_patch_passes_all_three_ways(fakelib: Callable[..., Path]) -> None:
    fakelib("2.0")
    _pack()
    outcome = check_patch("kit-moved", inline(legacy, fresh=["fakelib"]), error=ERROR, expected="moved")
    assert outcome.ok and outcome.result == "moved" and outcome.status["kit-moved"]["state"] == "applied"
    # Outside the range the patch skips itself; this stand-in still breaks there, and the check says so.
    with installed_as("fakelib", "1.0"), pytest.raises(AssertionError, match="fails where the patch is out of range"):
        check_patch("kit-moved", inline(legacy, fresh=["fakelib"]), error=ERROR)


def test_out_of_range_and_probed_off_patches_report_skipped(fakelib: Callable[..., Path]) -> None:
    fakelib("1.5", extra={"fakelib/core.py": "def moved():\n    return 'moved'\n"})
    _pack()
    outcome = check_patch("kit-moved", inline(legacy, fresh=["fakelib"]), error=ERROR, expected="moved")
    assert outcome.status["kit-moved"]["state"] == "skipped" and "is outside" in outcome.status["kit-moved"]["reason"]
    with installed_as("fakelib", "2.1"):  # in range, but the name is there: the probe keeps the patch off
        outcome = check_patch("kit-moved", inline(legacy, fresh=["fakelib"]), error=ERROR, expected="moved")
    assert outcome.status["kit-moved"]["reason"].startswith("probe:")


@pytest.mark.parametrize(
    ("changes", "error", "expected", "message"),
    [
        ({"target": "fakelib.replacement:X"}, ERROR, "moved", "fails with the patch: TypeError: 'int' object"),
        ({}, "AttributeError: something else", NOTHING, "not 'AttributeError: something else'"),
        ({"affected": ">=3.0"}, ERROR, NOTHING, "the scenario fails where the patch is out of range"),
        ({"owner": "fakelib.new"}, ERROR, NOTHING, "never imported what the patch watches"),
    ],
    ids=["broken-shim", "wrong-error", "range-too-narrow", "patch-watches-another-module"],
)
def test_a_bad_patch_fails_the_check(
    fakelib: Callable[..., Path], changes: dict[str, Any], error: str, expected: Any, message: str
) -> None:
    fakelib("2.0")
    _pack(**changes)
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_patch("kit-moved", inline(legacy, fresh=["fakelib"]), error=error, expected=expected)


def test_a_scenario_that_does_not_break_fails_the_check(fakelib: Callable[..., Path]) -> None:
    fakelib("2.0")
    _pack()

    def modern() -> str:
        import fakelib.core  # noqa: F401 - triggers the patch
        from fakelib.new import moved

        result: str = moved()
        return result

    with pytest.raises(AssertionError, match="without the patch the scenario works"):
        check_patch("kit-moved", inline(modern, fresh=["fakelib"]), error=ERROR)
    with pytest.raises(AssertionError, match="no patch 'kit-unknown' is known"):
        check_patch("kit-unknown", inline(modern, fresh=["fakelib"]), error=ERROR)


def test_a_silent_break_needs_its_expected_result() -> None:
    with pytest.raises(ValueError, match="needs the expected result"):
        check_patch("kit-moved", lambda selection: Outcome(ok=True), error=None)


def test_in_subprocess_runs_each_selection_in_a_fresh_interpreter(tmp_path: Path) -> None:
    (tmp_path / "kit_scenario.py").write_text("def run():\n    import hotfix\n    return hotfix.is_enabled()\n")
    outcome = in_subprocess("kit_scenario:run", path=[tmp_path])(["-*"])
    assert outcome.ok and outcome.result is True and outcome.status
    failing = tmp_path / "kit_failing.py"
    failing.write_text("def run():\n    raise KeyError('k')\n")
    outcome = in_subprocess("kit_failing:run", path=[tmp_path])([])
    assert not outcome.ok and outcome.error == "KeyError: 'k'" and "kit_failing.py" in (outcome.traceback or "")


def test_the_pytest_plugin_is_registered_through_its_entry_point(tmp_path: Path) -> None:
    # No conftest: the fixtures come from the installed plugin (pytest11 entry point "hotfix").
    (tmp_path / "test_pack.py").write_text(
        textwrap.dedent(
            """
            import hotfix

            def test_fixtures(hotfix_isolated, hotfix_library):
                hotfix_library("kitlib", "1.2", {"kitlib/__init__.py": "VALUE = 7"})
                import importlib.metadata, kitlib
                assert kitlib.VALUE == 7 and importlib.metadata.version("kitlib") == "1.2"
                assert not hotfix.is_enabled()
            """
        ),
        encoding="utf-8",
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HOTFIX_", "PYTEST_"))}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "1 passed" in completed.stdout


def test_a_patch_whose_result_differs_from_the_old_one_fails_the_check(fakelib: Callable[..., Path]) -> None:
    fakelib("2.0", extra={"fakelib/new.py": "def moved():\n    return 'changed'\n"})
    _pack()
    with pytest.raises(AssertionError, match="with the patch gives 'changed', expected 'moved'"):
        check_patch("kit-moved", inline(legacy, fresh=["fakelib"]), error=ERROR, expected="moved")
