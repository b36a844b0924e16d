"""Regenerate the reference of the LegacyLM scenarios (tests/data/legacy_lm_reference.json).

Run it with the interpreter of the oldest matrix environment where LegacyLM
works natively (it uses DynamicCache: 4.36+), without hotfix:

    .venv-tf4.40/bin/python scripts/make_references.py

It holds the last-position logits and the greedy tokens with and without cache
of the ``legacy_lm`` scenario (tests/scenario.py); the per-patch tests on newer
versions compare against it. The LegacyLM tokenizer's reference, like every
fixture package's, is made by scripts/make_fixture_references.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    if len(sys.argv) > 1:
        raise SystemExit(
            "usage: make_references.py   (the tokenizer: scripts/make_fixture_references.py legacy_lm tokenizer)"
        )
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "scenario.py"), "legacy_lm"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    if not outcome["ok"]:
        raise SystemExit(f"the fixture does not run natively here: {outcome['error']}")
    reference = {"transformers": outcome["transformers"], **outcome["result"]}
    target = ROOT / "tests" / "data" / "legacy_lm_reference.json"
    target.write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target} from transformers {outcome['transformers']}")


if __name__ == "__main__":
    main()
