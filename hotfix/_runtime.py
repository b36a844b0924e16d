"""The runtime: enable, apply, revert, status.

One :class:`Runtime` per process (``RUNTIME``). Its lock serialises every
change to hotfix's state and every patch application. Events (structlog and
the pluggy observer hooks) are emitted after the lock is released: an
observer may import, log or call ``hotfix.status()``, and must not be able to
deadlock the import that triggered the patch.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, final

from . import _env, _explain, _log, _scope, _usage
from ._errors import ConfigurationError, HotfixError, PatchFailedError
from ._importer import Finder
from ._patch import Patch
from ._plugins import Collected, collect, make_manager
from ._registry import Break
from ._shims import Shims
from ._subclass import SubclassHooks
from ._versions import clear_cache, gate, installed_version

__all__ = ["RUNTIME", "PatchStatus", "Runtime", "Status", "select"]

State = Literal["pending", "applied", "skipped", "failed", "reverted"]
DYNAMIC_LOADER = "transformers.dynamic_module_utils"
# transformers.processing_utils calls transformers.utils.direct_transformers_import,
# which executes transformers/__init__.py again and puts a new module object
# in sys.modules["transformers"]: patches on the old object would be lost.
REEXECUTOR = "transformers.utils"
REEXECUTED = "transformers"


@final
@dataclass(slots=True)
class PatchStatus:
    """The state of one patch in this process."""

    id: str
    summary: str
    distribution: str
    affected: str
    version: str | None
    state: State
    reason: str
    error: str | None = None
    modules: list[str] = field(default_factory=list)
    seconds: float = 0.0
    unsafe: bool = False
    default: bool = True
    source: str = ""
    used: bool = False
    """Whether code in this process used the patch's shims (see :mod:`hotfix._usage`)."""
    used_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@final
@dataclass(slots=True)
class Status:
    """What :func:`hotfix.status` returns: every known patch and the versions seen."""

    enabled: bool
    strict: bool
    patches: list[PatchStatus]
    versions: dict[str, str | None]
    errors: list[str]

    def __getitem__(self, patch_id: str) -> PatchStatus:
        for patch in self.patches:
            if patch.id == patch_id:
                return patch
        raise KeyError(patch_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "strict": self.strict,
            "versions": dict(self.versions),
            "errors": list(self.errors),
            "patches": [p.as_dict() for p in self.patches],
        }

    def __str__(self) -> str:
        lines = [f"hotfix {'enabled' if self.enabled else 'disabled'}" + (" (strict)" if self.strict else "")]
        lines += [f"  {name} {version or 'not installed'}" for name, version in sorted(self.versions.items())]
        for p in self.patches:
            where = f" on {', '.join(p.modules)}" if p.modules else ""
            used = f", used: {p.used_by}" if p.used else ""
            lines.append(f"  [{p.state}] {p.id}{where}: {p.error or p.reason}{used}")
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)


def _is_glob(item: str) -> bool:
    return any(c in item for c in "*?[")


def select(patches: Iterable[Patch], selection: Sequence[str] | None) -> dict[str, str | None]:
    """Which patches the selection turns on: ``{id: None}`` for selected, ``{id: reason}`` for not.

    No selection means every patch that is on by default. Items are ids or
    globs to allow and ``-id``/``-glob`` to deny. A glob only matches patches
    that are on by default; a patch that is off by default (every unsafe one
    is) must be named by its exact id.
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
        elif allow:
            result[patch.id] = None if matches(allow) else "not in the selection"
        elif not patch.default:
            result[patch.id] = "off by default (unsafe: name it explicitly)" if patch.unsafe else "off by default"
        else:
            result[patch.id] = None
    return result


@final
class _Slot:
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


_Event = tuple[str, Callable[[], None]]


@final
class Runtime:
    """hotfix's state in this process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.enabled = False
        self.strict = False
        self.generation = 0
        self.finder: Finder | None = None
        self.slots: dict[str, _Slot] = {}
        self._by_module: dict[str, list[_Slot]] = {}
        self._by_prefix: list[tuple[str, _Slot]] = []
        self._by_missing: dict[str, list[_Slot]] = {}
        self._applied: list[tuple[_Slot, Shims]] = []
        self._internal = Shims("hotfix")
        self._subclasses = SubclassHooks(self._subclass_failed)
        self._manager: Any = None
        self._bundled: Any = None
        self._plugin_errors: list[str] = []
        self._collected: Collected | None = None
        self._environ: dict[str, str | None] = {}
        self._local = threading.local()

    # -- the registry ---------------------------------------------------------

    def collected(self) -> Collected:
        """Every registered patch (bundled and plugins), collected once per process."""
        with self.lock:
            if self._collected is None:
                if self._manager is None:
                    self._manager, self._bundled, self._plugin_errors = make_manager()
                collected = collect(self._manager, self._bundled)
                collected.errors[:0] = self._plugin_errors
                self._collected = collected
            return self._collected

    def manager(self) -> Any:
        self.collected()
        return self._manager

    def breaks(self) -> list[Break]:
        return self.collected().breaks

    def reload(self) -> None:
        """Forget the collected registry, the plugins and the patch states (after installing a patch pack)."""
        with self.lock:
            if self.enabled:
                raise HotfixError("call hotfix.disable() before reloading the registry")
            self._manager = self._bundled = self._collected = None
            self._plugin_errors = []
            self.slots = {}
            clear_cache()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (a local patch pack or an observer) with hotfix's PluginManager.

        Without *name*, the plugin is named after its module and class (or
        module name), numbered when that name is taken, never by its id().
        """
        with self.lock:
            if self.enabled:
                raise HotfixError("call hotfix.disable() before registering a plugin; enable() collects patches")
            manager = self.manager()
            if name is None:
                name = _plugin_name(plugin)
                base, number = name, 1
                while manager.has_plugin(name):
                    number += 1
                    name = f"{base}#{number}"
            manager.register(plugin, name=name)
            self._collected = None
            self.slots = {}

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered with :meth:`register`."""
        with self.lock:
            if self.enabled:
                raise HotfixError("call hotfix.disable() before unregistering a plugin")
            self.manager().unregister(plugin)
            self._collected = None
            self.slots = {}

    # -- enable / disable ------------------------------------------------------

    def enable(
        self,
        patches: Sequence[str] | None = None,
        strict: bool | None = None,
        propagate: bool = True,
        legacy: Sequence[str] | None = None,
    ) -> None:
        events: list[_Event] = []
        with self.lock:
            if self.enabled:
                return
            _log.configure()
            self.strict = _env.strict() if strict is None else strict
            self._declare_legacy(legacy)
            selection = list(patches) if patches is not None else _env.patch_selection()
            collected = self.collected()
            for problem in collected.errors:  # a pack that failed to load or declared invalid patches
                events.append(("error", functools.partial(_log.emit, "warning", "plugin.error", error=problem)))
            chosen = select(collected.patches, selection)
            self.slots = {}
            self._by_module, self._by_prefix, self._by_missing = {}, [], {}
            for patch in collected.patches:
                slot = self.slots[patch.id] = _Slot(patch)
                slot.version = installed_version(patch.distribution)
                deselected = chosen[patch.id]
                inside, why = gate(patch.affected, slot.version)
                if deselected is not None:
                    slot.state, slot.reason = "skipped", deselected
                elif not inside and slot.version is not None:
                    slot.state, slot.reason = "skipped", f"{patch.distribution} {why}"
                else:
                    waiting = f"waiting for {' or '.join(patch.triggers)}"
                    if slot.version is None:
                        waiting += f" ({patch.distribution} not installed yet: gated when imported)"
                    slot.active, slot.reason = True, waiting
                    for name in patch.modules:
                        self._by_module.setdefault(name, []).append(slot)
                    for prefix in patch.prefixes:
                        self._by_prefix.append((prefix, slot))
                    for name in patch.provides:
                        self._by_missing.setdefault(name, []).append(slot)
                    continue
                events.append(self._event_skipped(slot))
            # Remote code is loaded by transformers.dynamic_module_utils: followed for prefix-triggered patches
            # and for the notes on errors it raises (hotfix._explain).
            exact = [*self._by_module, DYNAMIC_LOADER]
            if REEXECUTED in self._by_module:
                exact.append(REEXECUTOR)
            self.finder = Finder(self._module_loaded, self._module_missing)
            self.finder.watch(exact, [prefix for prefix, _ in self._by_prefix], list(self._by_missing))
            # A new list, never an in-place change: importlib iterates the live
            # list in other threads, and removing an entry under a running
            # iteration makes it skip the next finder (a real module then
            # raises ModuleNotFoundError).
            sys.meta_path = [self.finder, *sys.meta_path]
            self.enabled = True
            self.generation += 1
            _explain.install_hooks()
            if propagate:
                self._propagate(selection, self.strict, _scope.declared_legacy())
            finder = self.finder
        self._emit(events)
        # Targets imported before enable(): apply now, outside the lock (each
        # application takes it), in import order so that parents come first.
        for name, module in list(sys.modules.items()):
            if isinstance(module, types.ModuleType) and finder.watches(name):
                self._module_loaded(module)

    def disable(self) -> None:
        events: list[_Event] = []
        with self.lock:
            if not self.enabled:
                return
            self.enabled = False
            self.generation += 1
            if self.finder in sys.meta_path:
                sys.meta_path = [finder for finder in sys.meta_path if finder is not self.finder]  # see enable()
            reverted: dict[str, _Slot] = {}
            while self._applied:
                slot, shims = self._applied.pop()
                for warning in shims.revert():
                    _log.emit("warning", "patch.revert_incomplete", patch=slot.patch.id, detail=warning)
                reverted[slot.patch.id] = slot
            for slot in reverted.values():
                slot.state, slot.reason = "reverted", "hotfix.disable() removed its shims"
                events.append(self._event_reverted(slot))
            for slot in self.slots.values():
                slot.active = False
            self._internal.revert()
            _explain.remove_hooks()
            _usage.clear()
            self._restore_environ()
            _scope.declare_legacy(())
        self._emit(events)

    def _declare_legacy(self, legacy: Sequence[str] | None) -> None:
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
                if self.strict:
                    _scope.declare_legacy(())
                    raise
                _log.emit("error", "config.invalid", setting=_env.LEGACY, detail=error.problem)
        _scope.declare_legacy(kept, _env.LEGACY)

    def _propagate(self, selection: Sequence[str] | None, strict: bool, legacy: Sequence[str]) -> None:
        """Set the environment so that worker processes (spawn, torchrun) activate too."""
        wanted = {_env.ENABLE: "1", _env.PATCHES: ",".join(selection) if selection else None}
        wanted[_env.STRICT] = "1" if strict else None
        wanted[_env.LEGACY] = ",".join(legacy) if legacy else None
        self._environ = {name: os.environ.get(name) for name in wanted}
        for name, value in wanted.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _restore_environ(self) -> None:
        for name, value in self._environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._environ = {}

    # -- applying ---------------------------------------------------------------

    def _module_loaded(self, module: types.ModuleType) -> None:
        name = getattr(module, "__name__", "")
        if name == DYNAMIC_LOADER:
            self._follow_dynamic_modules(module)
        if name == REEXECUTOR and REEXECUTED in self._by_module:
            self._follow_reexecution(module)
        slots = list(self._by_module.get(name, ()))
        slots += [slot for prefix, slot in self._by_prefix if name.startswith(prefix)]
        for slot in slots:
            self._apply(slot, module)

    def _module_missing(self, name: str) -> None:
        parent = sys.modules.get(name.rpartition(".")[0]) or types.ModuleType(name)
        for slot in self._by_missing.get(name, ()):
            self._apply(slot, parent, trigger=name)

    def _apply(self, slot: _Slot, module: types.ModuleType, trigger: str | None = None) -> None:
        name = trigger or module.__name__
        patch = slot.patch
        with self.lock:
            if not self.enabled or not slot.active or slot.done.get(name) is module:
                return
            slot.done[name] = module
            generation = self.generation
            skipped: _Event | None = None
            if slot.version is None:
                # Not installed when hotfix was enabled; it is being imported now.
                slot.version = installed_version(patch.distribution)
                inside, why = gate(patch.affected, slot.version)
                if not inside:
                    slot.active = False
                    slot.state, slot.reason = "skipped", f"{patch.distribution} {why}"
                    skipped = self._event_skipped(slot, name)
        if skipped is not None:
            self._emit([skipped])
            return
        # The probe runs outside the lock because it may import (a new home
        # of a moved name, torch for a value check). Holding hotfix's lock
        # while waiting for a module lock that another thread holds, while
        # that thread waits for hotfix's lock in its own import hook, would
        # deadlock: Python only detects cycles among its own module locks.
        started = time.perf_counter()
        events: list[_Event] = []
        failure: PatchFailedError | None = None
        shims = Shims(patch.id, self.finder, self._subclasses)
        error: Exception | None = None
        present, detail = False, ""
        try:
            present, detail = patch.probe(module)
        except Exception as raised:  # noqa: BLE001 - a broken patch must not break the import
            error = raised
        with self.lock:
            if self.generation != generation:
                return  # disabled (and maybe re-enabled) meanwhile: this application is stale
            if error is None and present:
                try:
                    patch.apply(module, shims)
                except Exception as raised:  # noqa: BLE001 - see above
                    error = raised
            elapsed = time.perf_counter() - started
            slot.seconds += elapsed
            if error is not None:
                for warning in shims.revert():
                    _log.emit("warning", "patch.revert_incomplete", patch=patch.id, detail=warning)
                slot.state, slot.error = "failed", f"{type(error).__name__}: {error}"
                slot.reason = f"raised while applied on {name}; its changes were undone"
                events.append(self._event_failed(slot, name, error))
                if self.strict:
                    failure = PatchFailedError(patch.id, name, error)
            elif present:
                self._applied.append((slot, shims))
                slot.state, slot.reason = "applied", detail
                if name not in slot.modules:
                    slot.modules.append(name)
                events.append(self._event_applied(slot, module, name, elapsed))
            elif slot.state == "pending":
                slot.state, slot.reason = "skipped", f"probe: {detail}"
                events.append(self._event_skipped(slot, name))
        self._emit(events)
        if failure is not None:
            raise failure

    def _follow_dynamic_modules(self, module: types.ModuleType) -> None:
        """Apply prefix-triggered patches to remote code loaded by ``get_class_in_module``."""
        if "get_class_in_module" not in vars(module):
            return

        def follow(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                result = wrapped(*args, **kwargs)
            except (ImportError, AttributeError, TypeError) as error:
                _explain.annotate(error)  # remote code that fails on import says which patch covers it
                raise
            loaded = sys.modules.get(getattr(result, "__module__", ""))
            if loaded is not None and self.enabled and self.finder is not None and self.finder.watches(loaded.__name__):
                self._module_loaded(loaded)
            return result

        with self.lock:
            if "get_class_in_module" in {c.attribute for c in self._internal.changes}:
                return
            self._internal.wrap(module, "get_class_in_module", follow)

    def _follow_reexecution(self, module: types.ModuleType) -> None:
        """Patch the new ``transformers`` module object that ``direct_transformers_import`` leaves in sys.modules."""

        def follow(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            result = wrapped(*args, **kwargs)
            current = sys.modules.get(REEXECUTED)
            if current is not None and self.enabled:
                self._module_loaded(current)
            return result

        owners = [module, sys.modules.get(module.__name__ + ".import_utils")]
        with self.lock:
            wrapped = {(id(c.owner), c.attribute) for c in self._internal.changes}
            for owner in owners:
                if (
                    owner is not None
                    and "direct_transformers_import" in vars(owner)
                    and (id(owner), "direct_transformers_import") not in wrapped
                ):
                    self._internal.wrap(owner, "direct_transformers_import", follow)

    def _subclass_failed(self, shims: Shims, cls: type, error: BaseException) -> None:
        slot = self.slots.get(shims.patch_id)
        target = f"{cls.__module__}.{cls.__qualname__}"
        _log.emit("warning", "patch.failed", patch=shims.patch_id, module=cls.__module__, target=target,
            error=f"{type(error).__name__}: {error}",
        )  # fmt: skip
        _log_traceback(shims.patch_id, error)
        if slot is not None:
            with self.lock:
                slot.error = f"on class {target}: {type(error).__name__}: {error}"
        if self.strict:
            raise PatchFailedError(shims.patch_id, target, error)

    # -- events ------------------------------------------------------------------

    def _emit(self, events: list[_Event]) -> None:
        for _, emit in events:
            try:
                emit()
            except Exception as error:  # noqa: BLE001 - an observer must not break the host's import
                _log.emit("warning", "hook.failed", error=f"{type(error).__name__}: {error}")

    def _hook(self) -> Any:
        return self.manager().hook

    def _event_applied(self, slot: _Slot, module: types.ModuleType, name: str, seconds: float) -> _Event:
        p = slot.patch

        def emit() -> None:
            _log.emit("info", "patch.applied", patch=p.id, distribution=p.distribution, version=slot.version,
                module=name, seconds=round(seconds, 6), detail=slot.reason,
            )  # fmt: skip
            self._hook().hotfix_patch_applied(patch=p, module=module, seconds=seconds)

        return "applied", emit

    def _event_skipped(self, slot: _Slot, name: str | None = None) -> _Event:
        p = slot.patch

        def emit() -> None:
            _log.emit("debug", "patch.skipped", patch=p.id, distribution=p.distribution, version=slot.version,
                module=name, seconds=round(slot.seconds, 6), reason=slot.reason,
            )  # fmt: skip
            self._hook().hotfix_patch_skipped(patch=p, reason=slot.reason)

        return "skipped", emit

    def _event_failed(self, slot: _Slot, name: str, error: BaseException) -> _Event:
        p = slot.patch

        def emit() -> None:
            _log.emit("warning", "patch.failed", patch=p.id, distribution=p.distribution, version=slot.version,
                module=name, seconds=round(slot.seconds, 6), error=slot.error,
            )  # fmt: skip
            _log_traceback(p.id, error)
            self._hook().hotfix_patch_failed(patch=p, error=error)

        return "failed", emit

    def _event_reverted(self, slot: _Slot) -> _Event:
        p = slot.patch

        def emit() -> None:
            _log.emit("info", "patch.reverted", patch=p.id, distribution=p.distribution, version=slot.version,
                module=",".join(slot.modules), seconds=0.0,
            )  # fmt: skip
            self._hook().hotfix_patch_reverted(patch=p)

        return "reverted", emit

    # -- status -------------------------------------------------------------------

    def status(self) -> Status:
        collected = self.collected()
        with self.lock:
            patches = [slot.status() for slot in self.slots.values()] if self.slots else self.plan(None)
            changes: dict[str, list[Any]] = {}
            for slot, shims in self._applied:
                changes.setdefault(slot.patch.id, []).extend(shims.changes)
            for patch in patches:
                used_by = _usage.USED.get(patch.id)
                if used_by is None and patch.id in changes:
                    used_by = _usage.scan_values(patch.id, changes[patch.id])
                patch.used, patch.used_by = used_by is not None, used_by or ""
            versions = {p.distribution: installed_version(p.distribution) for p in collected.patches}
            return Status(self.enabled, self.strict, patches, versions, list(collected.errors))

    def plan(self, selection: Sequence[str] | None) -> list[PatchStatus]:
        """What each patch would do in this environment if hotfix were enabled now."""
        collected = self.collected()
        chosen = select(collected.patches, selection if selection is not None else _env.patch_selection())
        plans = []
        for patch in collected.patches:
            slot = _Slot(patch)
            slot.version = installed_version(patch.distribution)
            inside, why = gate(patch.affected, slot.version)
            if chosen[patch.id] is not None:
                slot.state, slot.reason = "skipped", str(chosen[patch.id])
            elif not inside:
                slot.state, slot.reason = "skipped", f"{patch.distribution} {why}"
            else:
                slot.reason = f"{patch.distribution} {why}: will probe when {' or '.join(patch.triggers)} is imported"
            plans.append(slot.status())
        return plans


def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    kind = plugin if isinstance(plugin, type) else type(plugin)
    return f"{kind.__module__}.{kind.__qualname__}"


def _log_traceback(patch_id: str, error: BaseException) -> None:
    if _log.enabled("debug"):
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        _log.emit("debug", "patch.failed.traceback", patch=patch_id, traceback=text)


RUNTIME = Runtime()
