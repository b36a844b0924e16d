"""Where a name exists across the transformers API snapshots in ../shared/api.

    python scripts/api_where.py MODULE NAME [NAME ...]
    python scripts/api_where.py --class CLASS MEMBER [MEMBER ...]

Prints, for each snapshot version, whether the name is there: a quick way to
find the release range of a removal before writing its patch and its gate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from packaging.version import Version

API = Path(__file__).resolve().parent.parent.parent / "shared" / "api"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--class", dest="klass", action="store_true", help="look up members of a key class")
    parser.add_argument("owner")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    files = sorted(API.glob("api-*.json"), key=lambda p: Version(p.stem.removeprefix("api-")))
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        if args.klass:
            found = data["classes"].get(args.owner, {}).get("members", {})
        else:
            module = data["modules"].get(args.owner)
            found = set(module.get("dir", [])) | set(module.get("members", {})) if isinstance(module, dict) else set()
        marks = " ".join(f"{n}={'yes' if n in found else '-'}" for n in args.names)
        print(f"{path.stem.removeprefix('api-'):>8}  {marks}")


if __name__ == "__main__":
    main()
