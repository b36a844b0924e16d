"""Guarantee: ``importlib.reload`` of a patched module keeps it patched, and status tells the truth.

Reloading executes the module's code again in the same module object, which
overwrites what the patches set. hotfix sees the re-execution (the reload
asks the finder for the module's spec again), undoes the old application
before the code runs, and applies the patches afresh after it; ``disable()``
then reverts to the reloaded module's own objects.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import code_patch

import hotfix


def test_a_reloaded_module_is_patched_again_and_reverts_to_its_new_objects(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()
    applied: list[Any] = []

    def apply(module: Any, shims: hotfix.Shims) -> None:
        applied.append(module.compute)
        shims.set(module, "RESTORED", "restored")
        shims.replace(module, "compute", lambda function: lambda: [*function(), 3])

    register(code_patch("reloadable", apply))
    hotfix.enable()
    import fakelib.core  # type: ignore[import-not-found]

    assert fakelib.core.compute() == [1, 2, 3] and fakelib.core.RESTORED == "restored"
    importlib.reload(fakelib.core)
    assert fakelib.core.compute() == [1, 2, 3] and fakelib.core.RESTORED == "restored"
    assert len(applied) == 2 and applied[0] is not applied[1]  # applied again, on the reloaded function
    assert hotfix.status()["reloadable"].state == "applied"
    hotfix.disable()
    assert fakelib.core.compute() == [1, 2] and fakelib.core.compute is applied[1]
    assert not hasattr(fakelib.core, "RESTORED")


def test_a_patch_its_probe_skipped_is_probed_again_after_a_reload(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()
    probed: list[int] = []

    def probe(module: Any) -> tuple[bool, str]:
        probed.append(1)
        return False, "intact"

    register(code_patch("probed", lambda module, shims: None, probe=probe))
    hotfix.enable()
    import fakelib.core

    importlib.reload(fakelib.core)
    assert len(probed) == 2
