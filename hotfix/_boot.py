"""``enable()`` without loading anything: the registry waits for the first import of a watched library.

``hotfix.enable()`` runs in every process of an environment that sets
``HOTFIX_ENABLE=1``, most of which never import transformers. So, when
nothing asks for more, it only checks that hotfix's own dependencies are
installed, sets the environment for worker processes and puts a trigger
first in ``sys.meta_path``: a finder that answers ``None`` to every module
outside the top-level packages that patches watch (``hotfix/_index.py``,
generated at build time). At the first import of one of those (``import
transformers``), or when a call needs the patches (``hotfix.status()``), the
trigger resolves: it loads the runtime, the registry, pluggy and the
installed patch packs and enables hotfix for real, as ``enable()`` did at
once before, then lets the real finder answer that import.

This module imports only what the interpreter has loaded at start-up
already (``os``, ``sys``, ``_thread``), so that an enabled process that never
imports a target pays a fraction of a millisecond. ``enable()`` takes the
full path at once when its arguments ask for checks that must raise at the
call (*patches*, *strict*, *legacy*, ``HOTFIX_STRICT``), when a target is
imported already, when a patch pack is installed (it may watch any library),
or when the runtime is loaded anyway.
"""

from __future__ import annotations

import _thread
import os
import sys

from . import _env, _index

TYPE_CHECKING = False  # typing is not imported for it: this module is on every enabled process's start-up path
if TYPE_CHECKING:
    import types
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from typing import Any

    from ._importer import Finder

__all__ = [
    "DEPENDENCIES",
    "LOCK",
    "START_UP",
    "cancel",
    "enable",
    "modules_snapshot",
    "pending",
    "propagate",
    "resolve",
    "restore_environ",
]

LOCK = _thread.RLock()
"""Serialises every change to hotfix's state (the runtime's lock is this one)."""
if hasattr(os, "register_at_fork"):
    # A fork while another thread holds the lock would leave the child's copy of it locked for good: the
    # forking thread takes it first, and both sides release it.
    os.register_at_fork(before=LOCK.acquire, after_in_parent=LOCK.release, after_in_child=LOCK.release)

START_UP = [False]
"""True while ``hotfix.pth`` activates hotfix (set by :mod:`hotfix._activate`); a deferred enable() keeps it."""

DEPENDENCIES = ("wrapt", "structlog", "pluggy", "packaging")
"""Imported only when hotfix resolves (enable() stays cheap), so looked for at enable()."""

_LOCAL = _thread._local()


class _Pending:
    """What a deferred ``enable()`` recorded, for the runtime to act on when it resolves."""

    def __init__(self, selection: list[str] | None, environ: dict[str, str | None] | None, start_up: bool) -> None:
        self.selection = selection
        self.environ = environ  # what propagation replaced (None: not propagated), for disable()
        self.start_up = start_up
        self.trigger = _Trigger()


_STATE: list[_Pending] = []  # one entry while an enable() is deferred


class _Trigger:
    """The finder a deferred ``enable()`` installs: resolves at the first import of a watched package.

    A plain class, not an ``importlib.abc.MetaPathFinder`` (importing
    importlib.abc would cost more than the rest of ``enable()``).
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        if getattr(_LOCAL, "busy", False):
            return None
        if fullname == "threading":
            return self._threading(path, target)
        if fullname.partition(".")[0] not in _index.TOP_LEVEL:
            return None
        finder = resolve()
        return finder.find_spec(fullname, path, target) if finder is not None else None

    def _threading(self, path: Sequence[str] | None, target: types.ModuleType | None) -> ModuleSpec | None:
        """threading's real spec, its loader hooking ``threading.excepthook`` once the module has run."""
        _LOCAL.busy = True
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                spec: ModuleSpec | None = find("threading", path, target) if finder is not self and find else None
                if spec is not None:
                    if hasattr(spec.loader, "exec_module"):
                        spec.loader = _HookingLoader(spec.loader)  # type: ignore[assignment]
                    return spec
            return None
        finally:
            _LOCAL.busy = False

    def __repr__(self) -> str:
        return "<hotfix trigger: the registry loads at the first import of a watched package>"


class _HookingLoader:
    """threading's loader, which installs the note hook for threads after the module has executed."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        if _STATE:
            _hook(module, "excepthook", _thread_hook)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


# Uncaught errors get hotfix's note (hotfix._explain) once it has resolved; until then these hooks resolve
# at the first uncaught error, so that an error in legacy code that never imported a target gets it too.
_PREVIOUS: dict[str, Any] = {}


def _hook(owner: Any, name: str, hook: Any) -> None:
    key = "sys.excepthook" if owner is sys else name
    if key not in _PREVIOUS:
        _PREVIOUS[key] = (owner, getattr(owner, name))
        setattr(owner, name, hook)


def _unhook() -> None:
    """Put back the excepthooks that were there before; one that somebody chained after stays and passes through."""
    for key, (owner, previous) in list(_PREVIOUS.items()):
        if getattr(owner, "excepthook", None) is (_sys_hook if key == "sys.excepthook" else _thread_hook):
            owner.excepthook = previous
            del _PREVIOUS[key]


def _sys_hook(kind: type[BaseException], error: BaseException, traceback: types.TracebackType | None) -> Any:
    previous = _PREVIOUS.get("sys.excepthook", (None, sys.__excepthook__))[1]  # before resolve() unhooks
    _note(error)
    return previous(kind, error, traceback)


def _thread_hook(arguments: Any) -> Any:
    previous = _PREVIOUS.get("excepthook", (None, None))[1] or sys.modules["threading"].__excepthook__
    if arguments.exc_value is not None:
        _note(arguments.exc_value)
    return previous(arguments)


def _note(error: BaseException) -> None:
    """Resolve, then add the note as the runtime's own hook would (it adds it once: both may run). Never raises."""
    try:
        resolve()
        from . import _explain

        if _explain._enabled():
            _explain.annotate(error)
    except Exception:  # noqa: BLE001 - an excepthook must report the error it was given, whatever happens here
        pass


def pending() -> bool:
    """Whether ``enable()`` was called and hotfix has not resolved yet."""
    return bool(_STATE)


def enable(patches: Sequence[str] | None, strict: bool | None, propagate_: bool, legacy: Sequence[str] | None) -> None:
    """``hotfix.enable()``: deferred when nothing asks for more (see the module's docstring), else the runtime's."""
    if patches is None and strict is None and legacy is None:
        with LOCK:
            if _deferrable():
                if not _STATE:
                    check_dependencies()
                    selection = _env.patch_selection()
                    environ = propagate(selection, False, None) if propagate_ else None
                    state = _Pending(selection, environ, START_UP[0])
                    _STATE.append(state)
                    sys.meta_path = [state.trigger, *sys.meta_path]  # a new list: see _runtime._meta_path
                    _hook(sys, "excepthook", _sys_hook)
                    if "threading" in sys.modules:
                        _hook(sys.modules["threading"], "excepthook", _thread_hook)
                return
    from ._runtime import RUNTIME

    RUNTIME.enable(patches=patches, strict=strict, propagate=propagate_, legacy=legacy)


def modules_snapshot() -> list[tuple[str, object]]:
    """``sys.modules``' items, taken whole while other threads import.

    ``list(sys.modules.items())`` can fail with "dictionary changed size
    during iteration": building the list may run a garbage collection, and
    with it another thread's import. A copy is retried until it is whole.
    """
    while True:
        try:
            return list(sys.modules.copy().items())
        except RuntimeError:  # changed size while being copied
            continue


def _deferrable() -> bool:
    if _STATE:
        return True
    # Membership tests only: iterating sys.modules races with other threads' imports.
    if "hotfix._runtime" in sys.modules or _env.strict() or any(name in sys.modules for name in _index.TOP_LEVEL):
        return False
    forkserver = sys.modules.get("multiprocessing.forkserver")
    # A running forkserver gets a warning from the runtime's enable() (its workers keep its environment).
    if getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None) is not None:
        return False
    return not packs_installed()


def packs_installed() -> bool:
    """Whether a distribution on ``sys.path`` declares a ``hotfix.patches`` entry point (a patch pack).

    A pack may watch any library, not only the packages of the index, so
    with one installed ``enable()`` loads it at once. Read from the
    ``entry_points.txt`` of each ``*.dist-info``/``*.egg-info`` folder, as
    importlib.metadata finds them, without importing it (about a tenth of a
    millisecond per hundred distributions).
    """
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as folder:
                names = [item.path for item in folder if item.name.endswith((".dist-info", ".egg-info"))]
        except OSError:
            continue  # a zip file, a missing folder: importlib.metadata reads no entry points from them either
        for name in names:
            path = name + "/entry_points.txt"
            if not os.access(path, os.R_OK):  # most have none: a check without an exception to raise
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    if "[hotfix.patches]" in handle.read():
                        return True
            except (OSError, UnicodeDecodeError):
                continue
    return False


def resolve() -> Finder | None:
    """Enable hotfix for real if an ``enable()`` is deferred; the runtime's finder when hotfix is enabled.

    Called by the trigger and by every call that needs the patches. A failure
    (a pack that breaks the registry, a missing library) is reported in the
    log and in ``hotfix.status()``, and the import that triggered it goes on
    without hotfix: a broken patch never breaks the import of its target.
    """
    with LOCK:
        if not _STATE:
            return _enabled_finder()
        state = _STATE.pop()
        _remove_trigger(state)
        _LOCAL.busy = True
        saved = START_UP[0]
        START_UP[0] = state.start_up
        try:
            from ._runtime import RUNTIME

            resume = RUNTIME.resume(state.selection, state.environ)
        except Exception as error:  # noqa: BLE001 - see the docstring
            restore_environ(state.environ or {})
            from ._importer import report_degraded

            report_degraded(f"hotfix could not be enabled: {type(error).__name__}: {error}")
            return None
        finally:
            START_UP[0] = saved
            _LOCAL.busy = False
    resume()  # outside the lock, like the end of the runtime's enable()
    return _enabled_finder()


def _enabled_finder() -> Finder | None:
    runtime = getattr(sys.modules.get("hotfix._runtime"), "RUNTIME", None)
    return runtime.finder if runtime is not None and runtime.enabled else None


def cancel() -> bool:
    """Undo a deferred ``enable()`` (``disable()`` before any target was imported); whether one was pending."""
    with LOCK:
        if not _STATE:
            return False
        state = _STATE.pop()
        _remove_trigger(state)
        restore_environ(state.environ or {})
        return True


def _remove_trigger(state: _Pending) -> None:
    sys.meta_path = [finder for finder in sys.meta_path if finder is not state.trigger]
    _unhook()


def check_dependencies() -> None:
    """Refuse to enable when a library hotfix needs is missing: all on, or all off, never half.

    Looked for through ``sys.meta_path`` as the import system would, without
    importing importlib.util (or the library).
    """
    from ._errors import DependencyError

    for name in DEPENDENCIES:
        if name in sys.modules:
            continue
        try:
            found = any(
                find(name, None) is not None
                for find in (getattr(finder, "find_spec", None) for finder in sys.meta_path)
                if find is not None
            )
        except (ImportError, ValueError) as error:
            raise DependencyError(name, f"{type(error).__name__}: {error}") from error
        if not found:
            raise DependencyError(name, f"No module named {name!r}")


def propagate(selection: Sequence[str] | None, strict: bool, legacy: Sequence[str] | None) -> dict[str, str | None]:
    """Set the environment so that worker processes (spawn, torchrun) activate too; returns what was there.

    *legacy* ``None`` leaves ``HOTFIX_LEGACY`` as it is (a deferred enable() has not read it yet).
    """
    wanted = {_env.ENABLE: "1", _env.PATCHES: _storable(",".join(selection)) if selection else None}
    wanted[_env.STRICT] = "1" if strict else None
    if legacy is not None:
        wanted[_env.LEGACY] = _storable(",".join(legacy)) if legacy else None
    saved = {name: os.environ.get(name) for name in wanted}
    restore_environ(wanted)
    return saved


def _storable(text: str) -> str:
    """*text* as the environment can hold it: a NUL or a lone surrogate (which no patch id or module name
    contains, so the item named nothing) becomes U+FFFD, which names nothing either."""
    return "".join("\ufffd" if char == "\x00" or 0xD800 <= ord(char) <= 0xDFFF else char for char in text)


def restore_environ(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
