"""Run a corpus of real remote-code model folders through ``hotfix check`` in several environments.

    python scripts/corpus.py run CORPUS ENV [ENV ...]   writes CORPUS-results/<env>.json
    python scripts/corpus.py table CORPUS REF ENV ...   prints the docs/compatibility.md table

CORPUS is a folder of model folders (config.json, the model's .py files,
tokenizer files; no weights), one per family, each with a SOURCE.json that
says where its files come from ({"family", "repo", "commit", "url"}). The
corpus itself is third-party code: keep it outside the repository. ENV is a
virtual environment folder (.venv, .venv-tf4.40, ...); each family runs in it
with hotfix and without. ``table`` compares every environment's tokens and
logits with those of the reference environments REF (comma-separated: the old
stacks the files were written for; per family the first one where every stage
passes without hotfix is its reference).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

STAGES = ["construct", "save and reload", "forward", "generate with cache", "generate without cache", "cache agrees",
          "tokenizer"]  # fmt: skip


def families(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if (p / "config.json").is_file() and not p.name.startswith("_"))


def run(corpus: Path, envs: list[str]) -> None:
    out = corpus.parent / (corpus.name + "-results")
    out.mkdir(exist_ok=True)
    for env in envs:
        python = str(Path(env) / "bin" / "python")
        results: dict[str, Any] = {}
        for folder in families(corpus):
            for mode in ("hotfix", "after", "plain"):
                code = (
                    "import json, sys; from pathlib import Path; from hotfix._check import check; "
                    f"report = check(Path(sys.argv[1]), use_hotfix={mode != 'plain'}, after={mode == 'after'}); "
                    "print(json.dumps(report))"
                )
                completed = subprocess.run([python, "-c", code, str(folder)], capture_output=True, text=True)
                lines = completed.stdout.strip().splitlines()
                report = json.loads(lines[-1]) if lines else {"stages": [], "crashed": completed.stderr[-500:]}
                results.setdefault(folder.name, {})[mode] = report
                failed = [s["stage"] for s in report["stages"] if not s["ok"]]
                print(f"{Path(env).name} {folder.name} {mode}: "
                      f"{report.get('refused') or report.get('crashed') or failed or 'ok'}", flush=True)  # fmt: skip
        (out / f"{Path(env).name}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Tokens equal and logits within 1e-3 of each other; None when either side has none."""
    if "tokens" not in a or "tokens" not in b or "logits" not in a or "logits" not in b:
        return None
    close = all(abs(x - y) <= 1e-3 for x, y in zip(a["logits"], b["logits"], strict=True))
    return bool(close and a["tokens"] == b["tokens"])


def _cell(report: dict[str, Any], reference: dict[str, Any] | None) -> str:
    if "refused" in report:
        return "refused"
    if "crashed" in report:
        return "crashed"
    stages = {s["stage"]: s for s in report["stages"]}
    failed = [name for name in STAGES if name in stages and not stages[name]["ok"]]
    ran = sum(1 for name in STAGES if name in stages)
    text = f"{ran - len(failed)}/{ran}"
    if failed:
        text += " (" + ", ".join(failed) + ")"
    if reference is not None:
        same = _same(report, reference)
        text += "" if same is None else (", = ref" if same else ", **≠ ref**")
    return text


def table(corpus: Path, refs: list[str], envs: list[str]) -> str:
    out = corpus.parent / (corpus.name + "-results")
    loaded = {env: json.loads((out / f"{Path(env).name}.json").read_text()) for env in [*refs, *envs]}
    header = ["family", "source", "reference"] + [f"{Path(e).name} + hotfix" for e in envs]
    header += [f"{Path(e).name} without" for e in envs]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for folder in families(corpus):
        name = folder.name
        source = json.loads((folder / "SOURCE.json").read_text()) if (folder / "SOURCE.json").exists() else {}
        reference, ref_name = None, "none"
        for env in refs:
            plain = loaded[env].get(name, {}).get("plain")
            if plain and plain["stages"] and all(s["ok"] for s in plain["stages"]):
                reference, ref_name = plain, f"{Path(env).name} ({plain.get('transformers')})"
                break
        link = f"[{source.get('repo', '?')}]({source.get('url', '')})" if source else "?"
        row = [name, link, ref_name]
        for env in envs:
            before = _cell(loaded[env][name]["hotfix"], reference)
            after = _cell(loaded[env][name]["after"], reference) if "after" in loaded[env][name] else before
            row.append(before if after == before else f"{before}; enabled after import: {after}")
        row += [_cell(loaded[e][name]["plain"], reference) for e in envs]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run")
    running.add_argument("corpus", type=Path)
    running.add_argument("envs", nargs="+")
    tabling = commands.add_parser("table")
    tabling.add_argument("corpus", type=Path)
    tabling.add_argument("refs")
    tabling.add_argument("envs", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.corpus, args.envs)
    else:
        print(table(args.corpus, args.refs.split(","), args.envs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
