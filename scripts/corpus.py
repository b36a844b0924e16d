"""Run a corpus of real remote-code model folders through ``hotfix check`` in several environments.

    python scripts/corpus.py run CORPUS ENV [ENV ...]   writes CORPUS-results/<env>.json
    python scripts/corpus.py table CORPUS REF ENV ...   prints the docs/compatibility.md table
    python scripts/corpus.py scan CORPUS ENV [ENV ...]  checks hotfix scan against real imports and the run
    python scripts/corpus.py assemble MANIFEST MIRRORS CORPUS   builds CORPUS from git mirrors

CORPUS is a folder of model folders (config.json, the model's .py files,
tokenizer files; no weights), one per family, each with a SOURCE.json that
says where its files come from ({"family", "repo", "commit", "url"}). The
corpus itself is third-party code: keep it outside the repository. ENV is a
virtual environment folder (.venv, .venv-tf4.40, ...); each family runs in it
with hotfix and without. ``assemble`` makes CORPUS from the families listed in
MANIFEST (scripts/corpus/families.toml says how). ``table`` compares every environment's tokens and
logits with those of the reference environments REF (comma-separated: the old
stacks the files were written for; per family the first one where every stage
passes without hotfix is its reference).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STAGES = ["construct", "save and reload", "forward", "generate with cache", "generate without cache", "cache agrees",
          "tokenizer"]  # fmt: skip


def families(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if (p / "config.json").is_file() and not p.name.startswith("_"))


MODES = ("hotfix", "after", "vendored", "plain")


def run(corpus: Path, envs: list[str], only: list[str] | None = None, modes: tuple[str, ...] = MODES) -> None:
    """Check every family (or those named in *only*) in each environment; results merge into earlier ones."""
    out = corpus.parent / (corpus.name + "-results")
    out.mkdir(exist_ok=True)
    for env in envs:
        python = str(Path(env) / "bin" / "python")
        target = out / f"{Path(env).name}.json"
        results: dict[str, Any] = json.loads(target.read_text()) if target.exists() else {}
        for folder in families(corpus):
            if only and folder.name not in only:
                continue
            for mode in modes:
                options = f"use_hotfix={mode != 'plain'}, after={mode == 'after'}, vendored={mode == 'vendored'}"
                code = (
                    "import json, sys; from pathlib import Path; from hotfix._check import check; "
                    f"report = check(Path(sys.argv[1]), {options}); print(json.dumps(report))"
                )
                completed = subprocess.run([python, "-c", code, str(folder)], capture_output=True, text=True)
                lines = completed.stdout.strip().splitlines()
                report = json.loads(lines[-1]) if lines else {"stages": [], "crashed": completed.stderr[-500:]}
                results.setdefault(folder.name, {})[mode] = report
                failed = [s["stage"] for s in report["stages"] if not s["ok"]]
                print(f"{Path(env).name} {folder.name} {mode}: "
                      f"{report.get('refused') or report.get('crashed') or failed or 'ok'}", flush=True)  # fmt: skip
            target.write_text(json.dumps(results, indent=1), encoding="utf-8")


MODEL_STAGES = STAGES[:-1]


def _model_ok(report: dict[str, Any]) -> bool:
    """Every model stage that ran passed, and at least construct, save and reload and forward ran."""
    stages = {s["stage"]: s["ok"] for s in report.get("stages", [])}
    ran = [name for name in MODEL_STAGES if name in stages]
    return {"construct", "save and reload", "forward"} <= set(ran) and all(stages[name] for name in ran)


def _tokenizer_ok(report: dict[str, Any]) -> bool:
    return any(s["stage"] == "tokenizer" and s["ok"] for s in report.get("stages", []))


def _compare(report: dict[str, Any], model_ref: dict[str, Any] | None, tok_ref: dict[str, Any] | None) -> str:
    """'= ref' when logits agree within 1e-3 and tokens and tokenizer ids are equal, else what differs.

    An encoder (a reference without generated tokens) is compared on its logits: '= ref (logits)'.
    """
    differ, compared, logits_only = [], False, False
    if model_ref is not None and "logits" in report and "logits" in model_ref:
        compared = True
        close = all(abs(x - y) <= 1e-3 for x, y in zip(report["logits"], model_ref["logits"], strict=True))
        if not close:
            differ.append("logits")
        if "tokens" in report and "tokens" in model_ref:
            if report["tokens"] != model_ref["tokens"]:
                differ.append("tokens")
        elif "tokens" not in model_ref:  # an encoder: no generate stages, its logits are what there is to compare
            logits_only = True
    if tok_ref is not None and "tokenizer" in report and "tokenizer" in tok_ref:
        compared = True
        if report["tokenizer"] != tok_ref["tokenizer"]:
            differ.append("tokenizer ids")
    if not compared:
        return ""
    if differ:
        return f", **{' and '.join(differ)} ≠ ref**"
    return ", = ref (logits)" if logits_only and not (tok_ref and "tokenizer" in report) else ", = ref"


def _cell(report: dict[str, Any], model_ref: dict[str, Any] | None, tok_ref: dict[str, Any] | None) -> str:
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
    return text + _compare(report, model_ref, tok_ref)


def table(corpus: Path, refs: list[str], envs: list[str]) -> str:
    out = corpus.parent / (corpus.name + "-results")
    loaded = {env: json.loads((out / f"{Path(env).name}.json").read_text()) for env in [*refs, *envs]}
    header = ["family", "source", "reference (model / tokenizer)"]
    header += [f"{Path(e).name} + hotfix" for e in envs] + [f"{Path(e).name} without" for e in envs]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for folder in families(corpus):
        name = folder.name
        source = json.loads((folder / "SOURCE.json").read_text()) if (folder / "SOURCE.json").exists() else {}
        model_ref = tok_ref = None
        model_name = tok_name = "none"
        for env in refs:
            plain = loaded[env].get(name, {}).get("plain")
            if plain and model_ref is None and _model_ok(plain):
                model_ref, model_name = plain, str(plain.get("transformers"))
            if plain and tok_ref is None and _tokenizer_ok(plain):
                tok_ref, tok_name = plain, str(plain.get("transformers"))
        link = f"[{source.get('repo', '?')}]({source.get('url', '')})" if source else "?"
        row = [name, link, f"{model_name} / {tok_name}"]
        for env in envs:
            runs = loaded[env].get(name, {})
            before = _cell(runs["hotfix"], model_ref, tok_ref) if "hotfix" in runs else "not run"
            cell = before
            for mode, label in (("after", "enabled after import"), ("vendored", "vendored")):
                other = _cell(runs[mode], model_ref, tok_ref) if mode in runs else "not run"
                if other != before:
                    cell += f"; {label}: {other}"
            row.append(cell)
        for env in envs:
            runs = loaded[env].get(name, {})
            row.append(_cell(runs["plain"], model_ref, tok_ref) if "plain" in runs else "not run")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


_VERIFY = r"""
import json, sys
answers = {}
for key in json.load(sys.stdin):
    module, _, name = key.partition(":")
    statement = f"from {module} import {name}" if name else f"import {module}"
    try:
        exec(statement, {})
        answers[key] = True
    except ImportError:
        answers[key] = False
    except BaseException as error:
        answers[key] = repr(error)[:200]
print("VERIFY " + json.dumps(answers))
"""
_IMPORT_ERROR = re.compile(
    r"cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'|No module named '(?P<missing>[\w.]+)'"
)


def verify_scan(corpus: Path, envs: list[str]) -> list[str]:
    """Per environment: scan every family; every import finding must match what Python's import says, and every
    import error the corpus run hit without hotfix must be listed as missing. Returns the summary lines."""
    lines = []
    for env in envs:
        python = str(Path(env) / "bin" / "python")
        results_file = corpus.parent / (corpus.name + "-results") / f"{Path(env).name}.json"
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
        keys: dict[str, bool] = {}  # key -> scan says it is available
        wrong, unmatched, missing_total, seconds = [], [], 0, []
        for folder in families(corpus):
            if not any(folder.glob("*.py")):
                continue
            started = time.perf_counter()
            done = subprocess.run([python, "-m", "hotfix", "scan", "--json", str(folder)], capture_output=True,
                                  text=True, env=clean)  # fmt: skip
            seconds.append(time.perf_counter() - started)
            report = json.loads(done.stdout)
            missing = set()
            for finding in report["findings"]:
                if finding["kind"] != "import" or finding["status"] in ("not-installed", "unknown"):
                    continue
                keys[finding["name"]] = finding["status"] == "available"
                if finding["status"] != "available":
                    missing.add(finding["name"])
            missing_total += len(missing)
            plain = results.get(folder.name, {}).get("plain", {})
            for stage in plain.get("stages", []):
                match = _IMPORT_ERROR.search(stage.get("error") or "") if not stage["ok"] else None
                if match is None:
                    continue
                if match["missing"]:
                    hit = any(k.partition(":")[0] == match["missing"] or k.startswith((match["missing"] + ":",
                              match["missing"] + ".")) for k in missing)  # fmt: skip
                    what = match["missing"]
                else:
                    hit = f"{match['module']}:{match['name']}" in missing
                    what = f"{match['module']}:{match['name']}"
                if not hit and what.partition(":")[0].partition(".")[0] in (
                    "transformers",
                    "torch",
                    "peft",
                    "accelerate",
                    "huggingface_hub",
                ):
                    unmatched.append(f"{folder.name}: the run failed on {what}, scan does not list it")
        done = subprocess.run([python, "-c", _VERIFY], input=json.dumps(sorted(keys)), capture_output=True,
                              text=True, env=clean)  # fmt: skip
        line = next(x for x in done.stdout.splitlines() if x.startswith("VERIFY "))
        truth = json.loads(line[len("VERIFY ") :])
        for key, available in sorted(keys.items()):
            if truth[key] is not available:
                wrong.append(f"{key}: scan says {'available' if available else 'missing'}, import says {truth[key]}")
        lines.append(
            f"{Path(env).name}: {len(keys)} distinct names checked by importing them, {len(wrong)} wrong; "
            f"{missing_total} missing names listed; {len(unmatched)} import errors of the run not listed; "
            f"scan took {max(seconds):.2f} s at most per folder"
        )
        lines += [f"  wrong: {w}" for w in wrong] + [f"  not listed: {u}" for u in unmatched]
    return lines


CODE_SUFFIXES = (".py", ".json", ".model", ".tiktoken", ".txt", ".vocab")
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
SPM_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hello", "world", "model", "code", "token",
             "python", "import", "value", "def", "return", "class", "你好", "世界", "模型", "代码"]  # fmt: skip
SPM_SYMBOLS = ["<n>", "<|tab|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<ENC>", "<dBLOCK>",
               "<unused_0>", "<|im_start|>", "<|im_end|>"]  # fmt: skip


def _git_dir(mirrors: Path, repo: str) -> Path:
    folder = mirrors / repo.replace("/", "+") / "repo"
    return folder / ".git" if (folder / ".git").is_dir() else folder


def _git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, check=True).stdout


def small_sentencepiece(target: Path) -> None:
    """A small SentencePiece model (byte fallback, the special pieces legacy tokenizers look up) at *target*."""
    import random

    import sentencepiece

    generator = random.Random(0)
    lines = [" ".join(generator.choice(SPM_WORDS) for _ in range(12)) for _ in range(800)]
    prefix = target.with_suffix("")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(prefix), vocab_size=400, model_type="bpe",
        character_coverage=1.0, byte_fallback=True, user_defined_symbols=SPM_SYMBOLS,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )  # fmt: skip
    prefix.with_suffix(".vocab").unlink()
    if prefix.with_suffix(".model") != target:
        prefix.with_suffix(".model").rename(target)


def assemble(manifest: Path, mirrors: Path, corpus: Path) -> list[str]:
    """One model folder per family of *manifest* in *corpus*, from the git mirrors in *mirrors*; what was done."""
    import tomllib

    entries = tomllib.loads(manifest.read_text(encoding="utf-8")).get("family", [])
    corpus.mkdir(parents=True, exist_ok=True)
    lines = []
    for entry in entries:
        name, repo, commit, path = entry["name"], entry["repo"], entry["commit"], entry.get("path", "")
        git_dir = _git_dir(mirrors, repo)
        if not git_dir.is_dir():
            lines.append(f"{name}: no mirror of {repo} in {mirrors} (fetch github:{repo})")
            continue
        target = corpus / name
        target.mkdir(exist_ok=True)
        listing = _git(git_dir, "ls-tree", "-z", f"{commit}:{path}" if path else commit).decode().split("\0")
        taken, replaced, left_out = [], [], []
        for row in filter(None, listing):
            meta, file_name = row.split("\t", 1)
            kind, blob = meta.split()[1], meta.split()[2]
            wanted = entry.get("files", [file_name])
            if kind != "blob" or not file_name.endswith(CODE_SUFFIXES) or file_name not in wanted:
                continue
            try:
                content = _git(git_dir, "cat-file", "blob", blob)
            except subprocess.CalledProcessError:
                left_out.append(f"{file_name} (not in the mirror)")
                continue
            if content.startswith(LFS_POINTER):
                if file_name.endswith(".model"):
                    small_sentencepiece(target / file_name)
                    replaced.append(file_name)
                else:
                    left_out.append(f"{file_name} (a Git LFS pointer)")
                continue
            (target / file_name).write_bytes(content)
            taken.append(file_name)
        for file_name in entry.get("sentencepiece", []):
            if not (target / file_name).exists():
                small_sentencepiece(target / file_name)
                replaced.append(file_name)
        if "config" in entry:
            (target / "config.json").write_bytes((manifest.parent / entry["config"]).read_bytes())
        url = f"https://github.com/{repo}/tree/{commit}" + (f"/{path}" if path else "")
        source = {"family": name, "repo": repo, "commit": commit, "url": url, "path": path, "files": taken,
                  "replaced by a small SentencePiece model": replaced, "left out": left_out,
                  "config written for the corpus": "config" in entry}  # fmt: skip
        (target / "SOURCE.json").write_text(json.dumps(source, indent=1, ensure_ascii=False), encoding="utf-8")
        extra = f"; replaced {', '.join(replaced)}" if replaced else ""
        extra += f"; left out {', '.join(left_out)}" if left_out else ""
        lines.append(f"{name}: {len(taken)} files{extra}")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run")
    running.add_argument("corpus", type=Path)
    running.add_argument("envs", nargs="+")
    running.add_argument("--only", help="comma-separated family folders to (re)run")
    running.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    tabling = commands.add_parser("table")
    tabling.add_argument("corpus", type=Path)
    tabling.add_argument("refs")
    tabling.add_argument("envs", nargs="+")
    scanning = commands.add_parser("scan")
    scanning.add_argument("corpus", type=Path)
    scanning.add_argument("envs", nargs="+")
    assembling = commands.add_parser("assemble")
    assembling.add_argument("manifest", type=Path)
    assembling.add_argument("mirrors", type=Path)
    assembling.add_argument("corpus", type=Path)
    args = parser.parse_args(argv)
    if args.command == "assemble":
        print("\n".join(assemble(args.manifest, args.mirrors, args.corpus)))
        return 0
    if args.command == "scan":
        report = verify_scan(args.corpus, args.envs)
        print("\n".join(report))
        return 1 if any(line.startswith("  ") for line in report) else 0
    if args.command == "run":
        run(args.corpus, args.envs, args.only.split(",") if args.only else None, tuple(args.modes.split(",")))
    else:
        print(table(args.corpus, args.refs.split(","), args.envs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
