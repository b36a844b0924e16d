"""ruff (lint and format) and mypy --strict run with the test suite, so they stay green."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed in this environment; run scripts/setup")
    return path


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy", "--strict"]],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_clean(command: list[str]) -> None:
    completed = subprocess.run([_tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


# Code written the way users write theirs uses the public API only: the bundled patches, the example pack, the
# scaffold `hotfix new` writes and the examples. (The framework's own tests and scripts test its internals.)
PUBLIC_ONLY = ["patches", "examples", "tests/plugin_example"]


def _private_imports(source: str, filename: str) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found += [f"{filename}:{node.lineno}: {name}" for name in names if name.startswith("hotfix._")]
    return found


def test_user_facing_code_imports_no_private_module() -> None:
    found = []
    for folder in PUBLIC_ONLY:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += _private_imports(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "import hotfix.authoring (or hotfix) instead:\n" + "\n".join(found)


def test_the_private_import_check_can_fail() -> None:
    assert _private_imports("from hotfix._scope import is_legacy\nimport hotfix._shims\n", "x.py") == [
        "x.py:1: hotfix._scope",
        "x.py:1: hotfix._scope.is_legacy",
        "x.py:2: hotfix._shims",
    ]
    assert _private_imports("from hotfix import authoring\nfrom hotfix.authoring import Shims\n", "x.py") == []
