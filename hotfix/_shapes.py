"""The common shapes of shim, declared as data in ``registry.toml``.

Each builder takes a validated entry and returns ``(probe, apply, triggers)``.
Owners are written ``"module"`` or ``"module:Class"``; targets
``"module:attr"``. Nothing here imports a target library before the trigger
module has been imported by the user's code.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

from ._patch import Apply, Finding, Probe, resolve_object
from ._shims import MISSING, Shims, _inherited, lists_name

__all__ = ["BUILDERS", "owner_module"]

Triggers = dict[str, tuple[str, ...]]
Built = tuple[Probe, Apply, Triggers]


def owner_module(owner: str) -> str:
    return owner.partition(":")[0]


def _resolve_owner(owner: str, module: types.ModuleType) -> Any:
    module_name, _, qualname = owner.partition(":")
    obj: Any = module if module.__name__ == module_name else resolve_object(module_name)
    for part in qualname.split(".") if qualname else ():
        obj = getattr(obj, part)
    return obj


def _present(owner: Any, name: str) -> bool:
    """Whether *owner* has *name*, counting the lazy names a module lists in ``dir()`` but has not loaded yet."""
    if _inherited(owner, name) is not MISSING:
        return True
    return isinstance(owner, types.ModuleType) and lists_name(owner, name)


def moved_name(entry: dict[str, Any]) -> Built:
    owner, name, target = entry["owner"], entry["name"], entry["target"]

    def probe(module: types.ModuleType) -> Finding:
        where = _resolve_owner(owner, module)
        if _present(where, name):
            return False, f"{owner}.{name} exists"
        resolve_object(target)  # the new home must exist, or the alias would be wrong
        return True, f"{owner}.{name} is missing; it lives at {target}"

    def apply(module: types.ModuleType, shims: Shims) -> None:
        shims.alias(_resolve_owner(owner, module), name, resolve_object(target))

    return probe, apply, {"modules": (owner_module(owner),)}


def _reexport(name: str, target: str) -> Callable[[], types.ModuleType]:
    def factory() -> types.ModuleType:
        source = resolve_object(target)  # a library module, or hotfix's own (patches.<name>)
        module = types.ModuleType(name, f"Removed upstream; hotfix re-exports {target}.")
        public = getattr(source, "__all__", None) or [n for n in vars(source) if not n.startswith("_")]
        for key in public:
            if hasattr(source, key):
                setattr(module, key, getattr(source, key))
        module.__all__ = list(public)  # type: ignore[attr-defined]

        def __getattr__(attribute: str) -> Any:
            return getattr(source, attribute)

        module.__getattr__ = __getattr__  # type: ignore[method-assign]
        return module

    return factory


def removed_module(entry: dict[str, Any]) -> Built:
    name, target = entry["module"], entry["target"]

    def probe(module: types.ModuleType) -> Finding:
        # Called by the import hook only after every other finder failed to find *name*.
        return True, f"no module named {name!r}; its names live in {target}"

    def apply(module: types.ModuleType, shims: Shims) -> None:
        shims.provide_module(name, _reexport(name, target))

    return probe, apply, {"provides": (name,)}


def restored_attribute(entry: dict[str, Any]) -> Built:
    owner, name, kind = entry["owner"], entry["name"], entry.get("kind", "method")
    via: str = entry.get("via") or ""
    impl: str | None = entry.get("impl")

    def probe(module: types.ModuleType) -> Finding:
        where = _resolve_owner(owner, module)
        if _present(where, name):
            return False, f"{owner}.{name} exists"
        return True, f"{owner}.{name} is missing"

    def value() -> Any:
        if impl is not None:
            return resolve_object(impl)
        if kind == "property":
            return lambda self: getattr(self, via)()
        return lambda self, *args, **kwargs: getattr(self, via)(*args, **kwargs)

    def apply(module: types.ModuleType, shims: Shims) -> None:
        shims.restore(_resolve_owner(owner, module), name, value(), kind)

    return probe, apply, {"modules": (owner_module(owner),)}


def _accepts(function: Any, keyword: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True  # cannot tell: assume it works, never shim blindly
    if keyword in parameters:
        return parameters[keyword].kind is not inspect.Parameter.POSITIONAL_ONLY
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def removed_keyword(entry: dict[str, Any]) -> Built:
    owner, name = entry["owner"], entry["name"]
    drop: list[str] = entry.get("drop", [])
    rename: dict[str, str] = entry.get("rename", {})

    def probe(module: types.ModuleType) -> Finding:
        function = getattr(_resolve_owner(owner, module), name)
        missing = [k for k in (*drop, *rename) if not _accepts(function, k)]
        if not missing:
            return False, f"{owner}.{name} accepts {', '.join((*drop, *rename))}"
        return True, f"{owner}.{name} no longer accepts {', '.join(missing)}"

    def apply(module: types.ModuleType, shims: Shims) -> None:
        shims.adapt_arguments(_resolve_owner(owner, module), name, drop=drop, rename=rename)

    return probe, apply, {"modules": (owner_module(owner),)}


BUILDERS: dict[str, Callable[[dict[str, Any]], Built]] = {
    "moved-name": moved_name,
    "removed-module": removed_module,
    "restored-attribute": restored_attribute,
    "removed-keyword": removed_keyword,
}
