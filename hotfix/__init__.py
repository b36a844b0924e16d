"""hotfix keeps old model code running on new ML libraries.

>>> import hotfix
>>> hotfix.enable()        # before or after transformers is imported

See ``docs/`` for the user guide, the patch-author guide and the list of patches.
"""

from __future__ import annotations

import sys

from . import _boot
from ._errors import (
    ConfigurationError,
    DependencyError,
    HotfixError,
    PatchError,
    PatchFailedError,
    RegistryError,
    UnknownPatchError,
)

TYPE_CHECKING = False  # typing is not imported for it: ``import hotfix; hotfix.enable()`` starts every process
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._hookspecs import hookimpl
    from ._patch import Finding, Patch
    from ._runtime import PatchStatus, Status
    from ._scope import is_legacy
    from ._shims import Shims

# Loaded at first use (PEP 562): they import pluggy, wrapt and the runtime, which enable() defers.
_LAZY = {
    "hookimpl": "._hookspecs",
    "Finding": "._patch",
    "Patch": "._patch",
    "PatchStatus": "._runtime",
    "Status": "._runtime",
    "is_legacy": "._scope",
    "Shims": "._shims",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hotfix' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "ConfigurationError",
    "DependencyError",
    "Finding",
    "HotfixError",
    "Patch",
    "PatchError",
    "PatchFailedError",
    "PatchStatus",
    "RegistryError",
    "Shims",
    "Status",
    "UnknownPatchError",
    "__version__",
    "disable",
    "enable",
    "hookimpl",
    "is_enabled",
    "is_legacy",
    "register_plugin",
    "status",
    "unregister_plugin",
]

__version__ = "0.1.0"


def enable(
    patches: Sequence[str] | None = None,
    strict: bool | None = None,
    propagate: bool = True,
    legacy: Sequence[str] | None = None,
) -> None:
    """Install the import hook and apply every selected patch whose break is present.

    *patches* selects patches like ``HOTFIX_PATCHES`` (ids or globs, ``-id`` to
    deny); ``None`` reads ``HOTFIX_PATCHES``. *strict* makes a failing patch
    raise :class:`PatchFailedError` (``None`` reads ``HOTFIX_STRICT``).
    *legacy* lists module-name globs of more legacy code (vendored copies of
    remote-code files, e.g. ``["llava.model.*"]``) that the scoped shims treat
    like ``transformers_modules.*``; ``None`` reads ``HOTFIX_LEGACY``; a bad
    glob raises :class:`ConfigurationError`. With *propagate*, the environment
    is set so that worker processes activate hotfix too (``HOTFIX_ENABLE=1``
    and the settings above); :func:`disable` restores it. Calling it again
    while enabled does nothing (with another *patches*, it logs a warning, and
    raises :class:`ConfigurationError` in strict mode: call :func:`disable`
    first). A selection item that names no patch is logged as a warning (raised
    in strict mode). Imports none of the target libraries.

    Without *patches*, *strict* and *legacy*, with ``HOTFIX_STRICT`` unset and
    no patch pack installed, it takes about a millisecond: the registry and
    pluggy load at the first import of transformers, peft or auto_gptq, or at
    the first :func:`status`, and their warnings are logged then.
    """
    _boot.enable(patches, strict, propagate, legacy)


def disable() -> None:
    """Remove the import hook and revert every shim, in reverse order. Does nothing if not enabled."""
    if not _boot.cancel() and "hotfix._runtime" in sys.modules:
        from ._runtime import RUNTIME

        RUNTIME.disable()


def is_enabled() -> bool:
    """Whether hotfix is enabled in this process (also while the registry waits for a watched import)."""
    if _boot.pending():
        return True
    runtime = sys.modules.get("hotfix._runtime")
    return bool(runtime is not None and runtime.RUNTIME.enabled)


def status() -> Status:
    """Every known patch with its state (applied, skipped and why, failed and the error) and the versions seen."""
    from ._runtime import RUNTIME

    return RUNTIME.status()


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a local plugin: an object with ``@hotfix.hookimpl`` methods (patches or observers).

    Patch packs installed as distributions register themselves through the
    ``hotfix.patches`` entry-point group instead. Call it while disabled.
    """
    from ._runtime import RUNTIME

    RUNTIME.register(plugin, name=name)


def unregister_plugin(plugin: object) -> None:
    """Remove a plugin registered with :func:`register_plugin`. Call it while disabled."""
    from ._runtime import RUNTIME

    RUNTIME.unregister(plugin)
