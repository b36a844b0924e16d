"""What a process used: patches record the first use of their shims, and status lists it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import code_patch

import hotfix
from hotfix import Shims, _usage


def _owner() -> type:
    class Owner:
        def existing(self, x: int) -> int:
            return x

    return Owner


def test_a_restored_method_records_its_first_call_then_steps_aside() -> None:
    owner = _owner()
    shims = Shims("p-restored")

    def old_method(self: Any, x: int) -> int:
        return x * 2

    shims.restore(owner, "old_method", old_method, "method")
    assert vars(owner)["old_method"] is not old_method  # the trampoline
    assert "p-restored" not in _usage.USED
    assert owner().old_method(4) == 8  # type: ignore[attr-defined]
    assert _usage.USED["p-restored"].endswith("Owner.old_method called")
    assert vars(owner)["old_method"] is old_method  # after the first call: the plain function, no cost
    assert shims.revert() == [] and "old_method" not in vars(owner)


@pytest.mark.parametrize("kind", ["property", "classmethod", "staticmethod"])
def test_every_kind_of_restored_attribute_counts_once(kind: str) -> None:
    owner = _owner()
    shims = Shims(f"p-{kind}")
    shims.restore(owner, "restored", (lambda *args: 7), kind)  # type: ignore[arg-type]
    assert f"p-{kind}" not in _usage.USED
    value = owner().restored  # type: ignore[attr-defined]
    assert (value if kind == "property" else value()) == 7
    assert f"p-{kind}" in _usage.USED
    assert type(vars(owner)["restored"]).__name__ == kind
    assert shims.revert() == []


def test_replacing_an_existing_function_counts_only_what_the_shim_marks() -> None:
    owner = _owner()
    shims = Shims("p-replaced")

    def make(function: Callable[..., Any]) -> Callable[..., Any]:
        def existing(self: Any, x: int) -> int:
            if x < 0:  # the legacy branch
                shims.mark_used("negative x adapted")
                return function(self, -x)
            return function(self, x)

        return existing

    shims.replace(owner, "existing", make)
    assert owner().existing(3) == 3 and "p-replaced" not in _usage.USED  # modern calls are not a use
    assert owner().existing(-3) == 3 and _usage.USED["p-replaced"] == "negative x adapted"
    owner().existing(-5)
    assert _usage.USED["p-replaced"] == "negative x adapted"  # the first mark is kept
    assert shims.revert() == []


def test_an_alias_keeps_its_identity_and_counts_when_legacy_code_imports_it() -> None:
    module = types.ModuleType("hotfix_usage_target")
    module.new = lambda: "new"  # type: ignore[attr-defined]
    shims = Shims("p-alias")
    shims.alias(module, "old", module.new)  # type: ignore[attr-defined]
    assert module.old is module.new  # type: ignore[attr-defined]
    assert _usage.scan_values("p-alias", shims.changes) is None
    legacy = types.ModuleType("transformers_modules.org.modeling_x")
    legacy.old = module.old  # type: ignore[attr-defined]  # what `from target import old` leaves
    sys.modules[legacy.__name__] = legacy
    try:
        assert _usage.scan_values("p-alias", shims.changes) == "modeling_x imports hotfix_usage_target.old"
    finally:
        del sys.modules[legacy.__name__]
    shims.revert()


def test_status_says_which_patches_were_used(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib("2.0.0")

    def apply(module: types.ModuleType, shims: Shims) -> None:
        shims.restore(module.Base, "legacy_helper", lambda self: "helped", "method")

    register(
        code_patch("fake-used", apply),
        code_patch("fake-unused", lambda m, s: s.restore(m.Base, "other", lambda self: 0)),
    )
    hotfix.enable()
    core = importlib.import_module("fakelib.core")
    before = hotfix.status()
    assert before["fake-used"].state == "applied" and not before["fake-used"].used
    assert core.Base().legacy_helper() == "helped"
    status = hotfix.status()
    assert status["fake-used"].used and status["fake-used"].used_by == "Base.legacy_helper called"
    assert not status["fake-unused"].used
    assert "used: Base.legacy_helper called" in str(status)
    assert json.loads(json.dumps(status.as_dict()))["patches"][0]["used"] in (True, False)
    hotfix.disable()
    assert not hotfix.status()["fake-used"].used  # a new enable() starts counting again


def test_hotfix_run_writes_the_status_of_the_process_and_status_reads_it(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    package = tmp_path / "oldpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "modeling.py").write_text(
        "from transformers.utils import is_torch_fx_available\nis_torch_fx_available()\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update(HOTFIX_LEGACY="oldpkg.*", PYTHONPATH=str(tmp_path))
    status_file = tmp_path / "status.json"
    done = subprocess.run(
        [sys.executable, "-m", "hotfix", "run", "--status", str(status_file), "--", sys.executable, "-c",
         "import oldpkg.modeling"], capture_output=True, text=True, env=environment, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(status_file.read_text())
    assert report["enabled"] and report["argv"] == ["-c"]
    used = {p["id"] for p in report["patches"] if p["used"]}
    fx = hotfix.status()["m4-is-torch-fx-available-utils"]
    if fx.state == "pending":  # in range here: transformers 5 removed it
        assert "m4-is-torch-fx-available-utils" in used
    shown = subprocess.run(
        [sys.executable, "-m", "hotfix", "status", str(status_file)], capture_output=True, text=True,
        env=environment, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0 and f"{len(used)} used" in shown.stdout
    assert subprocess.run(
        [sys.executable, "-m", "hotfix", "status", "--json", str(tmp_path / "absent.json")], capture_output=True,
        text=True, env=environment, timeout=120,
    ).returncode == 2  # fmt: skip
