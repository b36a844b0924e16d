"""The runtime: the state of hotfix in this process, and the apply state machine.

One :class:`Runtime` per process (``RUNTIME``). Its lock serialises every
change to hotfix's state and every patch application. The parts it is built
from each live in their own module:

* :mod:`hotfix._plugins`: the plugin manager and the collected patches;
* :mod:`hotfix._decide`: what applies (selection, version gate), one pure
  decision that ``enable()`` acts on and ``plan()`` reports;
* :mod:`hotfix._importer`: the finder that reports watched imports;
* :mod:`hotfix._framework`: the framework's own patches, where transformers
  loads modules behind the finder's back (they hand them to :meth:`Runtime.module_appeared`);
* :mod:`hotfix._events`: log records and observer hooks, emitted after the lock is released;
* :mod:`hotfix._status`: what :func:`hotfix.status` returns.
"""

from __future__ import annotations

import functools
import importlib
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, final

from . import _boot, _env, _explain, _introspect, _log, _scope, _usage
from ._apply import forget_module, revert_all, settle, subclass_failed
from ._decide import Slot, arrange, plan, select, unmatched, watches
from ._errors import ConfigurationError, PatchError, PatchFailedError
from ._events import Event, emit_all, patch_event
from ._importer import Finder, degraded, report_degraded
from ._plugins import Collected, Plugins
from ._shims import Shims, initializing
from ._status import PatchStatus, State, Status
from ._subclass import SubclassHooks
from ._versions import clear_cache, gate, installed_version

__all__ = ["RUNTIME", "PatchStatus", "Runtime", "State", "Status", "select"]


@final
class Runtime:
    """hotfix's state in this process."""

    def __init__(self) -> None:
        self.lock = _boot.LOCK
        self.enabled = False
        self.strict = False
        self.generation = 0
        self.finder: Finder | None = None
        self.slots: dict[str, Slot] = {}
        self.plugins = Plugins(self.lock, lambda: self.enabled or _boot.pending())
        self._by_module: dict[str, list[Slot]] = {}
        self._by_prefix: list[tuple[str, Slot]] = []
        self._by_missing: dict[str, list[Slot]] = {}
        self._applied: list[tuple[Slot, Shims, str]] = []  # (slot, its changes, the module name)
        self._subclasses = SubclassHooks(self._subclass_failed)
        self._environ: dict[str, str | None] = {}
        self._selection: list[str] | None = None

    # -- the registry (hotfix._plugins) --------------------------------------------

    def reload(self) -> None:
        """Forget the collected registry, the plugins and the patch states (after installing a patch pack)."""
        with self.lock:
            self.plugins.reload()
            self.slots = {}
            clear_cache()

    def register(self, plugin: object, name: str | None = None) -> None:
        with self.lock:
            self.plugins.register(plugin, name)
            self.slots = {}

    def unregister(self, plugin: object) -> None:
        with self.lock:
            self.plugins.unregister(plugin)
            self.slots = {}

    # -- enable / disable ----------------------------------------------------------

    def enable(
        self,
        patches: Sequence[str] | None = None,
        strict: bool | None = None,
        propagate: bool = True,
        legacy: Sequence[str] | None = None,
    ) -> None:
        _boot.resolve()  # a deferred enable() first becomes a real one: this call then compares with it
        with self.lock:
            selection = _env.split_selection(patches) if patches is not None else _env.patch_selection()
            if self.enabled:
                if patches is not None and selection != self._selection:
                    problem = f"hotfix is enabled already with patches={self._selection}; call disable() first"
                    if self.strict:
                        raise ConfigurationError("hotfix.enable(patches=...)", problem)
                    _log.emit("warning", "enable.ignored", detail=problem)
                return
            finder, events = self._start(selection, patches is not None, strict, legacy, propagate)
        self._catch_up(finder, events)

    def resume(self, selection: list[str] | None, environ: dict[str, str | None] | None) -> Callable[[], None]:
        """Enable what a deferred ``enable()`` recorded (:mod:`hotfix._boot`, under the lock); returns the
        rest, to run outside the lock. Its misconfiguration is logged, never raised (it is not strict)."""
        with self.lock:
            finder, events = self._start(selection, False, False, None, environ is not None)
            if environ is not None:
                self._environ = {**self._environ, **environ}  # disable() restores what was there before
        return functools.partial(self._catch_up, finder, events)

    def _start(
        self,
        selection: list[str] | None,
        given: bool,
        strict: bool | None,
        legacy: Sequence[str] | None,
        propagate: bool,
    ) -> tuple[Finder, list[Event]]:
        """Collect the patches, decide and install the finder (under the lock)."""
        events: list[Event] = []
        _log.configure()
        _boot.check_dependencies()
        self.strict = _env.strict() if strict is None else strict
        collected = self.plugins.collected()
        events += _misconfiguration(collected, selection, given, self.strict)
        _declare_legacy(legacy, self.strict)
        self._selection = selection
        self.slots = arrange(collected.patches, selection)
        events += [patch_event(self._hook, "skipped", s) for s in self.slots.values() if not s.active]
        self._by_module, self._by_prefix, self._by_missing = watches(self.slots.values())
        self.finder = Finder(self._module_loaded, self._module_missing, self._module_reloading)
        self.finder.watch(list(self._by_module), [prefix for prefix, _ in self._by_prefix], list(self._by_missing))
        _meta_path([self.finder, *sys.meta_path])
        self.enabled = True
        self.generation += 1
        _explain.install_hooks()
        if propagate:
            self._environ = _boot.propagate(selection, self.strict, _scope.declared_legacy())
            events += _running_forkserver()
        return self.finder, events

    def _catch_up(self, finder: Finder, events: list[Event]) -> None:
        """Emit what enabling found, then apply to the targets imported before it (outside the lock)."""
        emit_all(events)
        # Outside the lock (each application takes it), in import order so that parents come first.
        try:
            for name, module in _boot.modules_snapshot():
                if isinstance(module, types.ModuleType) and finder.watches(name):
                    finished = _finished(name, module)
                    if finished is not None:
                        self._module_loaded(finished)
        except PatchFailedError:
            self.disable()  # strict mode: all or nothing; a raising enable() leaves hotfix off
            raise

    def disable(self) -> None:
        events: list[Event] = []
        with self.lock:
            _boot.cancel()
            if not self.enabled:
                return
            self.enabled = False
            self.generation += 1
            _meta_path([finder for finder in sys.meta_path if finder is not self.finder])
            events += revert_all(self._hook, self._applied)
            for slot in self.slots.values():
                slot.active = False
            _explain.remove_hooks()
            _usage.clear()
            _introspect.clear_caches()
            _boot.restore_environ(self._environ)
            self._environ = {}
            _scope.declare_legacy(())
        emit_all(events)

    # -- applying --------------------------------------------------------------------

    def _hook(self) -> Any:
        return self.plugins.manager().hook

    def watching(self, name: str) -> bool:
        """Whether hotfix is enabled and a selected patch watches module *name*."""
        return self.enabled and self.finder is not None and self.finder.watches(name)

    def module_appeared(self, module: types.ModuleType) -> None:
        """Apply what watches *module*, which was loaded without passing the finder (:mod:`hotfix._framework`)."""
        if self.watching(getattr(module, "__name__", "")):
            self._module_loaded(module)

    def _module_loaded(self, module: types.ModuleType) -> None:
        name = getattr(module, "__name__", "")
        slots = list(self._by_module.get(name, ()))
        slots += [slot for prefix, slot in self._by_prefix if name.startswith(prefix)]
        for slot in slots:
            self._apply(slot, module)

    def _module_reloading(self, module: types.ModuleType) -> None:
        """*module* is executed again (``importlib.reload``): undo what was applied to it, to apply it afresh."""
        if any(slot.done.get(module.__name__) is module for slot in list(self.slots.values())):
            with self.lock:  # only then: every watched import comes here first
                self._applied = forget_module(self._applied, self.slots.values(), module)

    def _module_missing(self, name: str) -> None:
        parent = sys.modules.get(name.rpartition(".")[0]) or types.ModuleType(name)
        for slot in self._by_missing.get(name, ()):
            self._apply(slot, parent, trigger=name)

    def _apply(self, slot: Slot, module: types.ModuleType, trigger: str | None = None) -> None:
        name = trigger or module.__name__
        patch = slot.patch
        skipped: Event | None = None
        with self.lock:
            if not self.enabled or not slot.active or slot.done.get(name) is module:
                return
            slot.done[name] = module
            generation = self.generation
            if slot.version is None:
                # Not installed when hotfix was enabled; it is being imported now.
                slot.version = installed_version(patch.distribution)
                inside, why = gate(patch.affected, slot.version)
                if not inside:
                    slot.active = False
                    slot.state, slot.reason = "skipped", f"{patch.distribution} {why}"
                    skipped = patch_event(self._hook, "skipped", slot, module=name)
        if skipped is not None:
            emit_all([skipped])
            return
        # The probe runs outside the lock because it may import (a new home
        # of a moved name, torch for a value check). Holding hotfix's lock
        # while waiting for a module lock that another thread holds, while
        # that thread waits for hotfix's lock in its own import hook, would
        # deadlock: Python only detects cycles among its own module locks.
        started = time.perf_counter()
        shims = Shims(patch.id, self.finder, self._subclasses)
        finding, error, interrupted = _attempt(patch.probe, module)
        if error is None and not (isinstance(finding, tuple) and len(finding) == 2):
            error = PatchError(patch.id, f"its probe returned {finding!r}, not (break_present, detail)")
        present, detail = finding if error is None else (False, "")
        with self.lock:
            if self.generation != generation:
                return  # disabled (and maybe re-enabled) meanwhile: this application is stale
            before = None
            if error is None and present:
                before = dict(vars(module))  # what a failure's rollback can say it left changed
                _, error, interrupted = _attempt(patch.apply, module, shims)
            applied, events = settle(self._hook, slot, shims, module, name, error, (present, detail), started, before)
            if applied:
                self._applied.append((slot, shims, name))
        emit_all(events)
        if isinstance(interrupted, KeyboardInterrupt):
            raise interrupted
        if error is not None and self.strict:
            raise PatchFailedError(patch.id, name, error)

    def _subclass_failed(self, shims: Shims, cls: type, error: BaseException) -> None:
        target, problem = subclass_failed(shims.patch_id, cls, error)
        with self.lock:
            if shims.patch_id in self.slots:
                self.slots[shims.patch_id].error = problem
        if self.strict:
            raise PatchFailedError(shims.patch_id, target, error)

    # -- status ----------------------------------------------------------------------

    def status(self) -> Status:
        _boot.resolve()  # a deferred enable() resolves: the status shows what applies
        collected = self.plugins.collected()
        with self.lock:
            patches = [slot.status() for slot in self.slots.values()] if self.slots else self.plan(None)
            changes: dict[str, list[Any]] = {}
            for slot, shims, _ in self._applied:
                changes.setdefault(slot.patch.id, []).extend(shims.changes)
            errors = [*collected.errors, *(f"import hook: {problem}" for problem in degraded())]
            return Status.of(self.enabled, self.strict, patches, changes, collected.patches, errors)

    def plan(self, selection: Sequence[str] | None) -> list[PatchStatus]:
        """What each patch would do in this environment if hotfix were enabled now."""
        return plan(self.plugins.collected().patches, selection if selection is not None else _env.patch_selection())


def _finished(name: str, module: types.ModuleType) -> types.ModuleType | None:
    """*module*, once its import has finished: another thread may be executing it (enable() ran mid-import).

    Its loader was not hooked (the import began before the finder existed), so
    this is the one chance to patch it: wait for that import through
    importlib's own module lock. A module this thread is itself importing
    (enable() called from the module's own code) cannot be waited for; it is
    left unpatched and reported.
    """
    if not initializing(module):
        return module
    try:
        module = importlib.import_module(name)  # blocks until the importing thread is done
    except Exception:  # noqa: BLE001 - that import failed: nothing to patch
        return None
    if initializing(module):
        report_degraded(f"{name!r} was still being imported by the code that called enable(); not patched")
        return None
    return module


def _meta_path(finders: list[Any]) -> None:
    """Replace ``sys.meta_path`` by a new list, never changing it in place.

    importlib iterates the live list in other threads, and removing an entry
    under a running iteration makes it skip the next finder (a real module
    then raises ModuleNotFoundError).
    """
    sys.meta_path = finders


def _attempt(step: Any, *args: Any) -> tuple[Any, Exception | None, BaseException | None]:
    """Run a patch's probe or apply: ``(result, error, interrupt)``; nothing it raises escapes.

    A broken patch must not break the import. ``SystemExit`` from a patch is
    its failure like any other; ``KeyboardInterrupt`` is also returned, for
    the caller to raise again once the patch's changes are undone.
    """
    try:
        return step(*args), None, None
    except Exception as error:  # noqa: BLE001 - see the docstring
        return None, error, None
    except (SystemExit, KeyboardInterrupt) as raised:
        reported = RuntimeError(f"the patch raised {type(raised).__name__}({', '.join(map(repr, raised.args))})")
        return None, reported, raised


def _misconfiguration(collected: Collected, selection: list[str] | None, given: bool, strict: bool) -> list[Event]:
    """Settings that would silently change what hotfix does: raised in strict mode, else logged (with the
    packs that failed to load or declared invalid patches)."""
    problems = [(_env.LOG_LEVEL, p) for p in [_env.log_level_problem()] if p]
    setting = "hotfix.enable(patches=...)" if given else _env.PATCHES
    problems += [(setting, p) for p in unmatched(collected.patches, selection)]
    problems += [("installed patch packs", problem) for problem in collected.errors] if strict else []
    if problems and strict:
        raise ConfigurationError(problems[0][0], "; ".join(p for _, p in problems))
    events: list[Event] = [functools.partial(_log.emit, "warning", "plugin.error", error=e) for e in collected.errors]
    events += [functools.partial(_log.emit, "warning", "config.invalid", setting=s, detail=p) for s, p in problems]
    return events


def _declare_legacy(legacy: Sequence[str] | None, strict: bool) -> None:
    """Declare the legacy module globs of ``enable(legacy=...)`` (raises on a bad one) or ``HOTFIX_LEGACY``.

    A bad glob in the environment must not turn hotfix off for the process
    (the .pth activation reads it): it is logged and left out, except in
    strict mode, where it raises like a failing patch.
    """
    if legacy is not None:
        _scope.declare_legacy(legacy, "hotfix.enable(legacy=...)")
        return
    kept: list[str] = []
    for glob in _env.legacy_modules():
        try:
            kept.extend(_scope.declare_legacy([glob], _env.LEGACY))
        except ConfigurationError as error:
            if strict:
                _scope.declare_legacy(())
                raise
            _log.emit("error", "config.invalid", setting=_env.LEGACY, detail=error.problem)
    _scope.declare_legacy(kept, _env.LEGACY)


def _running_forkserver() -> list[Event]:
    """A warning when a multiprocessing forkserver runs already: it keeps the environment it started with, so
    the workers it forks get no activation from this ``enable()``."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None) is None:
        return []
    detail = (
        "a multiprocessing forkserver was started before hotfix.enable(): the workers it forks run without "
        "hotfix; call enable() before the first forkserver pool, or start the program with HOTFIX_ENABLE=1"
    )
    return [functools.partial(_log.emit, "warning", "enable.forkserver", detail=detail)]


RUNTIME = Runtime()
