"""Generate hotfix/_index.py, the watch index that enable() reads, from registry.toml and the framework's patches.

.venv/bin/python scripts/gen_index.py          # rewrite hotfix/_index.py
.venv/bin/python scripts/gen_index.py --check  # exit 1 if stale (a test runs this; the wheel build regenerates it)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "hotfix" / "_index.py"


def generated() -> str:
    sys.path.insert(0, str(ROOT))
    from hotfix._plugins import index_text

    return index_text()


def stale() -> bool:
    return not TARGET.exists() or TARGET.read_text(encoding="utf-8") != generated()


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if stale():
            print(f"{TARGET} is stale: run scripts/gen_index.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(generated(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
