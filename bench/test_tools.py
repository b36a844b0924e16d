"""The pre-upgrade tools: `hotfix scan` and `hotfix check` per model folder, and the demo (items 9-11).

The folders are the bundled fixture packages (each written like one family
of 2023-2024 remote-code models, LegacyLM among them); each command
runs as a user runs it, in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from _harness import figure

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _env(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update(HF_HUB_OFFLINE="1", **extra)
    return environment


@pytest.fixture(scope="module")
def folders(workdir: Path) -> list[Path]:
    pytest.importorskip("transformers")
    from legacy_models import write_package

    root = workdir / "tool-folders"
    made = []
    # The model packages (a fixture.json each), not the tokenizer-only fixtures such as legacy_spm.
    for fixture in sorted(p.name for p in (ROOT / "tests" / "fixtures").iterdir() if (p / "fixture.json").is_file()):
        target = root / fixture
        if not (target / "config.json").exists():
            write_package(fixture, target, weights=False)
        made.append(target)
    return made


def _seconds(command: list[str], environment: dict[str, str], codes: tuple[int, ...] = (0, 1)) -> float:
    """Wall time of a command that must finish with one of *codes* and print something (a crash is no figure)."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600, check=False)
    elapsed = time.perf_counter() - started
    assert done.returncode in codes and done.stdout.strip(), (command, done.returncode, done.stderr[-2000:])
    return elapsed


def test_scan_per_folder(benchmark: Any, folders: list[Path], smoke: bool) -> None:
    """Item 9: `hotfix scan FOLDER` in a fresh process, cache warm (any later scan) and cold (a new environment)."""
    selected = folders[:2] if smoke else folders
    rounds = 1 if smoke else 3

    def measure() -> tuple[list[float], list[float]]:
        warm: list[float] = []
        cold: list[float] = []
        with tempfile.TemporaryDirectory() as cache:
            for _ in range(rounds):
                for folder in selected:
                    with tempfile.TemporaryDirectory() as empty:
                        cold.append(_seconds([sys.executable, "-m", "hotfix", "scan", str(folder)],
                                             _env(HOTFIX_CACHE_DIR=empty)))  # fmt: skip
                    environment = _env(HOTFIX_CACHE_DIR=cache)
                    _seconds([sys.executable, "-m", "hotfix", "scan", str(folder)], environment)  # fills the cache
                    warm.append(_seconds([sys.executable, "-m", "hotfix", "scan", str(folder)], environment))
        return warm, cold

    warm, cold = benchmark.pedantic(measure, rounds=1, iterations=1)
    figure(benchmark, "hotfix scan per model folder (cache warm)", warm, unit="s", target=1.0, direction="le",
           item=9, folders=len(selected))  # fmt: skip
    figure(benchmark, "hotfix scan per model folder (first scan in a new environment)", cold, unit="s",
           target=1.0, direction="le", item=9, folders=len(selected))  # fmt: skip


def test_check_per_folder(benchmark: Any, folders: list[Path], smoke: bool) -> None:
    """Item 10: `hotfix check FOLDER` (every stage, with hotfix) in a fresh process."""
    selected = folders[:1] if smoke else folders

    def measure() -> list[float]:
        return [_seconds([sys.executable, "-m", "hotfix", "check", str(folder)], _env()) for folder in selected]

    samples = benchmark.pedantic(measure, rounds=1, iterations=1)
    figure(benchmark, "hotfix check per model folder", samples, unit="s", target=60.0, direction="le", item=10,
           folders=len(selected))  # fmt: skip


def test_demo(benchmark: Any, smoke: bool) -> None:
    """Item 11: the README's demo, end to end, in a fresh process (it exits 1 if its tokens differ)."""
    rounds = 1 if smoke else 3

    def measure() -> list[float]:
        return [
            _seconds([sys.executable, str(ROOT / "examples" / "demo.py")], _env(), codes=(0,)) for _ in range(rounds)
        ]

    samples = benchmark.pedantic(measure, rounds=1, iterations=1)
    figure(benchmark, "examples/demo.py end to end", samples, unit="s", target=30.0, direction="le", item=11)
