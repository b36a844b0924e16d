"""The framework's own patches: where transformers loads modules without passing ``sys.meta_path``.

* ``hotfix.remote-code``: ``transformers.dynamic_module_utils.get_class_in_module``
  loads remote code with ``spec.loader.exec_module`` and a name under
  ``transformers_modules``, so hotfix's finder never sees it. The patch hands
  the returned class's module to the runtime (prefix-triggered patches apply
  to it), and an error it raises gets hotfix's note (:mod:`hotfix._explain`).
* ``hotfix.reexecuted-transformers``: ``transformers.processing_utils`` calls
  ``transformers.utils.direct_transformers_import``, which executes
  ``transformers/__init__.py`` again and puts a new module object in
  ``sys.modules["transformers"]``; patches on the old object would be lost, so
  the new one is handed to the runtime too.

They are ordinary patches of the plugin ``hotfix.framework``: watched, probed,
applied, reported and reverted like every other. A selection's allow-list does
not turn them off (the repairs it selects need them); a deny item does
(``HOTFIX_PATCHES=-hotfix.remote-code``).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable
from typing import Any

from packaging.specifiers import SpecifierSet

from . import _explain
from ._hookspecs import hookimpl
from ._patch import Finding, Patch
from ._shims import Shims

__all__ = ["DYNAMIC_LOADER", "PATCHES", "PLUGIN", "REEXECUTED", "REEXECUTOR", "hotfix_patches"]

PLUGIN = "hotfix.framework"
SOURCE = "hotfix framework"
DYNAMIC_LOADER = "transformers.dynamic_module_utils"
REEXECUTOR = "transformers.utils"
REEXECUTED = "transformers"


def _hand_over(module: types.ModuleType) -> None:
    """Give a module that appeared behind the finder's back to the runtime (it applies what watches it)."""
    from ._runtime import RUNTIME  # the runtime imports this module's plugin: imported late

    RUNTIME.module_appeared(module)


def _probe_remote_code(module: types.ModuleType) -> Finding:
    if "get_class_in_module" not in vars(module):
        return False, "no get_class_in_module here"
    return True, "remote code loaded by get_class_in_module is handed to hotfix"


def _apply_remote_code(module: types.ModuleType, shims: Shims) -> None:
    def follow(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            result = wrapped(*args, **kwargs)
        except (ImportError, AttributeError, TypeError) as error:
            _explain.annotate(error)  # remote code that fails on import says which patch covers it
            raise
        loaded = sys.modules.get(getattr(result, "__module__", ""))
        if loaded is not None:
            _hand_over(loaded)
        return result

    shims.wrap(module, "get_class_in_module", follow)


def _owners(module: types.ModuleType) -> list[types.ModuleType]:
    """``direct_transformers_import`` where it is defined and where ``transformers.utils`` re-exports it."""
    candidates = (module, sys.modules.get(module.__name__ + ".import_utils"))
    return [owner for owner in candidates if owner is not None and "direct_transformers_import" in vars(owner)]


def _probe_reexecution(module: types.ModuleType) -> Finding:
    from ._runtime import RUNTIME

    if not _owners(module):
        return False, "no direct_transformers_import here"
    if not RUNTIME.watching(REEXECUTED):
        return False, "no selected patch acts on the transformers module itself"
    return True, "the transformers module that direct_transformers_import leaves in sys.modules is handed to hotfix"


def _apply_reexecution(module: types.ModuleType, shims: Shims) -> None:
    def follow(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = wrapped(*args, **kwargs)
        current = sys.modules.get(REEXECUTED)
        if current is not None:
            _hand_over(current)
        return result

    for owner in _owners(module):
        shims.wrap(owner, "direct_transformers_import", follow)


PATCHES = (
    Patch(
        id="hotfix.remote-code",
        summary="remote code that transformers loads outside the import system gets the patches that watch it",
        distribution="transformers", affected=SpecifierSet(), probe=_probe_remote_code, apply=_apply_remote_code,
        modules=(DYNAMIC_LOADER,), shape="framework", source=SOURCE,
        reproducer="scenario:follow", fails_with="!a prefix-triggered patch never sees the remote module",
        limits="classes returned by get_class_in_module; remote code imported any other way passes the finder",
    ),
    Patch(
        id="hotfix.reexecuted-transformers",
        summary="the transformers module that direct_transformers_import re-executes gets the patches on transformers",
        distribution="transformers", affected=SpecifierSet(), probe=_probe_reexecution, apply=_apply_reexecution,
        modules=(REEXECUTOR,), shape="framework", source=SOURCE,
        reproducer="scenario:reexecuted",
        fails_with="ImportError: cannot import name 'AdamW' from 'transformers'"
        "|ImportError: cannot import name 'top_k_top_p_filtering' from 'transformers'",
    ),
)  # fmt: skip


@hookimpl
def hotfix_patches() -> Iterable[Patch]:
    return PATCHES
