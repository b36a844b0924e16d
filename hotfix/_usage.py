"""Which patches this process's code actually used.

A callable shim records its patch on its first call and then replaces itself
with the plain shim, so a used shim costs nothing afterwards (see
:meth:`hotfix.Shims.set`). A subclass hook records its patch when it changes a
class. What cannot count its own use (a moved value, a provided module) is
looked up when :func:`hotfix.status` is asked: a provided module in
``sys.modules``, a restored value that a legacy module holds.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["USED", "clear", "hit", "scan_values", "used_by"]

USED: dict[str, str] = {}
"""patch id -> what used it first (a shim called, a class changed, a module imported)."""


def short(module: str) -> str:
    """A module name as a user reads it: remote code without its ``transformers_modules.<repo>.<hash>.``."""
    return module.rpartition(".")[2] if module.startswith("transformers_modules.") else module


def hit(patch_id: str, what: str) -> None:
    USED.setdefault(patch_id, what)


def clear() -> None:
    USED.clear()


def scan_values(patch_id: str, changes: list[Any]) -> str | None:
    """For a patch's non-callable changes: a legacy module holding one, or a provided module imported."""
    from ._boot import modules_snapshot
    from ._scope import is_legacy

    legacy = [m for name, m in modules_snapshot() if isinstance(m, types.ModuleType) and is_legacy(name)]
    for change in changes:
        if not change.attribute:  # a provided module
            name = str(change.owner).removeprefix("module ")
            module = sys.modules.get(name)
            if str(change.owner).startswith("module ") and module is not None:
                return f"module {name} imported"
            continue
        installed = change.installed
        for module in legacy:
            namespace = vars(module)
            if namespace.get(change.attribute) is installed:  # `from owner import name` in legacy code
                return f"{short(module.__name__)} imports {change.describe()}"
    return None


def used_by(patch_id: str, changes: Iterable[Any]) -> str | None:
    """How code in this process used the patch: its mark, else what :func:`scan_values` finds, else ``None``."""
    mark = USED.get(patch_id)
    if mark is None and changes:
        mark = scan_values(patch_id, list(changes))
    return mark
