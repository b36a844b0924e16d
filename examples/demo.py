"""hotfix demo: a 2024-style remote-code model on today's transformers.

    bash scripts/setup latest && .venv/bin/python examples/demo.py

Writes a tiny LegacyLM checkpoint (random weights, its own modeling code,
loaded with trust_remote_code=True), shows that the installed transformers
cannot load it, then loads and generates with it under hotfix, and prints
hotfix's status. Nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RUN = """
import sys
sys.path.insert(0, {tests!r})
from legacy_models import run_legacy_lm
print(run_legacy_lm({checkpoint!r})["tokens"]["cache"])
"""


def main() -> int:
    import transformers
    from legacy_models import write_legacy_lm

    checkpoint = write_legacy_lm(Path(tempfile.mkdtemp()) / "legacy_lm")
    print(f"transformers {transformers.__version__}; tiny legacy model written to {checkpoint}\n")
    code = RUN.format(tests=str(ROOT / "tests"), checkpoint=str(checkpoint))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}

    print("1. without hotfix:")
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    if plain.returncode == 0:
        print(f"   works natively on this version: {plain.stdout.strip()}")
    else:
        print(f"   fails: {plain.stderr.strip().splitlines()[-1]}")

    print("\n2. with hotfix.enable():")
    import hotfix

    hotfix.enable()
    from legacy_models import run_legacy_lm

    result = run_legacy_lm(checkpoint)
    print(f"   greedy tokens: {result['tokens']['cache']}")
    print(f"   lm_head tied to the input embedding: {result['tied']}\n")
    print(hotfix.status())
    return 0


if __name__ == "__main__":
    sys.exit(main())
