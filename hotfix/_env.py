"""Every environment variable hotfix reads, in one place.

Each is read when the function is called, never at import time, so that a
process can change them before calling :func:`hotfix.enable`.

``HOTFIX_ENABLE``
    ``1``/``true``/``yes``/``on`` activates hotfix at interpreter start (through
    the ``hotfix.pth`` file installed with the wheel) and in worker processes.
``HOTFIX_PATCHES``
    Comma-separated selection of patches: ids or globs to allow, ``-id`` or
    ``-glob`` to deny. Empty or unset means every patch that is on by default.
    Unsafe patches are only selected when named by their exact id.
``HOTFIX_STRICT``
    ``1`` makes a failing patch raise :class:`hotfix.PatchFailedError` instead
    of being logged and rolled back (for CI).
``HOTFIX_LEGACY``
    Comma-separated module-name globs (``llava.model.*,rc_*``) of more code
    that hotfix treats as legacy, beside remote code (``transformers_modules.*``)
    and auto-gptq: vendored copies of remote-code model files, projects that
    copy ``modeling_*.py`` into their own tree. A glob also covers the
    submodules of what it names (``llava`` covers ``llava.model.mpt``).
``HOTFIX_LOG_LEVEL``
    Level of the ``hotfix`` logger (``DEBUG``, ``INFO``, ...). When set and no
    handler is configured anywhere, hotfix attaches a stderr handler to its own
    logger only.
``HOTFIX_LOG_FORMAT``
    ``console`` (key=value, the default) or ``json`` (one JSON object a line).
``HOTFIX_STATUS_FILE``
    A path: a process activated through ``HOTFIX_ENABLE`` writes its
    :func:`hotfix.status` there as JSON when it exits (``{pid}`` in the path
    is replaced by the process id, for workers); ``hotfix run --status FILE``
    sets it, ``hotfix status FILE`` reads it.
``HOTFIX_CACHE_DIR``
    Where ``hotfix scan`` keeps the answers it had to import a library for
    (default ``$XDG_CACHE_HOME/hotfix`` or ``~/.cache/hotfix``).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported for it: enable() is on every process's start-up path
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "ENABLE",
    "LEGACY",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "PATCHES",
    "STATUS_FILE",
    "STRICT",
    "enabled",
    "status_file",
    "legacy_modules",
    "log_format",
    "log_level",
    "log_level_problem",
    "patch_selection",
    "split_selection",
    "strict",
]

ENABLE = "HOTFIX_ENABLE"
PATCHES = "HOTFIX_PATCHES"
STRICT = "HOTFIX_STRICT"
LEGACY = "HOTFIX_LEGACY"
LOG_LEVEL = "HOTFIX_LOG_LEVEL"
LOG_FORMAT = "HOTFIX_LOG_FORMAT"
STATUS_FILE = "HOTFIX_STATUS_FILE"

_TRUE = frozenset({"1", "true", "yes", "on"})


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def enabled() -> bool:
    """Whether ``HOTFIX_ENABLE`` asks for activation."""
    return _flag(ENABLE)


def strict() -> bool:
    """Whether ``HOTFIX_STRICT`` asks failing patches to raise."""
    return _flag(STRICT)


def split_selection(items: Iterable[str]) -> list[str]:
    """Selection items as hotfix reads them: separated by commas, semicolons or spaces, lower-cased (ids are)."""
    import re  # here, not at import: enable() without a selection needs no regular expressions

    return [part.lower() for item in items for part in re.split(r"[,;\s]+", item) if part]


def patch_selection() -> list[str] | None:
    """The items of ``HOTFIX_PATCHES``, or ``None`` when it is unset or empty."""
    raw = os.environ.get(PATCHES, "")
    return (split_selection([raw]) or None) if raw.strip() else None


def legacy_modules() -> list[str]:
    """The module-name globs in ``HOTFIX_LEGACY`` (empty when unset)."""
    raw = os.environ.get(LEGACY, "")
    return [item.strip() for item in raw.split(",") if item.strip()]


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}


def log_level() -> int | None:
    """The level of ``HOTFIX_LOG_LEVEL`` (a name such as ``info``, or a number such as ``20``), or ``None``.

    A value that is neither is ignored, never fatal: :func:`log_level_problem` says what was wrong.
    """
    raw = os.environ.get(LOG_LEVEL, "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return int(raw)
    return _LEVELS.get(raw.upper())


def log_level_problem() -> str | None:
    """Why ``HOTFIX_LOG_LEVEL`` cannot be used, or ``None`` when it is unset or valid."""
    raw = os.environ.get(LOG_LEVEL, "").strip()
    if not raw or log_level() is not None:
        return None
    return f"{raw!r} is not a log level: use debug, info, warning or error (or 10, 20, 30, 40); ignored"


def log_format() -> str:
    """``json`` or ``console`` from ``HOTFIX_LOG_FORMAT``."""
    raw = os.environ.get(LOG_FORMAT, "").strip().lower()
    return "json" if raw == "json" else "console"


def status_file() -> str | None:
    """The path in ``HOTFIX_STATUS_FILE`` with ``{pid}`` filled in, or ``None``."""
    value = os.environ.get(STATUS_FILE, "").strip()
    return value.replace("{pid}", str(os.getpid())) if value else None
