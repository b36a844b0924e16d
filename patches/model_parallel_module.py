"""``transformers.utils.model_parallel_utils``, removed in transformers 5.0, for code that imports it.

GPT-2, GPT-J and T5 had a naive model parallelism (``model.parallelize(device_map)``)
until 4.x; remote and vendored copies of those models (and of the code built on
them: MOSS, CodeT5+, custom T5 heads) import its two helpers at module level::

    from transformers.utils.model_parallel_utils import assert_device_map, get_device_map

On 5.x the import fails with ``ModuleNotFoundError: No module named
'transformers.utils.model_parallel_utils'``, whether or not ``parallelize`` is
ever called. The ``m39-model-parallel-utils-module`` patch provides the module
under its old name with both helpers, which only compute on lists and dicts.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["assert_device_map", "get_device_map"]


def assert_device_map(device_map: dict[Any, list[int]], num_blocks: int) -> None:
    """Raise ``ValueError`` unless *device_map* places each of the *num_blocks* blocks on exactly one device."""
    placed = [block for blocks in device_map.values() for block in blocks]
    expected = set(range(num_blocks))
    duplicated = sorted({block for block in placed if placed.count(block) > 1})
    missing = [block for block in range(num_blocks) if block not in placed]
    extra = [block for block in placed if block not in expected]
    if duplicated:
        raise ValueError(
            "Duplicate attention blocks specified in device_map. Attention blocks must be specified to one device."
            f" These attention blocks were specified more than once: {duplicated}"
        )
    if missing:
        raise ValueError(
            "There are attention blocks for this model that are not specified in the device_map. Add these "
            f"attention blocks to a device on the device_map: {missing}"
        )
    if extra:
        raise ValueError(
            "The device_map contains more attention blocks than this model has. Remove these from the device_map:"
            f"{extra}"
        )


def get_device_map(n_layers: int, devices: list[Any]) -> dict[Any, list[int]]:
    """Layers ``0 .. n_layers - 1`` split into consecutive, equal runs (the last may be shorter), one per device."""
    per_device = math.ceil(n_layers / len(devices))
    runs = [list(range(start, min(start + per_device, n_layers))) for start in range(0, n_layers, per_device)]
    return dict(zip(devices, runs, strict=False))  # more devices than runs: the last ones get none
