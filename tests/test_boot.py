"""``enable()`` defers the registry to the first import of a watched package (hotfix._boot).

Each test runs in a fresh interpreter: the point is what a process has
loaded, and this test process has loaded everything already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

pytest.importorskip("transformers")

# What enable() must not load (none of it is loaded by a bare interpreter's start-up).
HEAVY = ["hotfix._runtime", "pluggy", "packaging", "importlib.metadata", "importlib.abc", "typing", "re",
         "threading", "wrapt", "structlog", "tomllib", "json"]  # fmt: skip


def _run(code: str, **environ: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update(environ)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


PRELUDE = """
import sys
START = set(sys.modules)
import hotfix
"""

REPORT = """
import json
print(json.dumps(result))
"""


def test_enable_loads_nothing_until_a_watched_package_is_imported() -> None:
    result = _run(
        PRELUDE
        + """
hotfix.enable()
loaded = sorted(set(sys.modules) - START)
import os
result = {"loaded": loaded, "start": sorted(START), "enabled": hotfix.is_enabled(),
          "environ": os.environ.get("HOTFIX_ENABLE"), "trigger": repr(sys.meta_path[0])}
import transformers
result["resolved"] = "hotfix._runtime" in sys.modules
result["status_enabled"] = hotfix.status().enabled
result["first"] = type(sys.meta_path[0]).__name__
"""
        + REPORT
    )
    heavy = [name for name in HEAVY if name not in result["start"]]  # type: ignore[operator]
    assert heavy, "the interpreter's start-up loads every heavy module already: this test proves nothing"
    assert not set(heavy) & set(result["loaded"]), result["loaded"]  # type: ignore[arg-type]
    assert result["enabled"] and result["environ"] == "1"
    assert "hotfix trigger" in str(result["trigger"])
    assert result["resolved"] and result["status_enabled"]
    assert result["first"] == "Finder"  # the trigger made way for the runtime's finder


STATES = """
import transformers
from transformers import PreTrainedModel, GenerationMixin
import transformers.modeling_utils, transformers.generation.utils, transformers.cache_utils
result = {p.id: p.state for p in hotfix.status().patches}
"""


def test_a_deferred_enable_applies_exactly_what_an_immediate_one_does() -> None:
    deferred = _run(PRELUDE + "hotfix.enable()\n" + STATES + REPORT)
    immediate = _run(PRELUDE + "hotfix.enable(strict=False)\n" + STATES + REPORT)  # strict= takes the full path
    assert "applied" in deferred.values()
    assert deferred == immediate


def test_arguments_and_imported_targets_take_the_full_path_at_once() -> None:
    for code in ["hotfix.enable(patches=['*'])", "hotfix.enable(strict=False)", "hotfix.enable(legacy=['vendored'])",
                 "import transformers; hotfix.enable()"]:  # fmt: skip
        result = _run(PRELUDE + code + "\nresult = {'runtime': 'hotfix._runtime' in sys.modules}" + REPORT)
        assert result["runtime"], code
    strict = _run(PRELUDE + "hotfix.enable()\nresult = {'runtime': 'hotfix._runtime' in sys.modules}" + REPORT,
                  HOTFIX_STRICT="1")  # fmt: skip
    assert strict["runtime"]  # strict mode raises what it finds at enable(): it cannot wait


def test_disable_before_resolution_undoes_everything() -> None:
    result = _run(
        PRELUDE
        + """
import os
hotfix.enable()
hotfix.disable()
result = {"enabled": hotfix.is_enabled(), "environ": os.environ.get("HOTFIX_ENABLE"),
          "trigger": any("hotfix" in repr(f) for f in sys.meta_path)}
import transformers
result["runtime"] = "hotfix._runtime" in sys.modules
"""
        + REPORT
    )
    assert result == {"enabled": False, "environ": None, "trigger": False, "runtime": False}


def test_disable_after_resolution_restores_the_environment_from_before_enable() -> None:
    result = _run(PRELUDE + """
import os
hotfix.enable()
import transformers
during = os.environ.get("HOTFIX_ENABLE"), os.environ.get("HOTFIX_PATCHES")
hotfix.disable()
result = {"during": during, "after": [os.environ.get("HOTFIX_ENABLE"), os.environ.get("HOTFIX_PATCHES")]}
""" + REPORT, HOTFIX_PATCHES="-m12")  # fmt: skip
    assert result == {"during": ["1", "-m12"], "after": [None, "-m12"]}


def test_plugins_cannot_change_while_enable_is_deferred() -> None:
    result = _run(
        PRELUDE
        + """
class Pack:
    pass
hotfix.enable()
try:
    hotfix.register_plugin(Pack())
    result = {"refused": ""}
except hotfix.HotfixError as error:
    result = {"refused": str(error)}
"""
        + REPORT
    )
    assert "call hotfix.disable() before registering a plugin" in str(result["refused"])


def test_a_failing_resolution_leaves_the_import_working_and_hotfix_off() -> None:
    result = _run(
        PRELUDE
        + """
hotfix.enable()
sys.modules["hotfix._runtime"] = None  # the runtime cannot be imported: resolution fails
import transformers
result = {"version": transformers.__version__, "enabled": hotfix.is_enabled()}
"""
        + REPORT
    )
    assert result["version"] and result["enabled"] is False


def test_concurrent_first_imports_resolve_once_and_both_see_the_patches() -> None:
    result = _run(
        PRELUDE
        + """
import threading
hotfix.enable()
barrier = threading.Barrier(2)
seen = []
def worker():
    barrier.wait()
    import transformers.modeling_utils
    seen.append(hotfix.status().enabled)
threads = [threading.Thread(target=worker) for _ in range(2)]
for thread in threads: thread.start()
for thread in threads: thread.join()
finders = [type(f).__name__ for f in sys.meta_path].count("Finder")
result = {"seen": seen, "finders": finders, "applied": sum(p.state == "applied" for p in hotfix.status().patches)}
"""
        + REPORT
    )
    assert result["seen"] == [True, True] and result["finders"] == 1
    assert result["applied"]


def test_start_up_activation_defers_too() -> None:
    result = _run("import sys, json; print(json.dumps({'hotfix': 'hotfix' in sys.modules, "
                  "'runtime': 'hotfix._runtime' in sys.modules, 'pluggy': 'pluggy' in sys.modules}))",
                  HOTFIX_ENABLE="1")  # fmt: skip
    if not result["hotfix"]:
        pytest.skip("hotfix.pth is not installed in this environment")
    assert result == {"hotfix": True, "runtime": False, "pluggy": False}


def test_an_excepthook_set_before_enable_still_runs_after_the_deferred_one() -> None:
    code = (
        "import sys\n"
        "sys.excepthook = lambda kind, error, traceback: print('CUSTOM', kind.__name__, file=sys.stderr)\n"
        "import hotfix\n"
        "hotfix.enable()\n"
        "raise ValueError('boom')\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 1 and "CUSTOM ValueError" in done.stderr, done.stderr


def test_an_installed_patch_pack_makes_enable_load_at_once(tmp_path: Path) -> None:
    """A pack may watch any library, not only the index's packages: with one installed, nothing is deferred."""
    info = tmp_path / "some_pack-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: some-pack\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[hotfix.patches]\nsome_pack = some_pack_module\n", encoding="utf-8")
    code = PRELUDE + "hotfix.enable()\nresult = {'runtime': 'hotfix._runtime' in sys.modules}" + REPORT
    assert _run(code, PYTHONPATH=str(tmp_path))["runtime"]
    (info / "entry_points.txt").write_text("[console_scripts]\nsome = some_pack_module:main\n", encoding="utf-8")
    assert not _run(code, PYTHONPATH=str(tmp_path))["runtime"]


def test_the_modules_snapshot_is_retried_when_another_import_changes_sys_modules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hotfix import _boot

    class Changing(dict[str, object]):
        failures = 1

        def copy(self) -> dict[str, object]:
            if Changing.failures:
                Changing.failures -= 1
                raise RuntimeError("dictionary changed size during iteration")
            return dict(self)

    fake = types.SimpleNamespace(modules=Changing(a=1, b=2))
    monkeypatch.setattr(_boot, "sys", fake)
    assert _boot.modules_snapshot() == [("a", 1), ("b", 2)]
    assert Changing.failures == 0
