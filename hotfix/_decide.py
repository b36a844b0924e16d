"""What applies: one pure decision, from a patch, the selection and the installed version.

``enable()`` acts on it, and ``status()``, ``hotfix list`` and ``hotfix
doctor`` (through :meth:`Runtime.plan`) report it, so that what hotfix says
it would do and what it does cannot drift apart.
"""

from __future__ import annotations

import difflib
import fnmatch
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import final

from ._patch import Patch
from ._status import PatchStatus, State
from ._versions import gate, installed_versions

__all__ = ["Decision", "Slot", "arrange", "decide", "plan", "select", "unmatched", "watches"]


def _is_glob(item: str) -> bool:
    return any(c in item for c in "*?[")


def select(patches: Iterable[Patch], selection: Sequence[str] | None) -> dict[str, str | None]:
    """Which patches the selection turns on: ``{id: None}`` for selected, ``{id: reason}`` for not.

    No selection means every patch that is on by default. Items are ids or
    globs to allow and ``-id``/``-glob`` to deny. A glob only matches patches
    that are on by default; a patch that is off by default (every unsafe one
    is) must be named by its exact id. The framework's own patches
    (:mod:`hotfix._framework`) are on unless denied.
    """
    allow = [item for item in selection or () if not item.startswith("-")]
    deny = [item[1:] for item in selection or () if item.startswith("-")]
    result: dict[str, str | None] = {}
    for patch in patches:

        def matches(items: list[str], patch: Patch = patch) -> bool:
            return any(
                item == patch.id or (_is_glob(item) and patch.default and fnmatch.fnmatchcase(patch.id, item))
                for item in items
            )

        if any(item == patch.id or fnmatch.fnmatchcase(patch.id, item) for item in deny):
            result[patch.id] = "denied by the selection"
        elif patch.shape == "framework":
            result[patch.id] = None  # what the selection allows needs it; only a deny item turns it off
        elif allow:
            result[patch.id] = None if matches(allow) else "not in the selection"
        elif not patch.default:
            result[patch.id] = "off by default (unsafe: name it explicitly)" if patch.unsafe else "off by default"
        else:
            result[patch.id] = None
    return result


def unmatched(patches: Iterable[Patch], selection: Sequence[str] | None) -> list[str]:
    """The selection items that name no patch, each with the ids it may have meant: a typo selects nothing."""
    ids = [patch.id for patch in patches]
    problems = []
    for item in selection or ():
        name = item[1:] if item.startswith("-") else item
        if any(name == i or fnmatch.fnmatchcase(i, name) for i in ids):
            continue
        close = difflib.get_close_matches(name, ids, n=3, cutoff=0.6)
        problems.append(f"{item!r} names no patch" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return problems


@final
@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a patch watches its triggers in this process, and why, in words."""

    active: bool
    reason: str
    installed: bool


def decide(patch: Patch, deselected: str | None, version: str | None) -> Decision:
    """The decision for *patch*: *deselected* is :func:`select`'s reason (``None`` when selected).

    A patch whose distribution is not installed yet stays active: it is gated
    when its target is imported (a ``.pth`` or a ``sys.path`` change may make
    it visible later).
    """
    if deselected is not None:
        return Decision(False, deselected, version is not None)
    inside, why = gate(patch.affected, version)
    if not inside and version is not None:
        return Decision(False, f"{patch.distribution} {why}", True)
    waiting = f"waiting for {' or '.join(patch.triggers)}"
    if version is None:
        waiting += f" ({patch.distribution} not installed yet: gated when imported)"
    return Decision(True, waiting, version is not None)


@final
class Slot:
    """One patch's mutable state inside the runtime."""

    __slots__ = ("active", "done", "error", "modules", "patch", "reason", "seconds", "state", "version")

    def __init__(self, patch: Patch) -> None:
        self.patch = patch
        self.state: State = "pending"
        self.reason = ""
        self.error: str | None = None
        self.version: str | None = None
        self.done: dict[str, types.ModuleType] = {}  # module name -> the module object it was applied to
        self.modules: list[str] = []
        self.seconds = 0.0
        self.active = False

    def status(self) -> PatchStatus:
        p = self.patch
        return PatchStatus(
            p.id, p.summary, p.distribution, str(p.affected), self.version, self.state, self.reason,
            self.error, list(self.modules), self.seconds, p.unsafe, p.default, p.source,
        )  # fmt: skip


def plan(patches: Sequence[Patch], selection: Sequence[str] | None) -> list[PatchStatus]:
    """What each patch would do in this environment if hotfix were enabled now with *selection*.

    The decision :func:`decide` gives ``enable()``, in words; a patch whose
    distribution is not installed is reported skipped (it would wait).
    """
    chosen = select(patches, selection)
    versions = installed_versions(p.distribution for p in patches)
    plans = []
    for patch in patches:
        slot = Slot(patch)
        slot.version = versions[patch.distribution]
        decision = decide(patch, chosen[patch.id], slot.version)
        if not decision.active or not decision.installed:
            slot.state = "skipped"
            slot.reason = decision.reason if decision.installed else f"{patch.distribution} not installed"
        else:
            why = gate(patch.affected, slot.version)[1]
            slot.reason = f"{patch.distribution} {why}: will probe when {' or '.join(patch.triggers)} is imported"
        plans.append(slot.status())
    return plans


def arrange(patches: Sequence[Patch], selection: Sequence[str] | None) -> dict[str, Slot]:
    """One slot per patch for ``enable()``: active (watching its triggers) or skipped, with the reason."""
    chosen = select(patches, selection)
    versions = installed_versions(p.distribution for p in patches)
    slots = {}
    for patch in patches:
        slot = slots[patch.id] = Slot(patch)
        slot.version = versions[patch.distribution]
        decision = decide(patch, chosen[patch.id], slot.version)
        slot.active, slot.reason = decision.active, decision.reason
        if not decision.active:
            slot.state = "skipped"
    return slots


def watches(
    slots: Iterable[Slot],
) -> tuple[dict[str, list[Slot]], list[tuple[str, Slot]], dict[str, list[Slot]]]:
    """The active slots by trigger: exact module names, module-name prefixes, and missing modules they provide."""
    by_module: dict[str, list[Slot]] = {}
    by_prefix: list[tuple[str, Slot]] = []
    by_missing: dict[str, list[Slot]] = {}
    for slot in slots:
        if not slot.active:
            continue
        for name in slot.patch.modules:
            by_module.setdefault(name, []).append(slot)
        by_prefix += [(prefix, slot) for prefix in slot.patch.prefixes]
        for name in slot.patch.provides:
            by_missing.setdefault(name, []).append(slot)
    return by_module, by_prefix, by_missing
