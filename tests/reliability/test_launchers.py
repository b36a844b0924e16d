"""Guarantee: activation reaches the worker processes of the launchers models are trained and served with.

- ``hotfix run -- torchrun --nproc-per-node 2 ...`` (CPU, gloo): every rank loads the legacy model with its
  shims, its forward and greedy generate equal the reference made on the old stack, and one DDP training
  step all-reduces the gradients (each rank's equals the mean of the ranks' local ones) and leaves the ranks'
  parameters equal.
- ``hotfix run -- accelerate launch --num_processes 2 ...``: the same through ``Accelerator.prepare``.
- multiprocessing with ``fork``, ``spawn`` and ``forkserver`` from a parent that called ``hotfix.enable()``
  (the workers do not call it): each worker gets the parent's patches, and the same numbers.

Each launcher is also run without hotfix, where the legacy model must fail in the workers with the error
users saw: the launcher test can fail. The workers report what ``hotfix.status()`` says was applied in them.
Slow: each run starts several interpreters that import torch and transformers (about a minute in all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from legacy_models import package_spec, write_legacy_lm
from test_packages import users_saw
from test_transformers import REFERENCE, affected

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The patches the LegacyLM model code needs that are in range here: the workers must have applied them.
NEEDED = sorted(p for p in package_spec("legacy_lm")["patches"]["model"] if affected(p))

# One rank of a distributed run: forward and generate against the reference, then one training step.
DISTRIBUTED_WORKER = """
import copy, json, os, sys
from pathlib import Path

sys.path.insert(0, {tests!r})
launcher, directory, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
import torch
import torch.distributed as dist
import torch.nn.functional as F

if launcher == "accelerate":
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    rank, world = accelerator.process_index, accelerator.num_processes
else:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
result = {{"rank": rank, "world": world, "distributed": dist.is_initialized()}}
try:
    from legacy_models import MASK, PROMPTS, run_legacy_lm
    from transformers import AutoModelForCausalLM

    result["run"] = run_legacy_lm(directory)
    model = AutoModelForCausalLM.from_pretrained(str(directory), trust_remote_code=True)
    model.eval()  # no dropout: the ranks' local gradients are exact
    ids, mask = torch.tensor([PROMPTS[rank]]), torch.tensor([MASK[rank]])

    def loss_of(module):
        logits = module(ids, attention_mask=mask).logits
        return F.cross_entropy(logits[0, :-1], ids[0, 1:])

    def flat(tensors):
        return torch.cat([t.detach().flatten() for t in tensors])

    local = copy.deepcopy(model)
    loss_of(local).backward()
    local_grad = flat(p.grad for p in local.parameters())
    if launcher == "accelerate":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        wrapped, optimizer = accelerator.prepare(model, optimizer)
        accelerator.backward(loss_of(wrapped))
    else:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.5)
        loss_of(wrapped).backward()
    result["wrapped"] = type(wrapped).__name__
    reduced = flat(p.grad for p in model.parameters())
    gathered = [torch.zeros_like(local_grad) for _ in range(world)]
    dist.all_gather(gathered, local_grad)
    mean = torch.stack(gathered).mean(dim=0)
    result["grad_is_the_mean"] = bool(torch.allclose(reduced, mean, atol=1e-6))
    result["grad_differs_from_local"] = not bool(torch.allclose(reduced, local_grad, atol=1e-6))
    before = flat(model.parameters())
    optimizer.step()
    after = flat(model.parameters())
    everyone = [torch.zeros_like(after) for _ in range(world)]
    dist.all_gather(everyone, after)
    result["params_moved"] = not bool(torch.equal(before, after))
    result["params_in_sync"] = all(torch.equal(after, other) for other in everyone)
except Exception as error:
    result["error"] = f"{{type(error).__name__}}: {{error}}"
import hotfix

status = hotfix.status()
result["enabled"], result["states"] = status.enabled, {{p.id: [p.state, p.reason] for p in status.patches}}
result["applied"] = sorted(p.id for p in status.patches if p.state == "applied")
(out / f"rank{{rank}}.json").write_text(json.dumps(result))
if dist.is_initialized():
    dist.destroy_process_group()
"""

# A parent that enables hotfix (when asked) and hands the model to workers of every start method. The workers
# never call hotfix.enable(): under spawn and forkserver the main module is imported again as __mp_main__,
# so the call sits under the __name__ guard, and only what enable() passed on can activate them.
MULTIPROCESSING_PARENT = """
import json, multiprocessing, sys
from pathlib import Path

sys.path.insert(0, {tests!r})


def work(directory):
    result = {{}}
    try:
        from legacy_models import run_legacy_lm

        result["run"] = run_legacy_lm(Path(directory))
    except Exception as error:
        result["error"] = f"{{type(error).__name__}}: {{error}}"
    import hotfix

    status = hotfix.status()
    result["enabled"], result["states"] = status.enabled, {{p.id: [p.state, p.reason] for p in status.patches}}
    result["applied"] = sorted(p.id for p in status.patches if p.state == "applied")
    return result


if __name__ == "__main__":
    directory, out, enable = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "on"
    if enable:
        import hotfix

        hotfix.enable()
    results = {{}}
    # "fork": the parent has not imported transformers yet; "fork-loaded": it has, and ran the model first.
    for name, method in [("fork", "fork"), ("spawn", "spawn"), ("forkserver", "forkserver"), ("fork-loaded", "fork")]:
        if name == "fork-loaded":
            results["parent"] = work(directory)
        with multiprocessing.get_context(method).Pool(1) as pool:
            results[name] = pool.apply(work, (directory,))
    out.write_text(json.dumps(results))
"""


def _environment() -> dict[str, str]:
    """The test's environment without any hotfix setting: only what each run asks for activates it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HOTFIX_", "PYTEST_"))}
    environment.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return environment


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=600, cwd=cwd)
    assert completed.returncode == 0, f"{command} failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    return completed


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_legacy_lm(tmp_path_factory.mktemp("legacy_lm") / "model")


def _assert_patched_run(result: dict[str, Any], where: str) -> None:
    assert "error" not in result, f"{where}: {result['error']}"
    assert result["enabled"], f"{where}: hotfix is not enabled"
    for patch in NEEDED:  # applied, or skipped because its probe found the break absent (m2 on 5.13+)
        state, reason = result["states"][patch]
        assert state == "applied" or (state == "skipped" and reason.startswith("probe:")), (where, patch, state, reason)
    assert result["run"]["tokens"] == REFERENCE["tokens"], where
    for row, expected in zip(result["run"]["logits"], REFERENCE["logits"], strict=True):
        assert row == pytest.approx(expected, abs=1e-4), where


def _assert_legacy_failure(result: dict[str, Any], where: str) -> None:
    assert not result["enabled"] and result["applied"] == [], f"{where}: hotfix active unasked: {result['applied']}"
    assert "error" in result, f"{where}: the legacy model ran without hotfix, so this test could not fail"
    errors = [part for p in NEEDED for part in users_saw(p, "legacy_lm").split("|") if not part.startswith("!")]
    assert any(error in result["error"] for error in errors), (where, result["error"])


def _launch(launcher: str, checkpoint: Path, tmp_path: Path, hotfix: bool) -> list[dict[str, Any]]:
    tmp_path.mkdir()
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(DISTRIBUTED_WORKER.format(tests=str(TESTS))), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    if launcher == "torchrun":
        command = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2"]
    else:
        # accelerate's multi-process launcher is --multi_gpu even for CPU ranks (its --cpu flag starts one
        # process); the worker's Accelerator(cpu=True) makes them gloo ranks.
        command = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
        command += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    command += [str(worker), launcher, str(checkpoint), str(out)]
    if hotfix:
        command = [str(BIN / "hotfix"), "run", "--", *command]
    _run(command, cwd=tmp_path)
    ranks = [json.loads((out / f"rank{rank}.json").read_text(encoding="utf-8")) for rank in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 and r["distributed"] for r in ranks)
    return ranks


@pytest.mark.skipif(not NEEDED, reason="the LegacyLM model needs no patch on this transformers")
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_a_launcher_hands_activation_to_every_rank_of_a_ddp_training_step(
    launcher: str, checkpoint: Path, tmp_path: Path
) -> None:
    for result in _launch(launcher, checkpoint, tmp_path / "off", hotfix=False):
        _assert_legacy_failure(result, f"{launcher} rank {result['rank']} without hotfix")
    ranks = _launch(launcher, checkpoint, tmp_path / "on", hotfix=True)
    for result in ranks:
        where = f"{launcher} rank {result['rank']}"
        _assert_patched_run(result, where)
        assert result["wrapped"] == "DistributedDataParallel", where
        assert result["grad_is_the_mean"] and result["grad_differs_from_local"], f"{where}: no all-reduce"
        assert result["params_moved"] and result["params_in_sync"], where
    assert ranks[0]["applied"] == ranks[1]["applied"]


@pytest.mark.skipif(not NEEDED, reason="the LegacyLM model needs no patch on this transformers")
def test_multiprocessing_workers_of_every_start_method_get_the_parents_activation(
    checkpoint: Path, tmp_path: Path
) -> None:
    parent = tmp_path / "parent.py"
    parent.write_text(textwrap.dedent(MULTIPROCESSING_PARENT.format(tests=str(TESTS))), encoding="utf-8")
    runs = {}
    for mode in ("off", "on"):
        out = tmp_path / f"{mode}.json"
        _run([sys.executable, str(parent), str(checkpoint), str(out), mode], cwd=tmp_path)
        runs[mode] = json.loads(out.read_text(encoding="utf-8"))
    for name, result in runs["off"].items():
        _assert_legacy_failure(result, f"{name} without hotfix")
    _assert_patched_run(runs["on"]["parent"], "the parent")
    for name in ("fork", "spawn", "forkserver", "fork-loaded"):
        _assert_patched_run(runs["on"][name], name)
        assert runs["on"][name]["applied"] == runs["on"]["parent"]["applied"], name
