"""The benchmarks run end to end in smoke mode (tiny models, one round): they cannot rot.

Timing targets are not checked here: the figures come from bench/run.py's full run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_benchmarks_smoke(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("matplotlib")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, env=environment, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["mode"] == "smoke"
    items = {figure["item"] for figure in results["figures"]}
    assert {1, 2, 3, 4, 5, 6, 7, 12} <= items
    for figure in results["figures"]:
        assert {"name", "median", "min", "max", "target", "met", "unit"} <= set(figure)
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert "| item | figure |" in (tmp_path / "results.md").read_text(encoding="utf-8")
