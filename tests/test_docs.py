"""Docs that are generated or promised stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hotfix import _env

ROOT = Path(__file__).resolve().parent.parent


def test_patches_page_is_up_to_date() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_patches_doc.py"), "--check"], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr


def test_watch_index_is_up_to_date() -> None:
    """enable() defers the registry until a package of hotfix/_index.py is imported: a stale index would miss one."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_index.py"), "--check"], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr


def test_every_environment_variable_is_documented() -> None:
    reference = (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")
    for name in (_env.ENABLE, _env.PATCHES, _env.STRICT, _env.LEGACY, _env.LOG_LEVEL, _env.LOG_FORMAT):
        assert f"`{name}`" in reference
        assert name in (_env.__doc__ or "")


def test_readme_gives_the_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/setup && bash scripts/test" in readme
    assert "bash scripts/setup && bash scripts/test" in ci
    assert "bash scripts/setup latest && .venv/bin/python examples/demo.py" in readme


def test_the_demo_runs() -> None:
    pytest.importorskip("transformers")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")], capture_output=True, text=True, env=environment
    )
    assert completed.returncode == 0, completed.stderr[-2000:]  # 1 when the tokens differ from the reference
    out = completed.stdout
    assert "1. hotfix scan" in out and "0 uncovered" not in out and " uncovered" not in out.split("2. ")[0]
    assert "equal to the tokens recorded on transformers 4.40.2: yes" in out
    assert "the patches this model used (" in out and "   m1-tied-weights-keys-list: " in out
    assert "[applied]" not in out  # concise: no status dump
    if "fails: " in out:  # a version the model does not run on natively
        assert "m3-no-init-weights" in out.split("2. ")[0]


def test_the_worked_pack_in_the_authors_guide_is_what_hotfix_new_writes(tmp_path: Path) -> None:
    from hotfix._new import write_pack

    root = write_pack("acme-fixes", tmp_path)
    written = "\n".join(path.read_text(encoding="utf-8") for path in sorted(root.rglob("*.py")))
    guide = (ROOT / "docs" / "patch-authors.md").read_text(encoding="utf-8")
    worked = guide.split("## Worked example: a pack")[1]
    fenced = worked.split("```")[1::2]  # the insides of the fences: "info\ncode"
    blocks = [block.split("\n", 1)[1] for block in fenced if block.startswith(("python", "text\n    {"))]
    assert len(blocks) == 3
    for code in blocks:
        assert code in written, code[:200]


def test_docs_link_to_nothing_outside_the_repository() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "../shared" not in path.read_text(encoding="utf-8"), path


def test_the_architecture_page_places_every_framework_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "hotfix").glob("*.py")):
        if path.name not in ("__main__.py",):
            assert f"`{path.name}`" in page or f"`hotfix/{path.name}`" in page, path.name


def test_every_guarantee_names_tests_that_exist() -> None:
    guide = (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8")
    section = guide.split("## What hotfix guarantees", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`((?:reliability/)?test_\w+\.py)(?:::(\w+))?`", section)
    assert len(named) >= 3, section
    for path, function in named:
        source = (ROOT / "tests" / path).read_text(encoding="utf-8")
        assert not function or f"def {function}(" in source, (path, function)
