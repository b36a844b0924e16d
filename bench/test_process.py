"""Whole-process figures: interpreter start-up, import+enable, import overhead of the hook (items 1-3)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
from _harness import figure, interleave, timed

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    """The children's environment: no hotfix settings, and bytecode cached as an installed wheel has it (pip
    compiles it; without it every launch compiles hotfix's sources again, which no installation does)."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    environment.update(extra)
    return environment


def _startup_venv(workdir: Path) -> tuple[Path, Path]:
    """A bare venv with hotfix installed (package and hotfix.pth); returns (python, pth)."""
    root = workdir / "startup-venv"
    python = root / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=False).create(root)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    package = site / "hotfix"
    if not package.exists():
        package.symlink_to(ROOT / "hotfix")
    pth = site / "hotfix.pth"
    shutil.copy(ROOT / "hotfix.pth", pth)
    return python, pth


def test_startup(benchmark: Any, workdir: Path, smoke: bool) -> None:
    """Item 1: `python -c pass` with hotfix.pth present and HOTFIX_ENABLE unset, against without it."""
    python, pth = _startup_venv(workdir)
    off = pth.with_suffix(".pth.off")
    command = [str(python), "-c", "pass"]

    def run(with_pth: bool) -> float:
        if with_pth and off.exists():
            off.rename(pth)
        elif not with_pth and pth.exists():
            pth.rename(off)
        environment = _env()
        # Ten launches a sample: one launch varies by tens of percent on a busy 2-core machine.
        return timed(lambda: [subprocess.run(command, env=environment, check=True) for _ in range(10)])

    rounds = 2 if smoke else 60

    def measure() -> dict[str, list[float]]:
        return interleave(lambda: run(False), lambda: run(True), rounds)

    series = benchmark.pedantic(measure, rounds=1, iterations=1)
    if off.exists():
        off.rename(pth)
    # The same cost measured directly, free of process-launch noise: what site does with hotfix.pth.
    direct = subprocess.run(
        [str(python), "-c", PTH_COST, str(pth.parent)], capture_output=True, text=True, env=_env(), check=True
    ).stdout.split()
    figure(benchmark, "startup with hotfix.pth, HOTFIX_ENABLE unset", series["ratio"], unit="ratio",
           target=1.01, direction="le", item=1, pth_processing_us=float(direct[0]),
           launch_ms=statistics.median(series["baseline"]) * 1e3 / 10,
           baseline_ms=[s * 1e3 for s in series["baseline"]],
           candidate_ms=[s * 1e3 for s in series["candidate"]])  # fmt: skip


# Peak RSS from /proc (VmHWM): getrusage's ru_maxrss survives fork+exec on Linux and would
# report the (much larger) parent's peak.
PTH_COST = """
import site, sys, time
started = time.perf_counter()
for _ in range(2000):
    site.addpackage(sys.argv[1], "hotfix.pth", set())
print((time.perf_counter() - started) / 2000 * 1e6)
"""

ENABLE_CHILD = """
import json, time
def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
before = peak_kib()
started = time.perf_counter()
import hotfix
hotfix.enable()
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "rss_kib": peak_kib() - before}))
"""


def test_import_and_enable(benchmark: Any, smoke: bool) -> None:
    """Item 2: `import hotfix; hotfix.enable()` alone, and its peak RSS growth."""
    rounds = 2 if smoke else 30
    subprocess.run([sys.executable, "-c", ENABLE_CHILD], capture_output=True, env=_env(), check=True)  # bytecode

    def measure() -> list[dict[str, float]]:
        return [
            json.loads(subprocess.run([sys.executable, "-c", ENABLE_CHILD], capture_output=True, text=True,
                                      env=_env(), check=True).stdout)
            for _ in range(rounds)
        ]  # fmt: skip

    results = benchmark.pedantic(measure, rounds=1, iterations=1)
    figure(benchmark, "import hotfix; hotfix.enable()", [r["seconds"] * 1e3 for r in results], unit="ms",
           target=5.0, direction="le", item=2)  # fmt: skip
    figure(benchmark, "import hotfix; hotfix.enable() peak RSS", [r["rss_kib"] / 1024 for r in results],
           unit="MB", target=2.0, direction="le", item=2)  # fmt: skip


IMPORT_CHILD = """
import json, sys, time
enable = sys.argv[1] == "1"
instrument = sys.argv[2] == "1"
finder_seconds = [0.0, 0.0]  # unwatched names (pure overhead), watched names (the real lookup, done once)
if enable:
    import hotfix
    hotfix.enable()
    hotfix.status()  # the registry loads now, not in the timed import: this figure is the hook's cost alone
    finder = sys.meta_path[0]
    if instrument:
        original = finder.find_spec
        def find_spec(*args):
            watched = finder.watched_calls
            started = time.perf_counter()
            try:
                return original(*args)
            finally:
                finder_seconds[finder.watched_calls != watched] += time.perf_counter() - started
        finder.find_spec = find_spec
started = time.perf_counter()
import transformers
from transformers import LlamaForCausalLM
elapsed = time.perf_counter() - started
result = {"seconds": elapsed, "modules": len(sys.modules)}
if enable:
    result.update(find_spec_calls=finder.calls, watched_calls=finder.watched_calls,
                  unwatched_seconds=finder_seconds[0], watched_seconds=finder_seconds[1])
print(json.dumps(result))
"""


def test_import_overhead(benchmark: Any, smoke: bool) -> None:
    """Item 3: `import transformers; from transformers import LlamaForCausalLM`, hotfix enabled against not."""
    pytest.importorskip("transformers")

    def child(enable: bool, instrument: bool = False) -> dict[str, Any]:
        completed = subprocess.run(
            [sys.executable, "-c", IMPORT_CHILD, "1" if enable else "0", "1" if instrument else "0"],
            capture_output=True, text=True, env=_env(), check=True,
        )  # fmt: skip
        result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        return result

    child(False)  # warm the file system cache
    rounds = 1 if smoke else 12

    def measure() -> dict[str, list[float]]:
        return interleave(lambda: child(False)["seconds"], lambda: child(True)["seconds"], rounds)

    series = benchmark.pedantic(measure, rounds=1, iterations=1)
    counted = child(True, instrument=True)
    figure(benchmark, "import transformers + LlamaForCausalLM, hook enabled", series["ratio"], unit="ratio",
           target=1.02, direction="le", item=3, find_spec_calls=counted["find_spec_calls"],
           watched_calls=counted["watched_calls"], unwatched_finder_ms=counted["unwatched_seconds"] * 1e3,
           watched_finder_ms=counted["watched_seconds"] * 1e3,
           baseline_s=series["baseline"], candidate_s=series["candidate"])  # fmt: skip
