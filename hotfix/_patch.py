"""The patch model: what one repair of one break is made of."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, final

from packaging.specifiers import SpecifierSet

from ._errors import PatchError
from ._shims import Shims

__all__ = ["Finding", "Patch", "Probe", "Apply", "Ref", "resolve_object"]

Finding = tuple[bool, str]
"""What a probe found: ``(break_present, detail)``; the detail is shown in status and logs."""

Probe = Callable[[types.ModuleType], Finding]
Apply = Callable[[types.ModuleType, Shims], None]

BUNDLED_PREFIX = "patches."
BUNDLED_PACKAGE = "hotfix._patches"


def resolve_object(path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the object it names.

    ``patches.<name>`` refers to the bundled patch modules, which are installed
    as ``hotfix._patches.<name>`` (there is no top-level ``patches`` package).
    """
    module_name, _, attribute = path.partition(":")
    if module_name == "patches" or module_name.startswith(BUNDLED_PREFIX):
        from . import _resources

        _resources.ensure_patches_package()
        module_name = BUNDLED_PACKAGE + module_name[len("patches") :]
    # An imported module is taken from sys.modules: importlib.import_module
    # would take the module's import lock if another thread is re-importing it.
    obj: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        obj = getattr(obj, part)
    return obj


@final
class Ref:
    """A callable named by ``"module:attr"``, imported on first call.

    Patch modules are imported only when a target module is imported, so that
    ``hotfix.enable()`` stays cheap and imports no target library.
    """

    __slots__ = ("_target", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._target: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        if self._target is None:
            target = resolve_object(self.path)
            if not callable(target):
                raise PatchError(None, f"{self.path} names {type(target).__name__}, not a function")
            self._target = target
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Ref({self.path!r})"


@final
@dataclass(frozen=True, slots=True)
class Patch:
    """hotfix's repair of one break.

    ``modules`` are exact module names whose import triggers the patch,
    ``prefixes`` are name prefixes for dynamically named modules
    (``transformers_modules.``), ``provides`` are removed modules the patch
    can provide when nothing else finds them, ``scan`` are the code shapes
    ``hotfix scan`` reports as needing this patch (``attr:name``,
    ``override:Base.method``, ...; see docs/patch-authors.md). The probe runs on the live
    module and must find the break before ``apply`` is called.
    """

    id: str
    summary: str
    distribution: str
    affected: SpecifierSet
    probe: Probe
    apply: Apply
    modules: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    scan: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    default: bool = True
    unsafe: bool = False
    shape: str = "code"
    catalog: tuple[str, ...] = ()
    error: str = ""
    limits: str = ""
    reproducer: str = ""
    """Where hotfix's tests reproduce the break: ``scenario:NAME`` (tests/scenario.py), ``package:NAME/PART``
    (a fixture package), ``autogptq:STAGE`` (the auto-gptq flow)."""
    fails_with: str = ""
    """What the reproducer fails with without the patch, when it is not ``error`` (``|`` separates alternatives)."""
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def triggers(self) -> tuple[str, ...]:
        return self.modules + tuple(p + "*" for p in self.prefixes) + self.provides
