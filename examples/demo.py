"""hotfix demo: a 2024-style remote-code model on today's transformers.

    bash scripts/setup latest && .venv/bin/python examples/demo.py

Writes a tiny LegacyLM checkpoint (random weights, its own modeling code,
loaded with trust_remote_code=True) and tells its story on the installed
transformers: what ``hotfix scan`` finds in its code without running it, how
it fails without hotfix, that it loads and generates with hotfix and gives
the tokens recorded on the transformers it was written for, and which patches
it used. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

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
    reference = json.loads((ROOT / "tests" / "data" / "legacy_lm_reference.json").read_text(encoding="utf-8"))
    print(f"transformers {transformers.__version__}; a tiny legacy model written to {checkpoint}\n")

    print("1. hotfix scan (reads the model's code, runs none of it):")
    scanned = subprocess.run([sys.executable, "-m", "hotfix", "scan", str(checkpoint)], capture_output=True, text=True)
    lines = scanned.stdout.strip().splitlines()[1:]
    for line in lines[:-1][:6]:
        print("   " + line.strip())
    if len(lines) > 7:
        print(f"   ... and {len(lines) - 7} more: hotfix scan {checkpoint}")
    print("   " + lines[-1].strip())

    print("\n2. without hotfix:")
    code = RUN.format(tests=str(ROOT / "tests"), checkpoint=str(checkpoint))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    if plain.returncode == 0:
        print(f"   works natively on this version: {plain.stdout.strip()}")
    else:
        lines = plain.stderr.strip().splitlines() or [f"exit code {plain.returncode}"]
        print(f"   fails: {lines[-1]}")

    print("\n3. with hotfix.enable():")
    import hotfix

    hotfix.enable()
    from legacy_models import run_legacy_lm

    result = run_legacy_lm(checkpoint)
    tokens = result["tokens"]["cache"]
    same = tokens == reference["tokens"]["cache"]
    print(f"   greedy tokens: {tokens}")
    print(f"   equal to the tokens recorded on transformers {reference['transformers']}: {'yes' if same else 'NO'}")

    used = [p for p in hotfix.status().patches if p.used]
    print(f"\n4. the patches this model used ({len(used)}):")
    for patch in used:
        print(f"   {patch.id}: {patch.used_by}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
