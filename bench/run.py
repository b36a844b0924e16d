"""Run every benchmark and write the results, a Markdown table and a chart.

    .venv/bin/python bench/run.py            # full run (about 10-15 minutes on 2 cores)
    .venv/bin/python bench/run.py --smoke    # every benchmark once, tiny models (CI): checks, not figures

Writes bench/results/results.json (machine, versions, every figure with its
median, min, max, target and whether it is met), results.md and results.png
(or into --out DIR).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def _versions() -> dict[str, Any]:
    from hotfix._versions import installed_version

    versions: dict[str, Any] = {
        name: installed_version(name) for name in ("torch", "transformers", "tokenizers", "accelerate", "wrapt")
    }
    versions["python"] = platform.python_version()
    try:
        import torch

        versions["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        versions["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return versions


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "error"
    if unit == "ratio":
        return f"{value:.3f}x"
    if unit == "count":
        return f"{value:g}"
    return f"{value:.2f} {unit}"


def _table(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# hotfix benchmark results",
        "",
        f"Machine: {machine['node']}, {machine['cpu']} ({machine['cpu_count']} cores), {machine['system']}"
        f"; GPU: {results['versions'].get('gpu') or 'none'}. Mode: {results['mode']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v),
        "",
        "Ratios are hotfix ÷ baseline measured in the same run, interleaved; median over the rounds, min-max beside.",
        "",
        "| item | figure | median | min - max | n | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in results["figures"]:
        sign = {"le": "≤", "ge": "≥", "eq": "="}[f["direction"]]
        lines.append(
            f"| {f['item']} | {f['name']} | {_fmt(f['median'], f['unit'])} | {_fmt(f['min'], f['unit'])} - "
            f"{_fmt(f['max'], f['unit'])} | {f['n']} | {sign} {_fmt(f['target'], f['unit'])} | "
            f"{'yes' if f['met'] else '**MISSED**'} |"
        )
    details = [f for f in results["figures"] if f["details"]]
    if details:
        lines += ["", "## Details", ""]
        for f in details:
            shown = {k: v for k, v in f["details"].items() if not isinstance(v, list)}
            if shown:
                lines.append(f"- {f['name']}: " + ", ".join(f"{k}={_short(v)}" for k, v in shown.items()))
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _chart(results: dict[str, Any], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = [f for f in results["figures"] if f["median"] is not None]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(figures) + 1.5))
    for row, f in enumerate(figures):
        # Every figure is drawn relative to its target: 1.0 is exactly on target.
        if f["unit"] == "count":
            value, goal = f["median"] + 1.0, f["target"] + 1.0
            low, high = f["min"] + 1.0, f["max"] + 1.0
        else:
            value, goal, low, high = f["median"], f["target"], f["min"], f["max"]
        scale = goal if goal else 1.0
        colour = "tab:green" if f["met"] else "tab:red"
        ax.barh(row, value / scale, color=colour, alpha=0.7)
        ax.plot([low / scale, high / scale], [row, row], color="black", linewidth=1)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(figures)), [f"{f['item']}. {f['name']}" for f in figures], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("median ÷ target (dashed line: target; ≥ targets are met right of it, ≤ targets left of it)")
    ax.set_title(f"hotfix overhead, {results['mode']} run")
    fig.tight_layout()
    fig.savefig(target, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--render", action="store_true", help="redraw results.md and .png from results.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render:
        results = json.loads((args.out / "results.json").read_text(encoding="utf-8"))
        (args.out / "results.md").write_text(_table(results), encoding="utf-8")
        _chart(results, args.out / "results.png")
        return 0
    raw = Path(tempfile.mkdtemp()) / "pytest-benchmark.json"
    command = [sys.executable, "-m", "pytest", str(BENCH), "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={raw}", "--benchmark-disable-gc"]  # fmt: skip
    if args.smoke:
        command.append("--smoke")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment["HF_HUB_OFFLINE"] = "1"
    completed = subprocess.run(command, cwd=ROOT, env=environment)
    if not raw.exists():
        print("the benchmarks produced no results", file=sys.stderr)
        return completed.returncode or 1
    data = json.loads(raw.read_text(encoding="utf-8"))
    info = data["machine_info"]
    results = {
        "mode": "smoke" if args.smoke else "full",
        "datetime": data["datetime"],
        "machine": {
            "node": info.get("node"),
            "cpu": info.get("cpu", {}).get("brand_raw", info.get("processor")),
            "cpu_count": os.cpu_count(),
            "system": f"{info.get('system')} {info.get('release')}",
        },
        "versions": _versions(),
        "commit": data.get("commit_info", {}).get("id"),
        "figures": [_clean(f) for b in data["benchmarks"] for f in b.get("extra_info", {}).get("figures", [])],
    }
    results["figures"].sort(key=lambda f: (f["item"], f["name"]))
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(_table(results), encoding="utf-8")
    _chart(results, args.out / "results.png")
    print((args.out / "results.md").read_text(encoding="utf-8"))
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
