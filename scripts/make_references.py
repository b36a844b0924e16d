"""Regenerate the reference outputs of the legacy fixtures.

Run each with the interpreter of the oldest environment where that fixture
works natively (no hotfix):

    .venv-tf4.40/bin/python scripts/make_references.py            # the LegacyLM model (DynamicCache: 4.36+)
    .venv-tf4.33/bin/python scripts/make_references.py tokenizer  # its 2023-style tokenizer (breaks from 4.34)

(``bash scripts/setup reference`` makes .venv-tf4.33, which is outside the
test matrix: the tokenizer is written for transformers <= 4.33 and fails
natively on every matrix version, which is the break it reproduces.)

The model reference (tests/data/legacy_lm_reference.json) holds the
last-position logits and the greedy tokens with and without cache; the
tokenizer reference (tests/data/legacy_tok_reference.json) the ids, masks and
strings of every tokenizer stage. Tests on newer versions compare against them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "model"
    if which not in ("model", "tokenizer"):
        raise SystemExit("usage: make_references.py [model|tokenizer]")
    name = "legacy_lm" if which == "model" else "legacy_tok"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "scenario.py"), name],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    if not outcome["ok"]:
        raise SystemExit(f"the fixture does not run natively here: {outcome['error']}")
    if which == "model":
        reference = {"transformers": outcome["transformers"], **outcome["result"]}
    else:
        reference = {"transformers": outcome["transformers"], "result": outcome["result"]}
    target = ROOT / "tests" / "data" / f"{name}_reference.json"
    target.write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target} from transformers {outcome['transformers']}")


if __name__ == "__main__":
    main()
