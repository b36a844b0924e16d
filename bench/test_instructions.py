"""Instruction counts (valgrind's callgrind), where wall time on a 2-core machine cannot resolve 1% (items 1, 2, 4).

callgrind counts the instructions a process executes in user space; with ``PYTHONHASHSEED=0`` the count of a
Python launch is the same from run to run, so a ratio of 1.005 is a real 0.5%. Kernel work (exec, page
faults, file reads) is not counted: these figures say what hotfix's code costs, the wall-time figures of
``test_process.py`` what a launch costs in all.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _harness import figure, timed
from test_process import _env, _startup_venv

VALGRIND = shutil.which("valgrind")
pytestmark = pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed (callgrind counts instructions)")


def instructions(command: list[str], environment: dict[str, str]) -> int:
    """Instructions *command* executes in user space (callgrind's total ``Ir``)."""
    assert VALGRIND is not None
    completed = subprocess.run(
        [VALGRIND, "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        capture_output=True, text=True, env={**environment, "PYTHONHASHSEED": "0"}, timeout=600,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", completed.stderr)
    if completed.returncode != 0 or found is None:
        raise AssertionError(completed.stderr[-2000:])
    return int(found.group(1))


def test_startup_instructions(benchmark: Any, workdir: Path, smoke: bool) -> None:
    """Item 1 by instruction count: `python -c pass` with hotfix.pth and HOTFIX_ENABLE unset, against without."""
    python, pth = _startup_venv(workdir)
    off = pth.with_suffix(".pth.off")
    command = [str(python), "-c", "pass"]

    def count(with_pth: bool) -> int:
        if with_pth and off.exists():
            off.rename(pth)
        elif not with_pth and pth.exists():
            pth.rename(off)
        return instructions(command, _env())

    rounds = 1 if smoke else 3
    pairs = benchmark.pedantic(lambda: [(count(False), count(True)) for _ in range(rounds)], rounds=1)
    if off.exists():
        off.rename(pth)
    figure(benchmark, "startup with hotfix.pth, HOTFIX_ENABLE unset, by instruction count",
           [b / a for a, b in pairs], unit="ratio", target=1.01, direction="le", item=1,
           baseline_ir=[a for a, _ in pairs], candidate_ir=[b for _, b in pairs])  # fmt: skip


def test_enable_instructions(benchmark: Any, smoke: bool) -> None:
    """Item 2 by instruction count: what `import hotfix; hotfix.enable()` adds to `python -c pass`, in
    instructions and in milliseconds at the rate this machine runs a bare launch (an upper bound: the
    launch's kernel time counts in that rate's seconds but not in its instructions)."""
    environment = _env()
    bare = [sys.executable, "-c", "pass"]
    enabled = [sys.executable, "-c", "import hotfix; hotfix.enable()"]
    rounds = 1 if smoke else 3
    subprocess.run(enabled, env=environment, check=True)  # writes hotfix's bytecode, as pip does at install

    def measure() -> list[tuple[int, int]]:
        return [(instructions(bare, environment), instructions(enabled, environment)) for _ in range(rounds)]

    pairs = benchmark.pedantic(measure, rounds=1)
    launches = [timed(lambda: subprocess.run(bare, env=environment, check=True)) for _ in range(5 if smoke else 30)]
    rate = statistics.median(a for a, _ in pairs) / statistics.median(launches)  # instructions per second
    added = [b - a for a, b in pairs]
    figure(benchmark, "import hotfix; hotfix.enable(), by instruction count (ms at this machine's rate)",
           [n / rate * 1e3 for n in added], unit="ms", target=5.0, direction="le", item=2,
           added_ir=added, bare_ir=[a for a, _ in pairs], instructions_per_second=rate)  # fmt: skip


SHIM_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from test_shims import _cases
name, variant, calls = sys.argv[2], sys.argv[3], int(sys.argv[4])
bare, hand, shim = _cases()[name]
hand(); shim()  # first calls: a restored name records its use once, then steps aside
call = hand if variant == "hand" else shim
for _ in range(calls):
    call()
"""


def test_shim_call_instructions(benchmark: Any, smoke: bool) -> None:
    """Item 4 by instruction count: instructions per call of each shim shape against the hand-written
    replacement, from three launches each (no calls, N calls of the replacement, N calls of the shim)."""
    from test_shims import _cases

    environment = _env()
    calls = 200 if smoke else 5_000
    bench = str(Path(__file__).resolve().parent)

    def count(name: str, variant: str, n: int) -> int:
        return instructions([sys.executable, "-c", SHIM_CHILD, bench, name, variant, str(n)], environment)

    def measure() -> dict[str, tuple[float, float]]:
        per_call = {}
        for name in list(_cases())[: 1 if smoke else None]:  # smoke: one shape (each launch runs under valgrind)
            setup = count(name, "hand", 0)
            hand, shim = count(name, "hand", calls), count(name, "shim", calls)
            per_call[name] = ((hand - setup) / calls, (shim - setup) / calls)
        return per_call

    subprocess.run(
        [sys.executable, "-c", SHIM_CHILD, bench, "alias (moved name)", "hand", "1"], env=environment, check=True
    )  # fmt: skip  (writes the bytecode of hotfix and the benchmark modules)
    results = benchmark.pedantic(measure, rounds=1)
    for name, (hand, shim) in results.items():
        figure(benchmark, f"per call by instruction count: {name}", [shim / hand], unit="ratio", target=1.1,
               direction="le", item=4, hand_written_ir=hand, shim_ir=shim)  # fmt: skip
