"""Generate docs/patches.md from registry.toml.

.venv/bin/python scripts/gen_patches_doc.py          # rewrite docs/patches.md
.venv/bin/python scripts/gen_patches_doc.py --check  # exit 1 if it is stale (the tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hotfix._registry import load_toml  # noqa: E402
from hotfix._resources import registry_text  # noqa: E402

TARGET = ROOT / "docs" / "patches.md"

NOT_SHIMMED = """
## Breaks deliberately not shimmed

| break | why |
| --- | --- |
| X1 `torch.load(weights_only=True)` default (torch 2.6) | {X1} |

Every other row of the catalog (`../shared/BREAKS.md`) that has no patch above is not repaired *yet*:
`hotfix doctor` names the ones that hit the installed versions and exits non-zero.
"""


X1 = (
    "A security fix: restoring unpickling of arbitrary objects would reopen remote code execution through "
    "checkpoint files. hotfix never bypasses it by default; convert checkpoints to safetensors, or allow-list "
    "the classes with `torch.serialization.add_safe_globals`."
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    patches, breaks = load_toml(registry_text(), "registry.toml")
    lines = [
        "# Patches",
        "",
        "Generated from `registry.toml` by `scripts/gen_patches_doc.py`; a test fails when this page is stale.",
        "",
        "| id | break | affected | what users saw | shim | links | limits |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for patch in patches:
        links = " ".join(f"[{i + 1}]({link})" for i, link in enumerate(patch.links))
        flags = " (opt-in)" if not patch.default else ""
        flags += " (unsafe)" if patch.unsafe else ""
        lines.append(
            f"| `{patch.id}`{flags} | {', '.join(patch.catalog)}: {_cell(patch.summary)} "
            f"| {patch.distribution} `{patch.affected}` | `{_cell(patch.error)}` | {patch.shape} "
            f"| {links} | {_cell(patch.limits)} |"
        )
    covered = {c for p in patches for c in p.catalog}
    lines += ["", "## Catalog rows without a patch yet", "", "| break | affected | summary |", "| --- | --- | --- |"]
    for known in breaks:
        if known.id not in covered:
            lines.append(f"| {known.id} | {known.distribution} `{known.affected}` | {_cell(known.summary)} |")
    return "\n".join(lines) + "\n" + NOT_SHIMMED.format(X1=X1)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run scripts/gen_patches_doc.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
