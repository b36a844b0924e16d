"""Regenerate the auto-gptq reference checkpoint and outputs (tests/data/gptq).

Run it with the interpreter of auto-gptq's own 2024 stack, where it works
natively (no hotfix):

    .venv-gptq-ref/bin/python scripts/make_gptq_reference.py

It builds the tiny fp16 Llama of tests/gptq_flow.py from a seed, quantizes it
with auto-gptq 0.7.1 (4 bit, group size 64; the harness makes auto-gptq's CUDA
checks pass on CPU for this step), writes the ``save_quantized`` checkpoint to
tests/data/gptq/checkpoint, loads it back with ``from_quantized(device="cpu")``
and records forward logits and greedy tokens in tests/data/gptq/reference.json.
tests/test_autogptq.py compares every stack against these.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import gptq_flow  # noqa: E402


def main() -> None:
    import hotfix

    if hotfix.is_enabled():
        raise SystemExit("run the reference without hotfix (unset HOTFIX_ENABLE)")
    from transformers import __version__

    if int(__version__.split(".")[0]) >= 5:
        raise SystemExit(f"transformers {__version__}: run this in .venv-gptq-ref, auto-gptq's own stack")
    data = ROOT / "tests" / "data" / "gptq"
    data.mkdir(parents=True, exist_ok=True)
    gptq_flow.make(data)


if __name__ == "__main__":
    main()
