"""The pluggy PluginManager: the bundled registry and third-party patch packs.

The bundled ``registry.toml`` is itself a plugin (``hotfix.bundled``), so that
it goes through the same path as every patch pack. Third-party packs register
through the entry-point group ``hotfix.patches``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import threading
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, final

import pluggy

from . import _boot, _framework, _hookspecs, _resources
from ._errors import HotfixError, RegistryError
from ._hookspecs import hookimpl
from ._patch import Patch
from ._registry import Break, check_patch, check_unique, load_toml

__all__ = ["ENTRY_POINT_GROUP", "PACKS", "Bundled", "Collected", "Plugins", "collect", "make_manager", "plugin_name"]

ENTRY_POINT_GROUP = "hotfix.patches"


class Bundled:
    """The patches in hotfix's own ``registry.toml``."""

    def __init__(self) -> None:
        self._loaded: tuple[list[Patch], list[Break]] | None = None

    def load(self) -> tuple[list[Patch], list[Break]]:
        if self._loaded is None:
            self._loaded = load_toml(_resources.registry_text(), _resources.registry_path())
        return self._loaded

    @hookimpl
    def hotfix_patches(self) -> Iterable[Patch]:
        return self.load()[0]


class Collected:
    """Everything the plugins contributed, and every problem met on the way."""

    def __init__(self) -> None:
        self.patches: list[Patch] = []
        self.breaks: list[Break] = []
        self.errors: list[str] = []


START_UP = _boot.START_UP
"""True while ``hotfix.pth`` activates hotfix (set by :mod:`hotfix._activate`, kept by a deferred enable())."""
PACKS: list[dict[str, str]] = []
"""Every installed pack met at the last discovery: name, entry point, distribution, location, what happened."""


def _location(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str]:
    """The distribution that declares *entry_point* (``name version``) and the folder it is installed in."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "", ""
    try:
        folder = str(Path(str(dist.locate_file(""))).resolve())
    except (OSError, TypeError, ValueError):
        folder = ""
    return f"{dist.metadata['Name']} {dist.version}", folder


def make_manager() -> tuple[pluggy.PluginManager, Bundled, list[str]]:
    """A PluginManager with the bundled registry, the framework's patches and every installed patch pack.

    Packs are found through the entry-point group on ``sys.path``, as Python
    finds modules. At start-up (``HOTFIX_ENABLE`` through ``hotfix.pth``) a
    pack installed in the working directory is not loaded: the directory a
    process happens to start in must not decide what code runs in it (it can
    be on ``sys.path`` through ``PYTHONPATH=.``). A pack whose entry point
    fails to load is reported, not raised: a broken plugin must never stop the
    host application. :data:`PACKS` records where each pack came from
    (``hotfix doctor`` lists them).
    """
    manager = pluggy.PluginManager(_hookspecs.PROJECT)
    manager.add_hookspecs(_hookspecs)
    bundled = Bundled()
    manager.register(bundled, name="hotfix.bundled")
    manager.register(_framework, name=_framework.PLUGIN)
    errors: list[str] = []
    PACKS.clear()
    working = str(Path.cwd().resolve())
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution, folder = _location(entry_point)
        pack = {"name": entry_point.name, "value": entry_point.value, "distribution": distribution, "location": folder}
        PACKS.append(pack)
        where = f"plugin {entry_point.name!r} ({entry_point.value}{f', from {folder}' if folder else ''})"
        if manager.has_plugin(entry_point.name):
            pack["state"] = "not loaded: another pack has that name"
            errors.append(f"{where}: not loaded: a pack named {entry_point.name!r} is loaded already")
            continue
        if START_UP[0] and folder == working:
            pack["state"] = "not loaded: installed in the working directory (start-up activation)"
            errors.append(f"{where}: not loaded at start-up from the working directory {working}")
            continue
        try:
            manager.register(entry_point.load(), name=entry_point.name)
            pack["state"] = "loaded"
        except Exception as error:  # noqa: BLE001 - reported in status and logs, see docstring
            pack["state"] = f"failed: {type(error).__name__}: {error}"
            errors.append(f"{where} could not be loaded: {type(error).__name__}: {error}")
    return manager, bundled, errors


def collect(manager: pluggy.PluginManager, bundled: Bundled) -> Collected:
    """Ask every plugin for its patches and validate them.

    An invalid declaration from a plugin is reported and left out; the rest of
    that plugin and every other plugin still load. An invalid bundled registry
    raises: it is hotfix's own bug and its tests keep it valid.
    """
    collected = Collected()
    collected.breaks = list(bundled.load()[1])
    seen: dict[str, Patch] = {}
    for implementation in manager.hook.hotfix_patches.get_hookimpls():
        plugin_name = manager.get_name(implementation.plugin) or repr(implementation.plugin)
        own = implementation.plugin is bundled or implementation.plugin is _framework
        source = "hotfix registry" if implementation.plugin is bundled else f"plugin {plugin_name!r}"
        try:
            function: Any = implementation.function
            contributed: list[Any] = list(function())
        except Exception as error:  # noqa: BLE001 - see docstring
            collected.errors.append(f"{source}: hotfix_patches() raised {type(error).__name__}: {error}")
            continue
        for position, obj in enumerate(contributed, start=1):
            try:
                patch = check_patch(obj, source, position)
                if not patch.source:
                    patch = dataclasses.replace(patch, source=source)
                if patch.id in seen:
                    check_unique([seen[patch.id], patch])
            except RegistryError as error:
                if own:
                    raise
                collected.errors.append(str(error))
                continue
            seen[patch.id] = patch
            collected.patches.append(patch)
    return collected


def plugin_name(plugin: object) -> str:
    """The name a plugin registered without one gets: its module, or its class's qualified name."""
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    kind = plugin if isinstance(plugin, type) else type(plugin)
    return f"{kind.__module__}.{kind.__qualname__}"


@final
class Plugins:
    """The plugin manager and what its plugins contribute, collected once and kept until :meth:`reload`.

    Registering, unregistering and reloading are refused while *enabled()*
    says hotfix is on: ``enable()`` acts on the patches collected before it.
    """

    __slots__ = ("_bundled", "_collected", "_enabled", "_errors", "_lock", "_manager")

    def __init__(self, lock: threading.RLock, enabled: Callable[[], bool]) -> None:
        self._lock = lock
        self._enabled = enabled
        self._manager: pluggy.PluginManager | None = None
        self._bundled: Bundled | None = None
        self._errors: list[str] = []
        self._collected: Collected | None = None

    def collected(self) -> Collected:
        """Every registered patch (bundled and plugins), collected once per process."""
        with self._lock:
            if self._collected is None:
                manager, bundled = self._load()
                collected = collect(manager, bundled)
                collected.errors[:0] = self._errors
                self._collected = collected
            return self._collected

    def _load(self) -> tuple[pluggy.PluginManager, Bundled]:
        if self._manager is None or self._bundled is None:
            self._manager, self._bundled, self._errors = make_manager()
        return self._manager, self._bundled

    def manager(self) -> pluggy.PluginManager:
        with self._lock:
            return self._load()[0]

    def _refuse_while_enabled(self, what: str) -> None:
        if self._enabled():
            raise HotfixError(f"call hotfix.disable() before {what}")

    def reload(self) -> None:
        """Forget the plugins and what they contributed (after installing a patch pack)."""
        with self._lock:
            self._refuse_while_enabled("reloading the registry")
            self._manager = self._bundled = self._collected = None
            self._errors = []

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a local plugin; without *name*, named by :func:`plugin_name`, numbered when taken."""
        with self._lock:
            self._refuse_while_enabled("registering a plugin; enable() collects patches")
            manager = self.manager()
            if name is None:
                name = base = plugin_name(plugin)
                number = 1
                while manager.has_plugin(name):
                    number += 1
                    name = f"{base}#{number}"
            manager.register(plugin, name=name)
            self._collected = None

    def unregister(self, plugin: object) -> None:
        with self._lock:
            self._refuse_while_enabled("unregistering a plugin")
            self.manager().unregister(plugin)
            self._collected = None


def index_text() -> str:
    """The text of ``hotfix/_index.py``: the top-level packages that hotfix's own patches watch.

    ``enable()`` installs a finder for these names only and loads the
    registry, pluggy and the installed packs at the first import of one of
    them (:mod:`hotfix._boot`). ``scripts/gen_index.py`` writes the file, the
    wheel build regenerates it, and a test fails when the committed copy is stale.
    """
    patches = [*Bundled().load()[0], *_framework.hotfix_patches()]
    names = {name for patch in patches for name in (*patch.modules, *patch.prefixes, *patch.provides)}
    top = sorted({name.partition(".")[0] for name in names})
    lines = [
        '"""The top-level packages that hotfix\'s own patches watch (generated by scripts/gen_index.py; do not edit).',
        "",
        "Read by :mod:`hotfix._boot`: ``enable()`` waits for the first import of one of them before it loads the",
        "registry. The wheel build regenerates it (hatch_build.py); a test fails when this copy is stale.",
        '"""',
        "",
        "TOP_LEVEL = frozenset({" + ", ".join(f'"{name}"' for name in top) + "})",
        f"WATCHED = {len(names)}",
        "",
    ]
    return "\n".join(lines)
