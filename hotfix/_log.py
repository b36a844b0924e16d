"""hotfix's structlog logger, bound to the stdlib logger ``hotfix``.

hotfix never touches the root logger or structlog's global configuration: the
host application decides where ``hotfix`` records go. The one exception is
opt-in: when ``HOTFIX_LOG_LEVEL`` is set and nothing anywhere has a handler,
a stderr handler is attached to the ``hotfix`` logger itself, so that
``HOTFIX_LOG_LEVEL=INFO hotfix run -- ...`` shows something.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

from . import _env

__all__ = ["configure", "emit", "enabled", "logger"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_STDLIB_NAME = "hotfix"
_state: dict[str, Any] = {"logger": None, "handler": None}


def configure() -> None:
    """Apply ``HOTFIX_LOG_LEVEL`` and ``HOTFIX_LOG_FORMAT``; structlog is imported on the first event logged."""
    _state["logger"] = None
    stdlib = logging.getLogger(_STDLIB_NAME)
    level = _env.log_level()
    if level is not None:
        stdlib.setLevel(level)
        handler = _state["handler"]
        if handler is None and not stdlib.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            stdlib.addHandler(handler)
            _state["handler"] = handler


def _build() -> Any:
    import structlog

    stdlib = logging.getLogger(_STDLIB_NAME)
    renderer: Any
    if _env.log_format() == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.processors.KeyValueRenderer(key_order=["event", "patch"], drop_missing=True)
    return structlog.wrap_logger(
        stdlib,
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def logger() -> Any:
    """The bound structlog logger (built on first use)."""
    if _state["logger"] is None:
        _state["logger"] = _build()
    return _state["logger"]


def enabled(level: str) -> bool:
    """Whether an event at *level* would be logged."""
    return logging.getLogger(_STDLIB_NAME).isEnabledFor(_LEVELS[level])


def emit(level: str, event: str, **fields: Any) -> None:
    """Log *event* at *level* with *fields*; costs one level check when the level is off. Never raises.

    Events are emitted from inside the host's imports: when structlog is
    missing or broken, or a handler fails, the event goes to the stdlib logger
    as plain text, and if that fails too it is dropped.
    """
    stdlib = logging.getLogger(_STDLIB_NAME)
    if not stdlib.isEnabledFor(_LEVELS[level]):
        return
    try:
        getattr(logger(), level)(event, **fields)
    except Exception as error:  # noqa: BLE001 - logging must never break the import it reports on
        with contextlib.suppress(Exception):  # nothing left to report through
            stdlib.log(_LEVELS[level], "%s %s (structlog failed: %s: %s)", event, fields, type(error).__name__, error)
