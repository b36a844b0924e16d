"""The hotfix command: list, doctor, run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from hotfix._cli import main


def test_list_shows_every_patch_and_what_it_would_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "m3-no-init-weights  (transformers >=5.0, moved-name)" in out
    assert "here: " in out


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["id"]: row for row in data["patches"]}
    assert rows["g2-cache-get-max-length"]["affected"] == ">=4.49"
    assert rows["g2-cache-get-max-length"]["catalog"] == ["G2"]
    assert {"would", "why", "installed", "summary", "shape"} <= set(rows["m1-tied-weights-keys-list"])


def test_doctor_reports_versions_and_uncovered_breaks(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json"])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert set(report["versions"]) >= {"torch", "transformers", "tokenizers", "accelerate", "peft", "auto_gptq"}
    assert report["python"] == sys.version.split()[0]
    covered = {item["id"] for item in report["would_apply"]}
    uncovered = {item["id"] for item in report["uncovered"]}
    if report["versions"]["transformers"]:
        assert "m3-no-init-weights" in covered or report["versions"]["transformers"] < "5"
    assert code == (1 if uncovered else 0)
    assert "M3" not in uncovered  # covered by a patch wherever it applies


def test_doctor_is_ok_when_nothing_known_is_broken(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hotfix import _doctor

    monkeypatch.setattr(_doctor, "installed_version", lambda name: None)
    assert main(["doctor"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ok")


def test_run_executes_the_command_with_activation() -> None:
    code = "import os, sys; print(os.environ['HOTFIX_ENABLE'], 'hotfix' in sys.modules)"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    completed = subprocess.run(
        [sys.executable, "-m", "hotfix", "run", "--", sys.executable, "-c", code],
        capture_output=True, text=True, env=environment, check=True,
    )  # fmt: skip
    assert completed.stdout.split() == ["1", "True"]


def test_run_reports_a_missing_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "give a command" in capsys.readouterr().err
    assert main(["run", "--", "/nonexistent/command"]) == 127
    assert capsys.readouterr().err.strip() == "hotfix run: command not found: /nonexistent/command"
    assert main(["run", "--", "missing-cmd"]) == 127
    assert capsys.readouterr().err.strip() == "hotfix run: command not found: missing-cmd"


def test_run_finds_python_in_hotfixs_own_environment_first(tmp_path: Any) -> None:
    # From an environment that is not activated, `python` on PATH would be another interpreter without hotfix.
    decoy = tmp_path / "python"
    decoy.write_text("#!/bin/sh\necho decoy\n")
    decoy.chmod(0o755)
    environment = {"PATH": f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    completed = subprocess.run(
        [sys.executable, "-m", "hotfix", "run", "--", "python", "-c", "import sys, hotfix; print(hotfix.is_enabled())"],
        capture_output=True, text=True, env=environment, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0 and completed.stdout.strip() == "True", completed.stdout + completed.stderr


def test_version_bare_command_and_a_closed_pipe() -> None:
    run = [sys.executable, "-m", "hotfix"]
    assert subprocess.run([*run, "--version"], capture_output=True, text=True).stdout.startswith("hotfix 0.")
    bare = subprocess.run(run, capture_output=True, text=True)
    assert bare.returncode == 0 and "usage: hotfix" in bare.stdout and "list" in bare.stdout
    piped = subprocess.run(f"{sys.executable} -m hotfix list | head -1", shell=True, capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stdout.count("\n") == 1 and "Error" not in piped.stderr, piped.stderr


def test_list_narrows_to_patterns_and_shows_one_patch_in_full(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "m2-*"]) == 0
    ids = [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert ids and all(i.startswith("m2-") for i in ids)
    assert main(["list", "M9"]) == 0  # a break id: its patches
    assert {line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")} == {
        "m9-llama-expand-mask", "m9-llama-make-causal-mask",
    }  # fmt: skip
    assert main(["list", "g2-cache-get-max-length"]) == 0
    shown = capsys.readouterr().out
    assert "break G2" in shown and "users saw: AttributeError" in shown and "reproducer: scenario:" in shown
    assert "link: https://" in shown and "here: " in shown
    assert main(["list", "no-such-patch"]) == 1
    assert "no patch matches no-such-patch" in capsys.readouterr().err


def test_a_framework_patch_shows_that_it_is_for_every_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "hotfix.*"]) == 0
    listed = capsys.readouterr().out
    assert "hotfix.remote-code  (transformers every version, framework)" in listed
    assert " is in :" not in listed and "transformers ," not in listed
    assert main(["list", "hotfix.remote-code"]) == 0
    shown = capsys.readouterr().out
    assert "(transformers every version, framework)" in shown and "; break" not in shown


def test_newest_tested_versions_are_the_latest_stack() -> None:
    from pathlib import Path

    from hotfix._doctor import NEWEST_TESTED

    pins = {}
    for line in (Path(__file__).parent.parent / "constraints" / "latest.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[name.strip().lower().replace("-", "_")] = version.strip()
    for name, version in NEWEST_TESTED.items():
        assert pins[name] == version, (name, pins[name], version)


def test_doctor_warns_about_a_target_newer_than_the_newest_tested(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hotfix import _doctor

    monkeypatch.setattr(_doctor, "installed_version", lambda name: "99.0.0" if name == "transformers" else None)
    main(["doctor"])
    out = capsys.readouterr().out
    assert "warning: transformers 99.0.0 is newer than the newest release hotfix was tested with" in out
    main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["newer_than_tested"] == [
        {"distribution": "transformers", "version": "99.0.0", "tested": _doctor.NEWEST_TESTED["transformers"]}
    ]


def test_new_writes_a_pack_and_refuses_bad_names_and_existing_folders(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "acme-fixes", "--directory", str(tmp_path)]) == 0
    root = tmp_path / "acme-fixes"
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == [
        ".gitignore", "README.md", "acme_fixes/__init__.py", "acme_fixes/py.typed", "acme_fixes/shims.py",
        "pyproject.toml", "tests/test_patches.py",
    ]  # fmt: skip
    assert '[project.entry-points."hotfix.patches"]\nacme_fixes = "acme_fixes"' in (root / "pyproject.toml").read_text()
    for path in root.rglob("*.py"):
        text = path.read_text()
        compile(text, str(path), "exec")
        assert "$" not in text and "hotfix._" not in text, path
    assert "pip install -e" in capsys.readouterr().out
    assert main(["new", "acme-fixes", "--directory", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err
    for bad in ("1pack", "my pack", "hotfix", "import"):
        assert main(["new", bad, "--directory", str(tmp_path)]) == 2, bad
        assert "hotfix new:" in capsys.readouterr().err
