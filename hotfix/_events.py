"""Events: one log record and one observer hook call per thing that happened to a patch.

Built under the runtime's lock, emitted after it is released: an observer
may import, log or call ``hotfix.status()``, and must not be able to
deadlock the import that triggered the patch. An observer that raises is
logged, never raised into the host's import.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from . import _log
from ._decide import Slot

__all__ = ["Event", "emit_all", "event", "log_traceback", "patch_event"]

Event = Callable[[], None]

# kind -> (log level, the observer hook)
_KINDS = {
    "applied": ("info", "hotfix_patch_applied"),
    "skipped": ("debug", "hotfix_patch_skipped"),
    "failed": ("warning", "hotfix_patch_failed"),
    "reverted": ("info", "hotfix_patch_reverted"),
}


def event(hook: Callable[[], Any], kind: str, slot: Slot, log: dict[str, Any], call: dict[str, Any]) -> Event:
    """The event *kind* of *slot*'s patch: *log* are the record's fields, *call* the hook's arguments."""
    level, name = _KINDS[kind]
    patch = slot.patch

    def emit() -> None:
        _log.emit(level, f"patch.{kind}", patch=patch.id, distribution=patch.distribution, version=slot.version, **log)
        if kind == "failed":
            log_traceback(patch.id, call["error"])
        getattr(hook(), name)(patch=patch, **call)

    return emit


def patch_event(
    hook: Callable[[], Any], kind: str, slot: Slot, call: dict[str, Any] | None = None, **log: Any
) -> Event:
    """:func:`event` with the fields every event of *kind* carries (the reason of a skip, the time spent)."""
    if kind == "skipped":
        log.setdefault("seconds", round(slot.seconds, 6))
        log["reason"] = slot.reason
        call = {"reason": slot.reason}
    elif kind == "failed":
        log.setdefault("seconds", round(slot.seconds, 6))
    return event(hook, kind, slot, log, call or {})


def emit_all(events: list[Event]) -> None:
    for emit in events:
        try:
            emit()
        except Exception as error:  # noqa: BLE001 - an observer must not break the host's import
            _log.emit("warning", "hook.failed", error=f"{type(error).__name__}: {error}")


def log_traceback(patch_id: str, error: BaseException) -> None:
    """At DEBUG, the traceback of a patch that raised (costs one level check otherwise)."""
    if _log.enabled("debug"):
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        _log.emit("debug", "patch.failed.traceback", patch=patch_id, traceback=text)
