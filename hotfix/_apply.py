"""Applying one patch to one module: what it did, recorded on its slot, and its events.

The runtime probes outside its lock (a probe may import) and applies under
it; :func:`settle` records the outcome under the lock. A patch that raised
has every change it made undone before anything else sees them.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable, Iterable
from typing import Any

from . import _log
from ._decide import Slot
from ._events import Event, log_traceback, patch_event
from ._patch import Finding
from ._shims import MISSING, Shims

__all__ = ["forget_module", "revert", "revert_all", "revert_incomplete", "settle", "subclass_failed"]


def revert(shims: Shims, patch_id: str) -> list[str]:
    """Undo every change of *shims*, logging (and returning) what could only be partly undone."""
    warnings = shims.revert()
    for warning in warnings:
        revert_incomplete(patch_id, warning)
    return warnings


def revert_incomplete(patch_id: str, detail: str) -> None:
    """Log that an undo of *patch_id* could only partly be done, with *detail*.

    :func:`revert` reports each warning of an undo through this. An undo that a
    ``Shims.record`` callback defers (it waits for a call in progress to
    return) ends after ``disable()`` and reports through it too
    (``hotfix.authoring.revert_incomplete``): the same ``patch.revert_incomplete`` warning.
    """
    _log.emit("warning", "patch.revert_incomplete", patch=patch_id, detail=detail)


def _rolled_back(name: str, module: types.ModuleType, before: dict[str, Any] | None, warnings: list[str]) -> str:
    """What the rollback of a patch that raised on *module* did, without claiming more than it knows.

    Only the changes made through its ``Shims`` are recorded, so only they
    can be undone: a name of the module that the patch (or anything it ran)
    rebound, added or deleted otherwise is named as left changed. *before*
    is the module's namespace as the patch found it.
    """
    reason = f"raised while applied on {name}; "
    if warnings:
        reason += "its recorded changes were only partly undone (" + "; ".join(warnings) + ")"
    else:
        reason += "its recorded changes were undone"
    if before is not None:
        now = vars(module)
        changed = sorted(
            key for key in before.keys() | now.keys()
            if before.get(key, MISSING) is not now.get(key, MISSING)
            and not _submodule_binding(name, key, now.get(key, MISSING))
        )  # fmt: skip
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            reason += f"; {name} names changed while it ran, not through its shims, stay as they are: {shown}"
    return reason


def _submodule_binding(package: str, key: str, value: Any) -> bool:
    """Whether ``package.key`` is the binding that importing the submodule ``package.key`` makes."""
    return isinstance(value, types.ModuleType) and sys.modules.get(f"{package}.{key}") is value


def settle(
    hook: Callable[[], Any], slot: Slot, shims: Shims, module: types.ModuleType, name: str,
    error: Exception | None, finding: Finding, started: float, before: dict[str, Any] | None = None,
) -> tuple[bool, list[Event]]:  # fmt: skip
    """Record what one application did; ``(applied, events)``. Call it under the runtime's lock.

    *before* is the module's namespace before the patch's apply ran (none when it did not run).
    """
    present, detail = finding
    elapsed = time.perf_counter() - started
    slot.seconds += elapsed
    if error is not None:
        warnings = revert(shims, slot.patch.id)
        slot.state, slot.error = "failed", f"{type(error).__name__}: {error}"
        slot.reason = _rolled_back(name, module, before, warnings)
        return False, [patch_event(hook, "failed", slot, {"error": error}, module=name, error=slot.error)]
    if present:
        slot.state, slot.reason = "applied", detail
        if name not in slot.modules:
            slot.modules.append(name)
        call = {"module": module, "seconds": elapsed}
        return True, [patch_event(hook, "applied", slot, call, module=name, seconds=round(elapsed, 6), detail=detail)]
    if slot.state == "pending":
        slot.state, slot.reason = "skipped", f"probe: {detail}"
        return False, [patch_event(hook, "skipped", slot, module=name)]
    return False, []


def revert_all(hook: Callable[[], Any], applied: list[tuple[Slot, Shims, str]]) -> list[Event]:
    """Undo every application in *applied* (slot, changes, module), newest first, emptying it; the slots become
    "reverted"."""
    reverted: dict[str, Slot] = {}
    while applied:
        slot, shims, _ = applied.pop()
        revert(shims, slot.patch.id)
        reverted[slot.patch.id] = slot
    events = []
    for slot in reverted.values():
        slot.state, slot.reason = "reverted", "hotfix.disable() removed its shims"
        events.append(patch_event(hook, "reverted", slot, module=",".join(slot.modules), seconds=0.0))
    return events


def subclass_failed(patch_id: str, cls: type, error: BaseException) -> tuple[str, str]:
    """Log a patch's subclass callback that raised; ``(target, problem)`` for its slot."""
    target = f"{cls.__module__}.{cls.__qualname__}"
    _log.emit("warning", "patch.failed", patch=patch_id, module=cls.__module__, target=target,
        error=f"{type(error).__name__}: {error}",
    )  # fmt: skip
    log_traceback(patch_id, error)
    return target, f"on class {target}: {type(error).__name__}: {error}"


def forget_module(
    applied: list[tuple[Slot, Shims, str]], slots: Iterable[Slot], module: types.ModuleType
) -> list[tuple[Slot, Shims, str]]:
    """Undo the applications made to *module*, about to be executed again; returns the others.

    Every slot forgets the module too, so that the patches watching it probe
    and apply afresh when its code has run again. Call it under the lock.
    """
    name = module.__name__
    kept: list[tuple[Slot, Shims, str]] = []
    stale: list[tuple[Slot, Shims, str]] = []
    for entry in applied:
        (stale if entry[2] == name and entry[0].done.get(name) is module else kept).append(entry)
    for slot, shims, _ in reversed(stale):
        revert(shims, slot.patch.id)
    for slot in slots:
        if slot.done.get(name) is module:
            del slot.done[name]
    return kept
