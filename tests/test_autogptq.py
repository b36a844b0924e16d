"""auto-gptq 0.7.1 on the stack installed here, with and without hotfix.

Runs tests/gptq_flow.py in fresh interpreters: import, quantize + save_quantized
(tensors equal to the reference checkpoint), from_quantized, forward logits and
greedy tokens (equal to the reference outputs). The reference is made once per
test session, on this machine, on auto-gptq's own 2024 stack (.venv-gptq-ref,
constraints/gptq-ref.txt) without hotfix: GPTQ in float16 on a CPU gives other
int4 codes on another processor (an AMD EPYC and an Intel Xeon disagree on a
third of them, from the first MLP on), so a checkpoint stored in the
repository can only be compared on the machine that made it. This file runs on
the reference stack too, where every stage must pass without hotfix and
hotfix's patches report themselves skipped. On the latest stack (.venv)
``import auto_gptq`` fails without hotfix and every stage passes with it;
without .venv-gptq-ref (``scripts/setup latest``) the comparisons skip.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from hotfix._registry import load_toml
from hotfix._resources import registry_text
from hotfix._versions import gate, installed_version
from hotfix.testing import Outcome, check_patch

if find_spec("auto_gptq") is None or find_spec("transformers") is None:
    pytest.skip(
        "auto-gptq is not installed here (scripts/setup puts it in .venv, .venv-gptq-ref)", allow_module_level=True
    )

pytestmark = pytest.mark.transformers

TESTS = Path(__file__).resolve().parent
FLOW = TESTS / "gptq_flow.py"
PATCHES = {p.id: p for p in load_toml(registry_text(), "registry.toml")[0]}
STAGES = ["import", "quantize", "from_quantized", "forward", "generate"]

# patch id -> (the stage where its break shows, what users saw), in the order auto-gptq meets them: the
# patches whose reproducer is this flow (`reproducer = "autogptq:STAGE"` in registry.toml), and patches the
# flow meets too, whose own reproducer is a scenario (with the message auto-gptq's code gets).
CANNOT_IMPORT = "ImportError: cannot import name"
ALSO_MET: dict[str, tuple[str, str]] = {
    "m3-no-init-weights": ("import", f"{CANNOT_IMPORT} 'no_init_weights' from 'transformers.modeling_utils'"),
    "h1-hub-create-commit": ("import", f"{CANNOT_IMPORT} 'create_commit' from 'transformers.utils.hub'"),
    "h1-hub-create-repo": ("import", f"{CANNOT_IMPORT} 'create_repo' from 'transformers.utils.hub'"),
}
REPRODUCERS: dict[str, tuple[str, str]] = {
    **ALSO_MET,
    **{
        p.id: (p.reproducer.removeprefix("autogptq:"), p.fails_with or p.error)
        for p in PATCHES.values()
        if p.reproducer.startswith("autogptq:")
    },
}


def affected(patch_id: str) -> bool:
    patch = PATCHES[patch_id]
    return gate(patch.affected, installed_version(patch.distribution))[0]


BROKEN_HERE = any(affected(p) for p in REPRODUCERS)
REFERENCE_PYTHON = TESTS.parent / ".venv-gptq-ref" / "bin" / "python"


def _environment(**env: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update({"HF_HUB_OFFLINE": "1", **env})
    return environment


@functools.cache
def reference_data() -> Path:
    """The reference checkpoint and outputs, made in this session on the reference stack without hotfix."""
    python = Path(sys.executable) if not BROKEN_HERE else REFERENCE_PYTHON
    if not python.exists():
        pytest.skip(f"no auto-gptq reference stack at {REFERENCE_PYTHON} (bash scripts/setup makes it)")
    folder = Path(tempfile.mkdtemp(prefix="hotfix-gptq-reference-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    completed = subprocess.run(
        [str(python), str(FLOW), "make", str(folder)], capture_output=True, text=True, env=_environment(), timeout=600
    )
    assert completed.returncode == 0, f"the reference stack could not make the reference:\n{completed.stderr[-3000:]}"
    return folder


def run(mode: str, *args: str, **env: str) -> tuple[int, dict[str, dict[str, Any]]]:
    data = [str(reference_data())] if mode == "check" else []
    completed = subprocess.run(
        [sys.executable, str(FLOW), mode, *data, *args], capture_output=True, text=True, env=_environment(**env),
        timeout=600,
    )  # fmt: skip
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, completed.stderr[-3000:]
    if mode == "scope":
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed.returncode, {"scope": lines[-1]}
    return completed.returncode, {line["stage"]: line for line in lines}


def test_every_stage_matches_the_reference_with_hotfix_enabled_before_import() -> None:
    code, stages = run("check", HOTFIX_ENABLE="1")
    for stage in STAGES:
        assert stages[stage]["ok"], stages[stage].get("traceback")
    assert code == 0
    states = stages["hotfix"]["status"]
    for patch_id in REPRODUCERS:
        expected = "applied" if affected(patch_id) else "skipped"
        assert states[patch_id]["state"] == expected, (patch_id, states[patch_id])


def test_every_stage_matches_the_reference_with_hotfix_enabled_after_the_libraries_were_imported() -> None:
    code, stages = run("check", "--enable-after-import")
    for stage in STAGES:
        assert stages[stage]["ok"], stages[stage].get("traceback")
    assert code == 0


def test_without_hotfix_import_fails_where_the_stack_broke_it_and_works_on_the_reference_stack() -> None:
    code, stages = run("check")
    if BROKEN_HERE:
        assert code != 0
        assert not stages["import"]["ok"]
        assert stages["import"]["error"].startswith(REPRODUCERS["m3-no-init-weights"][1])
    else:
        for stage in STAGES:
            assert stages[stage]["ok"], stages[stage].get("traceback")


_FLOWS: dict[str, Outcome] = {}


def flow(selection: Sequence[str]) -> Outcome:
    """The three-way check's runner: the whole auto-gptq flow with hotfix, denying what the selection denies."""
    denied = ",".join(item for item in selection if item.startswith("-"))
    if denied not in _FLOWS:
        _, stages = run("check", HOTFIX_ENABLE="1", **({"HOTFIX_PATCHES": denied} if denied else {}))
        failed = next((s for s in STAGES if not stages.get(s, {"ok": False})["ok"]), None)
        first = stages.get(failed, {}) if failed else {}
        _FLOWS[denied] = Outcome(
            ok=failed is None, error=f"[{failed}] {first.get('error', 'not reached')}" if failed else None,
            traceback=first.get("traceback"), status=stages.get("hotfix", {}).get("status", {}),
        )  # fmt: skip
    return _FLOWS[denied]


@pytest.mark.parametrize("patch_id", sorted(REPRODUCERS))
def test_each_patch_repairs_its_own_break(patch_id: str) -> None:
    """hotfix minus one patch fails at that patch's stage with the error users saw; outside its range it skips."""
    stage, users_saw = REPRODUCERS[patch_id]
    check_patch(patch_id, flow, error=f"[{stage}] {users_saw}")


def test_shims_for_auto_gptq_leave_other_code_alone() -> None:
    if not BROKEN_HERE:
        pytest.skip("no auto-gptq shim is applied on this stack")
    _, result = run("scope", HOTFIX_ENABLE="1")
    scope = result["scope"]
    assert scope["logits_before"] == scope["logits_after"]
    assert scope["layer_output_before"] == scope["layer_output_after"] == "Tensor"
    assert scope["hooks_left"] == 0
    # Code that is not legacy keeps transformers 5's answer to a keyword it dropped.
    assert "unexpected keyword argument 'resume_download'" in scope["resume_download"]
