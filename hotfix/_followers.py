"""The framework's own hooks into transformers: where modules appear without passing ``sys.meta_path``.

* ``transformers.dynamic_module_utils.get_class_in_module`` loads remote code
  with ``spec.loader.exec_module`` and a name under ``transformers_modules``:
  hotfix's finder never sees it, so the returned class's module is handed to
  the runtime (prefix-triggered patches apply to it), and an error it raises
  gets hotfix's note (:mod:`hotfix._explain`).
* ``transformers.processing_utils`` calls
  ``transformers.utils.direct_transformers_import``, which executes
  ``transformers/__init__.py`` again and puts a new module object in
  ``sys.modules["transformers"]``: patches on the old object would be lost, so
  the new one is handed to the runtime too.

Both are wrapped through the runtime's own change set and reverted with it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any, final

from . import _explain
from ._shims import Shims

__all__ = ["DYNAMIC_LOADER", "FOLLOWED", "REEXECUTED", "REEXECUTOR", "Followers"]

DYNAMIC_LOADER = "transformers.dynamic_module_utils"
REEXECUTOR = "transformers.utils"
REEXECUTED = "transformers"
FOLLOWED = frozenset({DYNAMIC_LOADER, REEXECUTOR})
"""The modules whose import the followers act on."""


@final
class Followers:
    """Wraps the loaders above once per module object, on the change set it is given."""

    __slots__ = ("_changes", "_loaded", "_on")

    def __init__(self, changes: Shims, loaded: Callable[[types.ModuleType], None], on: Callable[[str], bool]) -> None:
        self._changes = changes
        self._loaded = loaded  # hands a module to the runtime (it applies what watches it)
        self._on = on  # whether hotfix is enabled and watches the module

    @staticmethod
    def watched(exact: list[str]) -> list[str]:
        """The modules to watch beside the patches' own: the loader always, the re-executor when needed."""
        return [DYNAMIC_LOADER, *([REEXECUTOR] if REEXECUTED in exact else [])]

    def module_loaded(self, module: types.ModuleType, exact: dict[str, Any]) -> None:
        name = getattr(module, "__name__", "")
        if name == DYNAMIC_LOADER:
            self._follow_dynamic_modules(module)
        if name == REEXECUTOR and REEXECUTED in exact:
            self._follow_reexecution(module)

    def _wrapped(self) -> set[tuple[int, str]]:
        return {(id(change.owner), change.attribute) for change in self._changes.changes}

    def _follow_dynamic_modules(self, module: types.ModuleType) -> None:
        """Apply prefix-triggered patches to remote code loaded by ``get_class_in_module``."""
        if "get_class_in_module" not in vars(module) or (id(module), "get_class_in_module") in self._wrapped():
            return

        def follow(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                result = wrapped(*args, **kwargs)
            except (ImportError, AttributeError, TypeError) as error:
                _explain.annotate(error)  # remote code that fails on import says which patch covers it
                raise
            loaded = sys.modules.get(getattr(result, "__module__", ""))
            if loaded is not None and self._on(loaded.__name__):
                self._loaded(loaded)
            return result

        self._changes.wrap(module, "get_class_in_module", follow)

    def _follow_reexecution(self, module: types.ModuleType) -> None:
        """Patch the new ``transformers`` module object that ``direct_transformers_import`` leaves in sys.modules."""

        def follow(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            result = wrapped(*args, **kwargs)
            current = sys.modules.get(REEXECUTED)
            if current is not None and self._on(REEXECUTED):
                self._loaded(current)
            return result

        wrapped = self._wrapped()
        for owner in (module, sys.modules.get(module.__name__ + ".import_utils")):
            if (
                owner is not None
                and "direct_transformers_import" in vars(owner)
                and (id(owner), "direct_transformers_import") not in wrapped
            ):
                self._changes.wrap(owner, "direct_transformers_import", follow)
