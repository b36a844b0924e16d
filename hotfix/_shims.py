"""The recorded primitives a patch uses to install its shims.

Every change goes through :class:`Shims`, which records it as
``(owner, attribute, original, existed)`` with the original read from the
owner's own ``__dict__`` (``vars(owner)``, never ``getattr``, which would bind
descriptors and see inherited values). :meth:`Shims.revert` undoes the
changes in reverse order and restores exactly hotfix's own layer: when
somebody else wrapped a shim with a wrapt proxy after hotfix installed it,
their proxy stays and is re-pointed at the original.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, final

from . import _usage
from ._errors import PatchError

__all__ = ["Change", "Shims", "MISSING", "WrapperFunction", "initializing", "lists_name"]

WrapperFunction = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
"""wrapt's wrapper signature: ``wrapper(wrapped, instance, args, kwargs)``."""

Kind = Literal["value", "function", "method", "property", "classmethod", "staticmethod"]


@final
class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
_STEP_ASIDE = threading.Lock()
"""Marks an attribute that did not exist before hotfix set it."""


@final
@dataclass(slots=True)
class Change:
    """One recorded change: what was at ``owner.attribute`` before, and what hotfix put there."""

    owner: Any
    attribute: str
    original: Any
    existed: bool
    installed: Any
    undo: Callable[[], str | None] | None = field(default=None, repr=False)

    def describe(self) -> str:
        if not self.attribute:
            return str(self.owner)
        owner = getattr(self.owner, "__qualname__", None) or getattr(self.owner, "__name__", repr(self.owner))
        return f"{owner}.{self.attribute}"


def _own(owner: Any, name: str) -> Any:
    """The value stored under *name* in *owner*'s own namespace, or MISSING."""
    return vars(owner).get(name, MISSING)


def _inherited(owner: Any, name: str) -> Any:
    """The raw (unbound) value of *name* as *owner* resolves it, walking the MRO."""
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in vars(klass):
                return vars(klass)[name]
        return MISSING
    return vars(owner).get(name, MISSING)


def lists_name(module: types.ModuleType, name: str) -> bool:
    """Whether *name* is in ``dir(module)``: a loaded attribute, or a lazy name not imported yet.

    transformers' lazy modules list their lazy names in ``dir()``, which is
    their ``__dict__`` plus ``__all__`` but costs 0.1-0.2 s on the top-level
    module (each of about 6,500 names is tested against a list). For those the
    answer is read from the two directly; any other module is asked ``dir()``.
    """
    namespace = vars(module)
    if name in namespace:
        return True
    if "_class_to_module" in namespace and "_modules" in namespace:  # transformers.utils.import_utils._LazyModule
        return name in namespace.get("__all__", ())
    try:
        return name in dir(module)
    except Exception:  # noqa: BLE001 -- a broken __dir__ answers "not there"
        return False


def _undo_attribute(change: Change) -> str | None:
    """Put back what was at ``owner.attribute``; a warning string if that is only partly possible."""
    with _STEP_ASIDE:  # not while a first call is putting the plain shim in place of its trampoline
        return _undo_attribute_locked(change)


def _undo_attribute_locked(change: Change) -> str | None:
    current = _own(change.owner, change.attribute)
    if current is change.installed:
        if change.existed:
            setattr(change.owner, change.attribute, change.original)
        else:
            delattr(change.owner, change.attribute)
        return None
    # Somebody replaced or wrapped the shim after hotfix installed it. Leave
    # their object in place; if it is a wrapt proxy (directly or down a chain
    # of proxies) around the shim, splice the shim out of the chain so their
    # wrapper now wraps what hotfix found.
    import wrapt  # imported when a shim is reverted or installed, not with hotfix

    node = current
    while isinstance(node, wrapt.BaseObjectProxy):
        inner = node.__wrapped__
        if inner is change.installed:
            if not change.existed:
                return (
                    f"{change.describe()}: a foreign wrapper sits on a shim that hotfix added; "
                    "it was left in place because there is no original to give it"
                )
            node.__wrapped__ = change.original
            return None
        node = inner
    if current is MISSING:
        return None
    return f"{change.describe()}: replaced by someone else after hotfix; left as it is"


def _counting(change: Change, value: Any, patch_id: str) -> Any:
    """*value* behind a trampoline that records the first use and then steps aside; other values unchanged."""
    pending = [True]  # until the first call; a reference taken before it then costs one list lookup
    # While torch.compile traces the first call, recording it (a lock, the usage table) would break the graph:
    # dynamo answers is_compiling() with a constant, so the traced call skips it and the first eager call counts.
    compiler = getattr(sys.modules.get("torch"), "compiler", None)
    compiling: Callable[[], bool] | None = getattr(compiler, "is_compiling", None)

    def used() -> None:
        with _STEP_ASIDE:
            if not pending[0]:
                return
            pending[0] = False
            if _own(change.owner, change.attribute) is not change.installed or change.installed is value:
                return  # reverted (or replaced by someone else) before this first call: not a use of this patch
            setattr(change.owner, change.attribute, value)
            change.installed = value
        _usage.hit(patch_id, f"{change.describe()} called")

    def trampoline(function: Callable[..., Any]) -> Callable[..., Any]:
        def first(*args: Any, **kwargs: Any) -> Any:
            if pending[0] and not (compiling is not None and compiling()):
                used()
            return function(*args, **kwargs)

        return functools.update_wrapper(first, function)

    if type(value) is types.FunctionType:  # exact types: wrapt proxies pass isinstance checks
        return trampoline(value)
    if type(value) in (classmethod, staticmethod) and type(value.__func__) is types.FunctionType:
        return type(value)(trampoline(value.__func__))
    if type(value) is property and type(value.fget) is types.FunctionType:
        return property(trampoline(value.fget), value.fset, value.fdel, value.__doc__)
    if type(value).__name__ == "FunctionWrapper" and hasattr(value, "_self_wrapper"):
        import wrapt

        wrapper = value._self_wrapper

        def counting(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if pending[0] and not (compiling is not None and compiling()):
                used()
            return wrapper(wrapped, instance, args, kwargs)

        return wrapt.FunctionWrapper(value.__wrapped__, counting)
    return value


_DESCRIPTORS: dict[str, Callable[[Any], Any]] = {
    "property": property, "classmethod": classmethod, "staticmethod": staticmethod,
}  # fmt: skip

ArgumentRewrite = Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


def _adapter(
    dropped: tuple[str, ...], renamed: tuple[tuple[str, str], ...], positional: ArgumentRewrite | None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The function maker of :meth:`Shims.adapt_arguments`."""

    def make(function: Callable[..., Any]) -> Callable[..., Any]:
        # Specialised closures: on a hot path the adapter costs what a
        # hand-written replacement costs (see bench/test_shims.py).
        if len(dropped) == 1 and not renamed and positional is None:
            key = dropped[0]

            def drop_one(*args: Any, **kwargs: Any) -> Any:
                kwargs.pop(key, None)
                return function(*args, **kwargs)

            return drop_one

        def adapted(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                for key in dropped:
                    kwargs.pop(key, None)
                for old, new in renamed:
                    if old in kwargs:
                        kwargs[new] = kwargs.pop(old)
            if positional is not None:
                args, kwargs = positional(args, kwargs)
            return function(*args, **kwargs)

        return adapted

    return make


def initializing(module: types.ModuleType) -> bool:
    """Whether *module* is still being executed by an import (importlib's own flag on its spec)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _withdraw(importer: Any, name: str, factory: Callable[[], types.ModuleType]) -> str | None:
    """Undo :meth:`Shims.provide_module`: the finder forgets the module, and a module it built leaves sys.modules."""
    importer.withdraw(name, factory)
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__hotfix_provided__", None) is factory:
        if initializing(module):
            # Another thread is importing it right now: importlib reads sys.modules[name] again at the end
            # of that import (a KeyError there if it went). It stays; the finder no longer provides it.
            return f"module {name} is being imported by another thread; it stays in sys.modules"
        sys.modules.pop(name, None)
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None and vars(parent).get(child) is module:
            delattr(parent, child)
    return None


@final
class Shims:
    """Applies and records the changes of one patch.

    A patch's ``apply(module, shims)`` receives one of these and makes every
    change through it, so that a failure halfway can be rolled back and
    :func:`hotfix.disable` can revert exactly.
    """

    __slots__ = ("_importer", "_subclasses", "changes", "patch_id")

    def __init__(self, patch_id: str, importer: Any = None, subclasses: Any = None) -> None:
        self.patch_id = patch_id
        self.changes: list[Change] = []
        self._importer = importer
        self._subclasses = subclasses

    # -- the lowest layer -------------------------------------------------

    def set(self, owner: Any, name: str, value: Any, *, count: bool = True) -> Any:
        """Set ``owner.name = value`` and record what was there.

        With *count*, a name the owner did not have (a restored function,
        method or property) is installed behind a one-time trampoline that
        records this patch as used on its first call and then puts *value*
        itself in place (:mod:`hotfix._usage`). Replacements of existing
        functions mark their use themselves (:meth:`mark_used`); values that
        must keep their identity (aliases) are set as they are.
        """
        original = _own(owner, name)
        change = Change(owner, name, original, original is not MISSING, value)
        fresh = _inherited(owner, name) is MISSING  # a restored name: any call is legacy code needing it
        installed = _counting(change, value, self.patch_id) if count and fresh else value
        setattr(owner, name, installed)
        change.installed = installed
        change.undo = lambda: _undo_attribute(change)
        self.changes.append(change)
        return value

    @property
    def marked(self) -> bool:
        """Whether this patch is recorded as used already: test it before building a description per call."""
        return self.patch_id in _usage.USED

    def mark_used(self, what: str) -> None:
        """Record that code in this process needed this patch (*what* says how); only the first mark is kept.

        Call it from the branch of a shim that acts for legacy code, where the
        shim wraps an upstream function every model calls (a restored name
        counts its own first call, a changed legacy class counts itself).
        """
        if self.patch_id not in _usage.USED:
            _usage.USED[self.patch_id] = what

    def record(self, description: str, undo: Callable[[], str | None]) -> None:
        """Record a change that is not an attribute (a provided module, a hook registration)."""
        self.changes.append(Change(description, "", MISSING, False, None, undo))

    # -- shapes -----------------------------------------------------------

    def alias(self, owner: Any, name: str, value: Any) -> Any:
        """Make ``owner.name`` refer to *value* (a moved name at its old place)."""
        return self.set(owner, name, value, count=False)

    def restore(self, owner: Any, name: str, value: Any, kind: Kind = "value") -> Any:
        """Restore a removed function, method, property, classmethod or staticmethod."""
        wrap = _DESCRIPTORS.get(kind)
        return self.set(owner, name, wrap(value) if wrap else value, count=kind != "value")

    def wrap(self, owner: Any, name: str, wrapper: WrapperFunction) -> Any:
        """Wrap ``owner.name`` (its own or inherited value) with a wrapt ``FunctionWrapper``."""
        import wrapt

        target = _inherited(owner, name)
        if target is MISSING:
            raise PatchError(self.patch_id, f"{owner!r} has no attribute {name!r} to wrap")
        return self.set(owner, name, wrapt.FunctionWrapper(target, wrapper))

    def adapt_arguments(
        self,
        owner: Any,
        name: str,
        *,
        drop: Iterable[str] = (),
        rename: Mapping[str, str] | None = None,
        positional: ArgumentRewrite | None = None,
    ) -> Any:
        """Wrap a callable so that it accepts the legacy call form.

        *drop* lists keywords the callable no longer takes (they are removed),
        *rename* maps old keyword names to new ones, *positional* rewrites
        ``(args, kwargs)`` for calls whose positional form changed; ``args`` are
        as the function receives them (``self`` first for a method).
        """
        make = _adapter(tuple(drop), tuple((rename or {}).items()), positional)
        return self.replace(owner, name, make)

    def proxy_return(self, owner: Any, name: str, proxy: Callable[[Any], Any]) -> Any:
        """Wrap a callable so that its return value passes through *proxy* (e.g. an ``ObjectProxy`` subclass)."""

        def make(function: Callable[..., Any]) -> Callable[..., Any]:
            def returning(*args: Any, **kwargs: Any) -> Any:
                return proxy(function(*args, **kwargs))

            return returning

        return self.replace(owner, name, make)

    def replace(self, owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Any:
        """Replace a function (plain, classmethod or staticmethod) by ``make(function)``, a plain function.

        Use it rather than :meth:`wrap` on hot paths (called per token or per layer).

        A plain function binds like the original and costs one Python call;
        a wrapt wrapper would cost three times a hand-written adapter per call.
        Other callables (builtins, callable objects) get a wrapt wrapper.
        """
        target = _inherited(owner, name)
        if target is MISSING:
            raise PatchError(self.patch_id, f"{owner!r} has no attribute {name!r} to adapt")
        if isinstance(target, (classmethod, staticmethod)):
            kind = type(target)
            replacement: Any = kind(functools.update_wrapper(make(target.__func__), target.__func__))
        elif isinstance(target, types.FunctionType):
            replacement = functools.update_wrapper(make(target), target)
        else:
            made = make

            def wrapper(
                wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                return made(wrapped)(*args, **kwargs)

            return self.wrap(owner, name, wrapper)
        return self.set(owner, name, replacement)

    def provide_module(self, name: str, factory: Callable[[], types.ModuleType]) -> None:
        """Provide a module that upstream removed; *factory* builds it on import."""
        if self._importer is None:
            raise PatchError(
                self.patch_id, "provide_module needs the import hook; apply the patch through hotfix.enable()"
            )
        self._importer.provide(name, factory)
        self.record(f"module {name}", functools.partial(_withdraw, self._importer, name, factory))

    def on_subclass(
        self, base: type, callback: Callable[[type, Shims], None], *, exclude: tuple[str, ...] = ()
    ) -> None:
        """Run ``callback(cls, shims)`` for every subclass of *base*, existing and defined later.

        Classes whose ``__module__`` starts with one of *exclude* are left
        alone (use it to leave the target library's own classes untouched).
        Changes the callback makes are recorded on this patch.
        """
        if self._subclasses is None:
            raise PatchError(
                self.patch_id, "on_subclass needs the subclass hooks; apply the patch through hotfix.enable()"
            )
        token = self._subclasses.register(base, callback, self, exclude)
        hooks = self._subclasses
        self.record(f"subclass hook on {base.__qualname__}", lambda: hooks.unregister(base, token))

    # -- undo ---------------------------------------------------------------

    def revert(self) -> list[str]:
        """Undo every recorded change in reverse order; warnings for what could not be fully undone."""
        warnings: list[str] = []
        while self.changes:
            change = self.changes.pop()
            if change.undo is None:
                continue
            try:
                message = change.undo()
            except Exception as error:  # noqa: BLE001 - one failed undo must not stop the others
                message = f"{change.describe()}: undo raised {type(error).__name__}: {error}"
            if message:
                warnings.append(message)
        return warnings
