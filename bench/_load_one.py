"""One model load in a fresh process, for item 12 (``test_loading.py``): prints one JSON line.

    python bench/_load_one.py build-legacy DIR SIZES    write the legacy InternLM2 fixture at SIZES (with hotfix)
    python bench/_load_one.py load DIR MODE [--trust]   time from_pretrained, then greedy-generate 8 tokens

MODE is ``default`` (plain ``from_pretrained``), ``auto`` (``device_map="auto"``) or ``offload``
(``device_map="auto"`` with a CPU budget of half the checkpoint and the rest offloaded to a folder on disk).
The load is timed alone (imports are not); the peak RSS is the process's high-water mark (VmHWM) after
the load and generation, and its growth over the RSS before the load is reported beside it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [[1, 5, 9, 14, 20, 33, 7, 11]]


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of this process; getrusage's ru_maxrss survives fork+exec on Linux
    and would report the parent's peak where that is larger."""
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def build_legacy(directory: Path, sizes: dict[str, Any]) -> None:
    """The InternLM2-style fixture (tests/fixtures/legacy_internlm2) at *sizes*, bfloat16, sharded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    spec = json.loads((ROOT / "tests" / "fixtures" / "legacy_internlm2" / "fixture.json").read_text(encoding="utf-8"))
    config = {**spec["config"], **sizes, "torch_dtype": "bfloat16"}
    for source in (ROOT / "tests" / "fixtures" / "legacy_internlm2").glob("*.py"):
        shutil.copy(source, directory / source.name)
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(directory), trust_remote_code=True),
                                             trust_remote_code=True)  # fmt: skip
    model.to(torch.bfloat16).save_pretrained(str(directory), max_shard_size="60MB")
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def load(directory: Path, mode: str, trust: bool) -> dict[str, Any]:
    import torch
    import transformers

    size = sum(path.stat().st_size for path in directory.glob("*.safetensors"))
    # bfloat16 on every stack: 4.x loaded a checkpoint in float32 unless told, 5.x in its saved dtype.
    dtype_key = "torch_dtype" if int(transformers.__version__.split(".")[0]) < 5 else "dtype"
    kwargs: dict[str, Any] = {"trust_remote_code": trust, dtype_key: torch.bfloat16}
    offload = None
    if mode in ("auto", "offload"):
        kwargs["device_map"] = "auto"
    if mode == "offload":
        offload = tempfile.mkdtemp(prefix="hotfix-bench-offload-")
        kwargs.update(max_memory={"cpu": size // 2}, offload_folder=offload)
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(directory), **kwargs).eval()
    seconds = time.perf_counter() - started
    with torch.no_grad():
        tokens = model.generate(torch.tensor(PROMPT), max_new_tokens=8, do_sample=False, pad_token_id=0)
    peak = _status_mb("VmHWM")
    placed = sorted(set(map(str, (getattr(model, "hf_device_map", None) or {}).values())))
    if offload is not None:
        shutil.rmtree(offload, ignore_errors=True)
    return {"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before, "checkpoint_mb": size / 2**20,
            "tokens": tokens[0, len(PROMPT[0]) :].tolist(), "placed": placed,
            "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip


def main(argv: list[str]) -> None:
    if argv[0] == "build-legacy":
        build_legacy(Path(argv[1]), json.loads(argv[2]))
        print(json.dumps({"ok": True}))
    else:
        print(json.dumps(load(Path(argv[1]), argv[2], "--trust" in argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
