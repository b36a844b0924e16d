"""``hotfix doctor``: what is installed, what hotfix would do, what stays broken."""

from __future__ import annotations

import platform
import sys
from typing import Any

from ._plugins import PACKS
from ._runtime import RUNTIME
from ._versions import gate, installed_version

__all__ = ["DISTRIBUTIONS", "NEWEST_TESTED", "diagnose"]

DISTRIBUTIONS = (
    "torch", "transformers", "tokenizers", "accelerate", "peft", "huggingface_hub", "auto_gptq", "safetensors",
)  # fmt: skip

# The newest release of each target that this version of hotfix was tested with
# (the latest stack, constraints/latest.txt; a test keeps the two equal). A newer
# release may bring breaks that no patch covers yet.
NEWEST_TESTED = {
    "torch": "2.13.0", "transformers": "5.25.0", "tokenizers": "0.23.3", "accelerate": "1.16.0",
    "peft": "0.21.2", "huggingface_hub": "2.4.0", "safetensors": "0.8.0",
}  # fmt: skip


def _newer_than_tested() -> list[dict[str, str]]:
    from packaging.version import InvalidVersion, Version

    newer = []
    for name, tested in NEWEST_TESTED.items():
        version = installed_version(name)
        try:
            is_newer = version is not None and Version(version).release > Version(tested).release
        except InvalidVersion:
            continue
        if is_newer and version is not None:
            newer.append({"distribution": name, "version": version, "tested": tested})
    return newer


def _torch_details() -> dict[str, Any]:
    if installed_version("torch") is None:
        return {}
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - doctor reports, it does not crash
        return {"torch_import_error": f"{type(error).__name__}: {error}"}
    details: dict[str, Any] = {"cuda_available": bool(torch.cuda.is_available()), "cuda": torch.version.cuda}
    if details["cuda_available"]:
        details["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        details["driver"] = _nvidia_driver()
    return details


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as handle:
            return handle.readline().strip()
    except OSError:
        return None


def diagnose() -> dict[str, Any]:
    """The doctor's report as a dict; ``report["ok"]`` is False when a known break is uncovered."""
    plans = RUNTIME.plan(None)
    patches = {p.id: p for p in RUNTIME.plugins.collected().patches}
    would_apply = [p for p in plans if p.state == "pending"]
    covered = {catalog for p in would_apply for catalog in patches[p.id].catalog}
    uncovered, refused = [], []
    for known in RUNTIME.plugins.collected().breaks:
        version = installed_version(known.distribution)
        inside, _ = gate(known.affected, version)
        if inside and known.id not in covered and known.refused:
            refused.append({"id": known.id, "summary": known.summary, "why": known.refused})
        elif inside and known.id not in covered:
            uncovered.append(
                {"id": known.id, "distribution": known.distribution, "version": version,
                 "affected": str(known.affected), "summary": known.summary}
            )  # fmt: skip
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {name: installed_version(name) for name in DISTRIBUTIONS},
        "torch": _torch_details(),
        "would_apply": [{"id": p.id, "reason": p.reason} for p in would_apply],
        "uncovered": uncovered,
        "refused": refused,
        "registry_errors": list(RUNTIME.plugins.collected().errors),
        "packs": [dict(pack) for pack in PACKS],
        "newer_than_tested": _newer_than_tested(),
        "ok": not uncovered and not RUNTIME.plugins.collected().errors,
    }
