"""Generate docs/patches.md from registry.toml.

.venv/bin/python scripts/gen_patches_doc.py          # rewrite docs/patches.md
.venv/bin/python scripts/gen_patches_doc.py --check  # exit 1 if it is stale (the tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hotfix import _framework  # noqa: E402
from hotfix._registry import load_toml  # noqa: E402
from hotfix._resources import registry_text  # noqa: E402

TARGET = ROOT / "docs" / "patches.md"

NOT_SHIMMED_INTRO = """
## Breaks deliberately not shimmed

Catalog rows marked `refused` in `registry.toml`; `hotfix list` and `hotfix doctor` show them with the reason.

| break | what | why |
| --- | --- | --- |
"""

NOT_YET = """
Every other row of the break catalog (the `[[break]]` rows of `registry.toml`) that has no patch above is not
repaired *yet*: `hotfix doctor` names the ones that hit the installed versions and exits non-zero.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    patches, breaks = load_toml(registry_text(), "registry.toml")
    lines = [
        "# Patches",
        "",
        "Generated from `registry.toml` by `scripts/gen_patches_doc.py`; a test fails when this page is stale.",
        "The test column is each patch's reproducer in hotfix's own tests (`scenario:NAME` in `tests/scenario.py`,",
        "`package:NAME/PART` a fixture package, `autogptq:STAGE` the auto-gptq flow); "
        "`pytest tests -k PATCH-ID` runs its check.",
        "",
        "| id | break | affected | what users saw | shim | test | links | limits |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for patch in patches:
        links = " ".join(f"[{i + 1}]({link})" for i, link in enumerate(patch.links))
        flags = " (opt-in)" if not patch.default else ""
        flags += " (unsafe)" if patch.unsafe else ""
        lines.append(
            f"| `{patch.id}`{flags} | {', '.join(patch.catalog)}: {_cell(patch.summary)} "
            f"| {patch.distribution} `{patch.affected}` | `{_cell(patch.error)}` | {patch.shape} "
            f"| `{patch.reproducer}` | {links} | {_cell(patch.limits)} |"
        )
    lines += [
        "",
        "## The framework's own patches",
        "",
        "Plugin `hotfix.framework`: no break of their own, they hand hotfix the modules that transformers loads",
        "outside the import system, so that the patches above reach them. An allow list in `HOTFIX_PATCHES` keeps",
        "them on; a deny item turns them off.",
        "",
        "| id | watches | what it does | test |",
        "| --- | --- | --- | --- |",
    ]
    for patch in _framework.PATCHES:
        lines.append(f"| `{patch.id}` | `{', '.join(patch.modules)}` | {_cell(patch.summary)} | `{patch.reproducer}` |")
    covered = {c for p in patches for c in p.catalog}
    lines += ["", "## Catalog rows without a patch yet", "", "| break | affected | summary |", "| --- | --- | --- |"]
    for known in breaks:
        if known.id not in covered and not known.refused:
            lines.append(f"| {known.id} | {known.distribution} `{known.affected}` | {_cell(known.summary)} |")
    lines.append(NOT_SHIMMED_INTRO.rstrip("\n"))
    for known in breaks:
        if known.refused:
            lines.append(f"| {known.id} | {_cell(known.summary)} | {_cell(known.refused)} |")
    return "\n".join(lines) + "\n" + NOT_YET


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
