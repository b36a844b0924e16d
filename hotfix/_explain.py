"""Errors that name their fix: PEP 678 notes on errors from legacy code, and ``hotfix explain``.

An error message is matched against what the registry knows: the names a
patch restores (``cannot import name 'X' from 'M'``, ``No module named
'M'``, ``has no attribute 'a'``, ``unexpected keyword argument 'k'``) and
the error every patch and break row records. For each patch found, the note
says what it did in this process (applied, failed, denied by the selection,
out of its version range); when nothing matches it says so and gives the
``hotfix scan`` command and where to report the break.

While hotfix is enabled, an ``ImportError``, ``AttributeError`` or
``TypeError`` from legacy code (raised in, or at most a couple of frames
under, a frame of a legacy module, or in a method of a legacy class) gets the
note where it leaves hotfix's reach: the import of a watched legacy module,
transformers' loading of remote code, and the interpreter's and threads'
excepthooks for what nobody catches.
"""

from __future__ import annotations

import re
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from ._patch import Patch

__all__ = ["annotate", "explain_text", "install_hooks", "remove_hooks", "from_legacy", "report_to"]

NOTE_PREFIX = "hotfix:"
UNCOVERED = f"{NOTE_PREFIX} no hotfix patch covers this error"
EXPLAINED = (ImportError, AttributeError, TypeError)
_LOOK_DEPTH = 3  # "just under": the raising frame and the two frames above it

_IMPORT_NAME = re.compile(r"cannot import name '(?P<name>[\w.]+)' from '(?P<module>[\w.]+)'")
_NO_MODULE = re.compile(r"No module named '(?P<module>[\w.]+)'")
_NO_ATTRIBUTE = re.compile(
    r"(?:module '(?P<module>[\w.]+)'|'?(?P<owner>[\w.]+)'?(?: object)?) has no attribute '(?P<name>\w+)'"
)
_KEYWORD = re.compile(r"(?:(?P<function>[\w.]+)\(\) )?got an unexpected keyword argument '(?P<name>\w+)'")


def _error_pattern(error: str) -> re.Pattern[str] | None:
    """A patch's recorded error as a pattern that also matches the same error from another class."""
    text = error.split(" / ")[0].split(" (")[0].strip()
    if not text or text.startswith("no error"):
        return None
    _, _, message = text.partition(": ")
    pattern = re.escape(message or text)
    pattern = re.sub(r"'[A-Za-z_][\w]*'(\\ )object", r"'\\w+'\1object", pattern)  # 'AnyClass' object
    pattern = re.sub(r"[A-Za-z_]\w*\\\.(\w+)\\\(\\\)", r"\\w+\\.\1\\(\\)", pattern)  # AnyClass.method()
    pattern = re.sub(r"\d+", r"\\d+", pattern)  # tensor sizes
    return re.compile(pattern)


def _candidates(text: str, patches: list[Patch]) -> list[tuple[Patch, str]]:
    """The patches whose break this error text is, with how it was recognised."""
    from ._scan import patch_triggers

    found: dict[str, tuple[Patch, str]] = {}

    def add(patch: Patch, why: str) -> None:
        found.setdefault(patch.id, (patch, why))

    keys: list[str] = []
    attributes: list[str] = []
    keywords: list[str] = []
    if match := _IMPORT_NAME.search(text):
        keys += [f"{match['module']}:{match['name']}", match["module"], f"{match['module']}.{match['name']}"]
    if match := _NO_MODULE.search(text):
        module = match["module"]
        keys += [module, *(module.rsplit(".", i)[0] for i in range(1, module.count(".")))]
    if match := _NO_ATTRIBUTE.search(text):
        attributes.append(match["name"])
        if match["module"]:
            keys.append(f"{match['module']}:{match['name']}")
    if match := _KEYWORD.search(text):
        keywords.append(match["name"])
    for patch in patches:
        for trigger in patch_triggers(patch):
            kind, _, argument = trigger.partition(":")
            if kind == "import" and argument in keys:
                add(patch, f"it restores {argument.replace(':', '.')}")
            elif kind == "attr" and argument.rpartition(".")[2] in attributes:
                add(patch, f"it covers .{argument.rpartition('.')[2]}")
            elif kind == "keyword" and argument.partition("(")[2].rstrip(")") in keywords:
                add(patch, f"it covers the keyword {keywords[0]!r}")
        details = patch.details
        if (
            keywords
            and patch.shape == "removed-keyword"
            and (keywords[0] in details.get("drop", ()) or keywords[0] in details.get("rename", {}))
        ):
            add(patch, f"it covers the keyword {keywords[0]!r}")
        pattern = _error_pattern(patch.error)
        if pattern is not None and pattern.search(text):
            add(patch, "the error is the one it repairs")
    return list(found.values())


def report_to() -> str:
    """Where to report a break: the ``Issues`` URL of the installed distribution's metadata, if it has one."""
    from importlib import metadata

    try:
        for entry in metadata.metadata("hotfix-ml").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("issues", "bug tracker", "tracker"):
                return str(url).strip()
    except metadata.PackageNotFoundError:
        pass
    return "hotfix's issue tracker"


def _state(patch: Patch) -> str:
    """What the patch did, or would do, in this process."""
    from ._runtime import RUNTIME

    slot = RUNTIME.slots.get(patch.id) if RUNTIME.enabled else None
    if slot is not None:
        if slot.state == "applied":
            return "it is applied in this process, and the error still happened: please report it"
        if slot.state == "failed" or slot.error:
            return f"it failed here: {slot.error}"
        if slot.state == "skipped":
            return f"it was skipped: {slot.reason}"
        if slot.state == "pending":
            return f"it is selected, but has not run yet ({slot.reason})"
        return f"it is {slot.state}"
    plan = next((p for p in RUNTIME.plan(None) if p.id == patch.id), None)
    if plan is None:
        return "it is not registered in this process"
    if plan.state == "pending":
        if not RUNTIME.enabled:
            return (
                f"it applies to the installed {patch.distribution} {plan.version}: with hotfix enabled "
                "(hotfix.enable(), HOTFIX_ENABLE=1 or hotfix run) it repairs this"
            )
        return f"it applies to the installed {patch.distribution} {plan.version}, and has not run yet"
    return f"it is skipped here: {plan.reason}"


def explain_text(text: str) -> str:
    """The explanation of an error message, as lines starting with ``hotfix:``."""
    from ._runtime import RUNTIME
    from ._versions import installed_version

    collected = RUNTIME.plugins.collected()
    found = _candidates(text, list(collected.patches))
    lines = []
    for patch, why in found:
        catalog = f" (break {', '.join(patch.catalog)})" if patch.catalog else ""
        lines.append(f"{NOTE_PREFIX} patch {patch.id}{catalog} covers this: {why}; {_state(patch)}.")
        lines.append(f"{NOTE_PREFIX}   {patch.summary}")
    for row in RUNTIME.plugins.collected().breaks:
        pattern = _error_pattern(row.error)
        if row.refused and pattern is not None and pattern.search(text):
            lines.append(f"{NOTE_PREFIX} this is break {row.id}, which hotfix does not shim by design: {row.refused}")
    if not lines:
        version = installed_version("transformers")
        lines.append(
            UNCOVERED
            + (f" (transformers {version} installed)" if version else "")
            + ". Run `hotfix scan <model folder>` to list every name the model needs that is missing here, "
            f"and report the break with that output at {report_to()}."
        )
    return "\n".join(lines)


def _frames(traceback: types.TracebackType | None) -> list[types.FrameType]:
    frames = []
    while traceback is not None:
        if not traceback.tb_frame.f_code.co_filename.startswith("<frozen importlib"):
            frames.append(traceback.tb_frame)
        traceback = traceback.tb_next
    return frames


def from_legacy(error: BaseException) -> str | None:
    """The legacy module the error comes from, when it does (in or just under one of its frames)."""
    from ._scope import is_legacy

    for frame in reversed(_frames(error.__traceback__)[-_LOOK_DEPTH:]):
        name = frame.f_globals.get("__name__", "")
        if isinstance(name, str) and is_legacy(name):
            return name
        owner = frame.f_locals.get("self")
        module = getattr(type(owner), "__module__", "") if owner is not None else ""
        if isinstance(module, str) and is_legacy(module):
            return module
    return None


def annotate(error: BaseException) -> bool:
    """Add hotfix's note to an error from legacy code, once. Never raises."""
    try:
        if not isinstance(error, EXPLAINED) or any(
            isinstance(n, str) and n.startswith(NOTE_PREFIX) for n in getattr(error, "__notes__", ())
        ):
            return False
        module = from_legacy(error)
        if module is None:
            return False
        from ._runtime import RUNTIME

        # This may run while the failing module's import lock is held, and another thread may hold hotfix's
        # lock while it waits for that import (a patch applying): never wait for hotfix's lock here.
        if RUNTIME.lock.acquire(blocking=False):
            try:
                explanation = explain_text(f"{type(error).__name__}: {error}")
            finally:
                RUNTIME.lock.release()
        else:
            explanation = (
                f"{NOTE_PREFIX} hotfix was busy; `hotfix explain` with this error names the patch that covers it."
            )
        note = f"{NOTE_PREFIX} raised in legacy code ({module}).\n{explanation}"
        error.add_note(note) if sys.version_info >= (3, 11) else _add_note(error, note)
        return True
    except Exception:  # noqa: BLE001 - a note must never replace the user's error
        return False


def _add_note(error: BaseException, note: str) -> None:  # pragma: no cover - Python 3.10 only
    notes = getattr(error, "__notes__", None)
    if not isinstance(notes, list):
        notes = []
        error.__notes__ = notes
    notes.append(note)


_previous: dict[str, Any] = {}


def _enabled() -> bool:
    from ._runtime import RUNTIME

    return RUNTIME.enabled


def install_hooks() -> None:
    """Chain to ``sys.excepthook`` and ``threading.excepthook``: what nobody catches gets the note first."""
    if _previous:
        return
    previous_sys: Callable[..., Any] = sys.excepthook
    previous_thread: Callable[..., Any] = threading.excepthook

    def excepthook(kind: type[BaseException], error: BaseException, traceback: types.TracebackType | None) -> Any:
        if _enabled():
            annotate(error)
        return previous_sys(kind, error, traceback)

    def thread_excepthook(arguments: Any) -> Any:
        if arguments.exc_value is not None and _enabled():
            annotate(arguments.exc_value)
        return previous_thread(arguments)

    _previous.update(sys=previous_sys, thread=previous_thread, ours_sys=excepthook, ours_thread=thread_excepthook)
    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def remove_hooks() -> None:
    """Undo :func:`install_hooks`, unless someone chained after us (then ours stays and passes through)."""
    if not _previous:
        return
    if sys.excepthook is _previous["ours_sys"]:
        sys.excepthook = _previous["sys"]
    if threading.excepthook is _previous["ours_thread"]:
        threading.excepthook = _previous["thread"]
    _previous.clear()
