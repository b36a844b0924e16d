"""The import hook: one ``sys.meta_path`` finder for every watched module.

For a module nobody watches, :meth:`Finder.find_spec` answers ``None`` after
one set lookup (and one more for the first component of the name when
prefixes are watched), so the ~2,400 lookups of ``import transformers`` cost
next to nothing. For a watched module it asks the finders after itself for
the real spec and wraps the loader so that the patches run right after the
module's code has executed. For a module that upstream removed, it asks the
runtime whether a patch provides it, only after every other finder failed.

Remote code loaded by ``transformers.dynamic_module_utils.get_class_in_module``
is executed with ``spec.loader.exec_module`` and never reaches
``sys.meta_path``; the runtime follows those modules by wrapping that
function (see ``_runtime``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any, final

__all__ = ["Finder", "degraded", "report_degraded"]

_LOADER_CLASS: list[type] = []


def _post_import_loader(
    loader: Any, on_loaded: Callable[[types.ModuleType], None], on_reloading: Callable[[types.ModuleType], None]
) -> Any:
    """The real loader, with the patches run after ``exec_module``.

    A wrapt proxy so that everything else the import system or a tool asks of
    the loader (``get_source``, ``is_package``, ``isinstance`` checks) still
    reaches the real one. The class is made on first use so that importing
    hotfix does not import wrapt.
    """
    if not _LOADER_CLASS:
        import wrapt

        class _PostImportLoader(wrapt.BaseObjectProxy):  # type: ignore[type-arg]
            def __init__(
                self,
                loader: Any,
                on_loaded: Callable[[types.ModuleType], None],
                on_reloading: Callable[[types.ModuleType], None],
            ) -> None:
                super().__init__(loader)
                self._self_on_loaded = on_loaded
                self._self_on_reloading = on_reloading

            def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
                result: types.ModuleType | None = self.__wrapped__.create_module(spec)
                return result

            def exec_module(self, module: types.ModuleType) -> None:
                # importlib.reload executes a module object again: what was applied to it is undone first.
                _after_import(self._self_on_reloading, module)
                try:
                    self.__wrapped__.exec_module(module)
                except (ImportError, AttributeError, TypeError) as error:
                    _annotate(error)  # legacy code that fails on import says which patch covers it
                    raise
                # A module may replace itself in sys.modules while it executes
                # (transformers' _LazyModule does); the import system hands out
                # that object, so that is the one to patch.
                _after_import(self._self_on_loaded, sys.modules.get(module.__name__, module))

        _LOADER_CLASS.append(_PostImportLoader)
    return _LOADER_CLASS[0](loader, on_loaded, on_reloading)


def _annotate(error: BaseException) -> None:
    try:
        from ._explain import annotate

        annotate(error)
    except Exception:  # noqa: BLE001 - the note is a courtesy; the import's own error is what matters
        pass


def _after_import(on_loaded: Callable[[types.ModuleType], None], module: types.ModuleType) -> None:
    """Run the patches on *module*; only strict mode's :class:`PatchFailedError` reaches the import."""
    from ._errors import PatchFailedError

    try:
        on_loaded(module)
    except PatchFailedError:
        raise
    except Exception as error:  # noqa: BLE001 - hotfix's own failure must not fail the host's import
        report_degraded(f"patching {getattr(module, '__name__', module)!r} failed: {type(error).__name__}: {error}")


_DEGRADED: list[str] = []


def degraded() -> list[str]:
    """What hotfix could not do on imports in this process (shown in ``hotfix.status().errors``)."""
    return list(_DEGRADED)


def report_degraded(problem: str) -> None:
    """Report, once per problem, that hotfix could not act on an import; the import goes on without it."""
    if problem in _DEGRADED:
        return
    _DEGRADED.append(problem)
    try:
        from . import _log

        _log.emit("error", "import.degraded", detail=problem)
    except Exception:  # noqa: BLE001 - see _after_import
        pass


@final
class _ProvidedLoader(importlib.abc.Loader):
    """Loads a module that upstream removed and a patch provides."""

    def __init__(self, factory: Callable[[], types.ModuleType]) -> None:
        self.factory = factory

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        try:
            module = self.factory()
        except Exception as error:
            report_degraded(f"providing {spec.name!r} failed: {type(error).__name__}: {error}")
            raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name) from error
        module.__hotfix_provided__ = self.factory  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


@final
class Finder(importlib.abc.MetaPathFinder):
    """hotfix's meta path finder.

    ``watch`` and ``provide`` change what it answers for; the sets are
    replaced, never mutated, so that ``find_spec`` needs no lock.
    """

    def __init__(
        self,
        on_loaded: Callable[[types.ModuleType], None],
        on_missing: Callable[[str], None],
        on_reloading: Callable[[types.ModuleType], None] = lambda module: None,
    ) -> None:
        self._on_loaded = on_loaded
        self._on_missing = on_missing
        self._on_reloading = on_reloading
        self._exact: frozenset[str] = frozenset()
        self._prefixes: dict[str, tuple[str, ...]] = {}
        self._missing: frozenset[str] = frozenset()
        self._provided: dict[str, Callable[[], types.ModuleType]] = {}
        self._resolving = threading.local()
        self.calls = 0
        self.watched_calls = 0

    # -- configuration ------------------------------------------------------

    def watch(self, exact: Sequence[str], prefixes: Sequence[str], missing: Sequence[str]) -> None:
        self._exact = frozenset(exact) | frozenset(missing)
        grouped: dict[str, list[str]] = {}
        for prefix in prefixes:
            grouped.setdefault(prefix.partition(".")[0], []).append(prefix)
        self._prefixes = {top: tuple(group) for top, group in grouped.items()}
        self._missing = frozenset(missing)

    def watches(self, name: str) -> bool:
        if name in self._exact:
            return True
        group = self._prefixes.get(name.partition(".")[0])
        return group is not None and name.startswith(group)

    def provide(self, name: str, factory: Callable[[], types.ModuleType]) -> None:
        self._provided = {**self._provided, name: factory}

    def withdraw(self, name: str, factory: Callable[[], types.ModuleType]) -> None:
        if self._provided.get(name) is factory:
            self._provided = {k: v for k, v in self._provided.items() if k != name}

    # -- the finder protocol ---------------------------------------------------

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        self.calls += 1
        if fullname not in self._exact:
            group = self._prefixes.get(fullname.partition(".")[0])
            if group is None or not fullname.startswith(group):
                return None
        return self._find_watched(fullname, path, target)

    def _find_watched(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        self.watched_calls += 1
        resolving: set[str] = self._resolving.__dict__.setdefault("names", set())
        if fullname in resolving:
            return None  # another finder asked importlib again while we were asking it
        resolving.add(fullname)
        try:
            spec = self._find_real(fullname, path, target)
        finally:
            resolving.discard(fullname)
        if spec is None:
            if fullname in self._missing:
                self._on_missing(fullname)
                factory = self._provided.get(fullname)
                if factory is not None:
                    return importlib.util.spec_from_loader(fullname, _ProvidedLoader(factory))
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            try:
                spec.loader = _post_import_loader(spec.loader, self._on_loaded, self._on_reloading)
            except Exception as error:  # noqa: BLE001 - a broken wrapt: the module is imported unpatched
                report_degraded(f"cannot hook the import of {fullname!r}: {type(error).__name__}: {error}")
        return spec

    def _find_real(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def invalidate_caches(self) -> None:
        return None
