"""The ``hotfix`` command: list, doctor, scan, check, explain, status, new, run."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from . import _env
from ._doctor import diagnose
from ._errors import HotfixError
from ._patch import Patch
from ._runtime import RUNTIME
from ._status import PatchStatus
from ._versions import describe

__all__ = ["main"]


def _list(as_json: bool, patterns: Sequence[str] = ()) -> int:
    plans = RUNTIME.plan(None)
    patches = {p.id: p for p in RUNTIME.plugins.collected().patches}
    if patterns:
        wanted = [
            plan for plan in plans
            if any(fnmatch.fnmatchcase(plan.id, item) or item in patches[plan.id].catalog for item in patterns)
        ]  # fmt: skip
        if not wanted:
            print(f"hotfix list: no patch matches {' '.join(patterns)} (ids, globs such as 'm2-*', or break ids "
                  "such as M2)", file=sys.stderr)  # fmt: skip
            return 1
        if len(wanted) == 1 and not as_json and not any(c in patterns[0] for c in "*?[") and len(patterns) == 1:
            return _show(patches[wanted[0].id], wanted[0])
        plans = wanted
    rows = []
    for plan in plans:
        patch = patches[plan.id]
        rows.append(
            {
                "id": plan.id, "summary": patch.summary, "shape": patch.shape, "distribution": patch.distribution,
                "affected": str(patch.affected), "installed": plan.version, "catalog": list(patch.catalog),
                "reproducer": patch.reproducer,
                "default": patch.default, "unsafe": patch.unsafe, "source": patch.source,
                "would": "probe and apply" if plan.state == "pending" else "skip", "why": plan.reason,
            }
        )  # fmt: skip
    collected = RUNTIME.plugins.collected()
    errors = collected.errors
    refusals = [{"id": b.id, "summary": b.summary, "why": b.refused} for b in collected.breaks if b.refused]
    if patterns:
        refusals = [r for r in refusals if any(fnmatch.fnmatchcase(r["id"], item) for item in patterns)]
    if as_json:
        print(json.dumps({"patches": rows, "refused": refusals, "errors": errors}, indent=2))
        return 0
    for row in rows:
        flags = "" if row["default"] else (" [unsafe, opt-in]" if row["unsafe"] else " [opt-in]")
        print(f"{row['id']}{flags}  ({row['distribution']} {describe(str(row['affected']))}, {row['shape']})")
        print(f"    {row['summary']}")
        print(f"    here: {row['would']}: {row['why']}")
    for refusal in refusals:
        print(f"{refusal['id']}  [refused: not shimmed by design]")
        print(f"    {refusal['summary']}")
        print(f"    why: {refusal['why']}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 0


def _show(patch: Patch, plan: PatchStatus) -> int:
    """One patch in full: its break, range, the error it repairs, its limits, links, test and what it does here."""
    breaks = f"; break {', '.join(patch.catalog)}" if patch.catalog else ""
    print(f"{patch.id}  ({patch.distribution} {describe(patch.affected)}, {patch.shape}{breaks})")
    print(f"    {patch.summary}")
    for label, value in (
        ("users saw", patch.error), ("limits", patch.limits), ("reproducer", patch.reproducer),
        ("scan", ", ".join(patch.scan)), ("from", patch.source),
    ):  # fmt: skip
        if value:
            print(f"    {label}: {value}")
    for link in patch.links:
        print(f"    link: {link}")
    flags = "" if patch.default else (" (unsafe, opt-in)" if patch.unsafe else " (opt-in)")
    print(f"    here{flags}: {'probe and apply' if plan.state == 'pending' else 'skip'}: {plan.reason}")
    return 0


def _doctor(as_json: bool) -> int:
    report = diagnose()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"python {report['python']} on {report['platform']}")
        for name, version in report["versions"].items():
            print(f"{name:16} {version or '-'}")
        for key, value in report["torch"].items():
            print(f"torch {key}: {value}")
        print(f"patches that would apply here: {len(report['would_apply'])}")
        for item in report["would_apply"]:
            print(f"  {item['id']}: {item['reason']}")
        if report["uncovered"]:
            print(f"known breaks in this environment that no patch covers: {len(report['uncovered'])}")
            for item in report["uncovered"]:
                print(f"  {item['id']} ({item['distribution']} {item['affected']}): {item['summary']}")
        if report["refused"]:
            print(f"known breaks here that hotfix refuses to shim (see docs/patches.md): {len(report['refused'])}")
            for item in report["refused"]:
                print(f"  {item['id']}: {item['why']}")
        for item in report["newer_than_tested"]:
            print(
                f"warning: {item['distribution']} {item['version']} is newer than the newest release hotfix was "
                f"tested with ({item['tested']}): breaks it brings may be uncovered; run `hotfix check` on your "
                "model folders before deploying"
            )
        print(f"patch packs installed: {len(report['packs'])}")
        for pack in report["packs"]:
            origin = f"{pack['distribution'] or '?'} in {pack['location'] or '?'}"
            print(f"  {pack['name']} = {pack['value']} ({origin}): {pack['state']}")
        for error in report["registry_errors"]:
            print(f"registry error: {error}")
        print("ok" if report["ok"] else "not ok: see above")
    return 0 if report["ok"] else 1


def _check(folders: Sequence[str], as_json: bool, compare: bool, vendored: bool) -> int:
    from pathlib import Path

    from ._check import check, format_report, passed

    reports = []
    for folder in folders:
        reports.append(check(Path(folder), use_hotfix=True, vendored=vendored))
        if compare:
            reports.append(check(Path(folder), use_hotfix=False, vendored=vendored))
    if as_json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
    else:
        print("\n\n".join(format_report(report) for report in reports))
    return 0 if all(passed(r) for r in reports if r.get("hotfix")) else 1


def _scan(paths: Sequence[str], as_json: bool, everything: bool) -> int:
    from pathlib import Path

    from ._scan import format_report, scan, uncovered

    reports = [scan(Path(path)) for path in paths]
    if as_json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
    else:
        print("\n\n".join(format_report(report, everything) for report in reports))
    return 1 if any(uncovered(r) for r in reports) else 0


def _new(name: str, directory: str) -> int:
    from pathlib import Path

    from ._new import write_pack

    root = write_pack(name, Path(directory))
    print(f"wrote {root}: a pack with one data patch and one code patch; next:")
    print(f"  pip install -e '{root}[test]' && pytest {root}")
    print(f"then replace the examples with your breaks ({root / 'README.md'})")
    return 0


def _explain(text: str) -> int:
    from ._explain import UNCOVERED, explain_text

    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        print("hotfix explain: give the error text, e.g. hotfix explain \"ImportError: cannot import name ...\"",
              file=sys.stderr)  # fmt: skip
        return 2
    explanation = explain_text(text)
    print(explanation)
    return 1 if explanation.startswith(UNCOVERED) else 0


def _status(path: str | None, as_json: bool) -> int:
    if path is None:
        from . import status

        report = status().as_dict()
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                report = json.load(handle)
        except (OSError, ValueError) as error:
            print(f"hotfix status: cannot read {path}: {error}", file=sys.stderr)
            return 2
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    where = f"process {report['pid']} ({' '.join(report.get('argv', []))})" if "pid" in report else "this process"
    patches = report["patches"]
    used = [p for p in patches if p.get("used")]
    applied = [p for p in patches if p["state"] == "applied"]
    print(f"hotfix in {where}: {'enabled' if report['enabled'] else 'disabled'}; {len(applied)} patch(es) applied, "
          f"{len(used)} used")  # fmt: skip
    for patch in used:
        print(f"  used  {patch['id']}: {patch['used_by']}")
    for patch in patches:
        if patch["state"] == "failed" or patch.get("error"):
            print(f"  FAILED {patch['id']}: {patch['error']}")
    return 0


def _run(command: Sequence[str], status_path: str | None = None) -> int:
    if not command:
        print("hotfix run: give a command, e.g. hotfix run -- python serve.py", file=sys.stderr)
        return 2
    environment = dict(os.environ)
    environment[_env.ENABLE] = "1"
    if status_path:
        environment[_env.STATUS_FILE] = os.path.abspath(status_path)
    # As an activated virtual environment would: `python` (and every script of this environment) is the
    # interpreter hotfix is installed in, not whatever comes first on PATH.
    here = os.path.dirname(sys.executable)
    path = environment.get("PATH", "")
    if here and path.split(os.pathsep)[0] != here:
        environment["PATH"] = here + os.pathsep + path if path else here
    executable = shutil.which(command[0], path=environment["PATH"])
    if executable is None:
        print(f"hotfix run: command not found: {command[0]}", file=sys.stderr)
        return 127
    if os.name == "posix":
        try:
            os.execve(executable, list(command), environment)
        except OSError as error:
            print(f"hotfix run: cannot run {command[0]}: {error.strerror or error}", file=sys.stderr)
            return 126
    return subprocess.call(list(command), env=environment)  # pragma: no cover - non-POSIX


def main(argv: Sequence[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="hotfix", description="Keep old model code running on new ML libraries.")
    parser.add_argument("--version", action="version", version=f"hotfix {__version__}")
    commands = parser.add_subparsers(dest="command")
    listing = commands.add_parser(
        "list",
        help="every registered patch and what it would do here; PATTERN... narrows it, one id shows the patch in full",
    )
    listing.add_argument("patterns", nargs="*", metavar="PATTERN", help="a patch id, a glob ('m2-*') or a break id")
    listing.add_argument("--json", action="store_true")
    doctor = commands.add_parser("doctor", help="versions, patches that would apply, uncovered breaks")
    doctor.add_argument("--json", action="store_true")
    scanning = commands.add_parser(
        "scan",
        help="what model code takes from the ML libraries, resolved against the installed versions (static)",
        description="Reads the Python files under each PATH (a model folder, a .py file, a package, a Hugging Face "
        "cache folder such as models--org--name or HF_MODULES_CACHE) without importing or running them, and "
        "resolves every name they take from transformers, tokenizers, accelerate, peft, huggingface_hub, torch "
        "and auto_gptq against the installed versions: available, repaired by a hotfix patch, or missing and "
        "uncovered; code shapes that patches know (a list _tied_weights_keys, rope_scaling['type'], overrides of "
        "changed methods) are listed with their patch. Exit 1 when anything is uncovered.",
    )
    scanning.add_argument("paths", nargs="+", metavar="PATH")
    scanning.add_argument("--json", action="store_true")
    scanning.add_argument("--all", action="store_true", help="also list the names that are available")
    explaining = commands.add_parser(
        "explain",
        help="which hotfix patch covers an error message, and why it may still have failed here",
        description="Matches a pasted error message (or '-' for standard input) against the registry: the names "
        "patches restore and the errors they repair. Says for each matching patch what it does in this environment "
        "(applies, out of its version range, denied by HOTFIX_PATCHES), or that none covers it. Exit 1 when none does.",
    )
    explaining.add_argument("text", metavar="ERROR")
    checking = commands.add_parser(
        "check",
        help="run a model folder's own code on a tiny model built from its config (RUNS THE MODEL'S CODE)",
        description="Builds a tiny model from each folder's config.json (shrunk by hotfix/shrink.toml; no weights "
        "needed) and runs construct, save and reload, forward, greedy generate with and without cache and the "
        "tokenizer and processor where the folder has them, in a subprocess, with hotfix enabled. This imports and "
        "runs the Python files of the folder, as trust_remote_code=True does: check only code you would run. "
        "Exit 1 when a stage fails, or the check was refused or crashed.",
    )
    checking.add_argument("folders", nargs="+", metavar="PATH")
    checking.add_argument("--json", action="store_true")
    checking.add_argument("--compare", action="store_true", help="also run every stage without hotfix")
    checking.add_argument(
        "--vendored",
        action="store_true",
        help="import the files as a plain package (as projects that copy model code do), declared legacy",
    )
    statusing = commands.add_parser(
        "status",
        help="the patches a process applied and used (this one, or one run with hotfix run --status FILE)",
    )
    statusing.add_argument("file", nargs="?", metavar="FILE", help="a status file written by hotfix run --status")
    statusing.add_argument("--json", action="store_true")
    new = commands.add_parser(
        "new",
        help="write a patch pack (pyproject, one data and one code patch, tests) that installs and passes its tests",
        description="Writes NAME/ in the current directory (or --directory): a pip-installable pack registered "
        "through the hotfix.patches entry point, with a data patch, a code patch on hotfix.authoring and tests that "
        "run hotfix.testing's three-way check, against a stand-in library the tests write. "
        "`pip install -e 'NAME[test]' && pytest NAME` passes before anything is edited.",
    )
    new.add_argument("name", metavar="NAME", help="the distribution name, e.g. acme-hotfixes")
    new.add_argument("--directory", default=".", metavar="DIR", help="where to create NAME/ (default: here)")
    run = commands.add_parser("run", help="run a command with hotfix enabled (HOTFIX_ENABLE=1)")
    run.add_argument(
        "--status", metavar="FILE", help="write the process's status (patches applied and used) to FILE at exit"
    )
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _dispatch(args)
    except HotfixError as error:
        print(f"hotfix: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`hotfix list | head -1`): say nothing more, as a process ended by SIGPIPE would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _list(args.json, args.patterns)
    if args.command == "doctor":
        return _doctor(args.json)
    if args.command == "explain":
        return _explain(args.text)
    if args.command == "scan":
        return _scan(args.paths, args.json, args.all)
    if args.command == "check":
        return _check(args.folders, args.json, args.compare, args.vendored)
    if args.command == "status":
        return _status(args.file, args.json)
    if args.command == "new":
        return _new(args.name, args.directory)
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    return _run(command, args.status)
