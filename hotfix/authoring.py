"""The public API for writing patches: everything a patch module needs, and nothing private.

A code patch is two functions named from its declaration::

    from hotfix.authoring import Finding, Shims, is_legacy, on_legacy_subclass, takes

    def probe(module) -> Finding:
        '''(break present, what was found), read from the live module after it executed.'''
        return not takes(module.Base.method, "old_keyword"), "Base.method takes no old_keyword"

    def apply(module, shims: Shims) -> None:
        '''Every change through shims: recorded, and reverted exactly by hotfix.disable().'''
        shims.adapt_arguments(module.Base, "method", drop=("old_keyword",))

What is here:

* the change set, :class:`Shims` (``alias``, ``restore``, ``wrap``, ``replace``,
  ``adapt_arguments``, ``proxy_return``, ``provide_module``, ``on_subclass``,
  ``mark_used``, ``set``, ``record``) and the :class:`Change` it records;
* the declaration types, :class:`Patch` and :data:`Finding`;
* legacy scope: :func:`is_legacy`, :func:`declared_legacy`,
  :func:`called_from_legacy`, :func:`called_into_from_legacy`,
  :func:`caller_frame`; what the caller does with a shim's result, read
  from its bytecode: :func:`result_unpacked`, :func:`result_tested_for_none`;
  or, for per-token paths, once when the legacy class is defined:
  :func:`redirect_legacy_calls` with :func:`result_tested_for_none_at` or
  :func:`result_unpacked_at`;
* the recurring patterns as primitives: :func:`on_legacy_subclass` (act on the
  classes legacy code defines, never on the library's own),
  :func:`wrap_outermost_init` (run code once per instance, around the
  outermost of a chain of ``super().__init__`` calls), :func:`takes` (does a
  callable accept a parameter), :func:`all_subclasses`;
* the errors, :class:`HotfixError` and its subclasses.

``hotfix._*`` modules are the framework's own and change without notice; the
bundled patches use only this module and ``hotfix`` itself, and a test keeps it
that way.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

from ._apply import revert_incomplete
from ._errors import ConfigurationError, HotfixError, PatchError, PatchFailedError, RegistryError
from ._introspect import (
    called_from_legacy,
    called_into_from_legacy,
    caller_frame,
    redirect_calls,
    result_tested_for_none,
    result_tested_for_none_at,
    result_unpacked,
    result_unpacked_at,
)
from ._patch import Apply, Finding, Patch, Probe
from ._scope import declared_legacy, is_legacy
from ._shims import MISSING, Change, Shims, WrapperFunction, lists_name
from ._subclass import all_subclasses

__all__ = [
    "MISSING",
    "Apply",
    "Change",
    "ConfigurationError",
    "Finding",
    "HotfixError",
    "Patch",
    "PatchError",
    "PatchFailedError",
    "Probe",
    "RegistryError",
    "Shims",
    "WrapperFunction",
    "all_subclasses",
    "called_from_legacy",
    "called_into_from_legacy",
    "caller_frame",
    "declared_legacy",
    "is_legacy",
    "lists_name",
    "on_legacy_subclass",
    "redirect_legacy_calls",
    "result_tested_for_none",
    "result_tested_for_none_at",
    "result_unpacked",
    "result_unpacked_at",
    "revert_incomplete",
    "takes",
    "wrap_outermost_init",
]

State = TypeVar("State")

_DEPTH = "__hotfix_init_depth__"


def takes(function: Any, name: str, *, var_keyword: bool = False, unreadable: bool = False) -> bool:
    """Whether *function* has a parameter called *name*.

    With *var_keyword*, a ``**kwargs`` parameter counts as taking any
    keyword (the question is then "can it be called with ``name=``").
    *unreadable* is the answer when the signature cannot be read (a builtin
    without a text signature): ``True`` where doing nothing is the safe
    choice, ``False`` where adapting the call is.
    """
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return unreadable
    if name in parameters:
        return True
    return var_keyword and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def on_legacy_subclass(shims: Shims, base: type, callback: Callable[[type, Shims], None]) -> None:
    """Run ``callback(cls, shims)`` for every subclass of *base* that is not the library's own.

    The library is *base*'s top-level package: for ``PreTrainedModel`` every
    class defined in ``transformers.*`` is left as it is, and every class of
    remote code, of a vendored copy or of the user's own module gets the
    callback, whether it exists already or is defined later. Changes the
    callback makes are recorded on the patch, and a class it changed counts
    as a use of the patch.
    """
    library = base.__module__.partition(".")[0]
    shims.on_subclass(base, callback, exclude=(library + ".",))


def _functions(value: Any) -> Iterator[types.FunctionType]:
    """The plain functions behind a class attribute: a method, a static or class method, a property's
    accessors, and what decorators wrapped (``__wrapped__``)."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        for accessor in (value.fget, value.fset, value.fdel):
            yield from _functions(accessor)
        return
    seen: set[int] = set()
    while value is not None and id(value) not in seen:
        seen.add(id(value))
        if type(value) is types.FunctionType:
            yield value
        value = getattr(value, "__wrapped__", None) if callable(value) else None


def redirect_legacy_calls(
    shims: Shims,
    cls: type,
    attribute: str,
    to: str,
    *,
    when: Callable[[types.CodeType, int], bool],
    sites: Literal["all", "any"] = "all",
) -> int:
    """In the functions *cls* defines, make the calls ``x.attribute(...)`` that use the result the legacy way
    call ``x.to(...)``; returns how many functions changed.

    *when* answers, from a function's bytecode and the offset of one call,
    whether that call uses the result the legacy way
    (:func:`result_tested_for_none_at`, :func:`result_unpacked_at`). A function
    changes only where every use of *attribute* in it is a call, and *when*
    holds for all of them (*sites* ``"all"``) or for one (``"any"``; see
    :func:`hotfix._introspect.redirect_calls`); its ``__code__`` is replaced in
    place, so a decorator's reference sees the change, and reverting puts the
    original back. Meant for the callback of :func:`on_legacy_subclass`: the
    legacy answer is then scoped by the class, and nothing inspects frames
    or bytecode while the model runs (per-token paths, ``torch.compile``).
    """
    changed = 0
    for name, value in list(vars(cls).items()):
        for function in _functions(value):
            original = function.__code__
            rewritten = redirect_calls(original, attribute, to, when, sites=sites)
            if rewritten is original:
                continue
            function.__code__ = rewritten

            def undo(function: types.FunctionType = function, original: types.CodeType = original,
                     rewritten: types.CodeType = rewritten) -> str | None:  # fmt: skip
                if function.__code__ is not rewritten:
                    return f"{function.__qualname__}.__code__ was replaced after hotfix changed it; left as it is"
                function.__code__ = original
                return None

            shims.record(f"{cls.__qualname__}.{name}: calls to {attribute} look up {to}", undo)
            changed += 1
    return changed


def wrap_outermost_init(
    shims: Shims,
    cls: type,
    *,
    after: Callable[[Any, State], None],
    before: Callable[[Any], State] | None = None,
) -> bool:
    """Run *before* and *after* once per instance, around the outermost ``__init__`` that *cls* wraps.

    Replaces ``cls.__init__`` when *cls* defines one (returns whether it did).
    A legacy class calling ``super().__init__()`` into another wrapped class
    nests; only the outermost call runs the hooks: ``before(self)`` before it
    starts, and ``after(self, state)`` (with what *before* returned, or
    ``None``) when it returned normally. The nesting is counted in the
    instance itself, so nothing outlives it.
    """
    if "__init__" not in vars(cls):
        return False

    def make(function: Callable[..., None]) -> Callable[..., None]:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            namespace = self.__dict__
            depth = namespace.get(_DEPTH, 0)
            if depth:
                namespace[_DEPTH] = depth + 1
                try:
                    function(self, *args, **kwargs)
                finally:
                    namespace[_DEPTH] -= 1
                return
            state = before(self) if before is not None else None
            namespace[_DEPTH] = 1
            try:
                function(self, *args, **kwargs)
            finally:
                namespace.pop(_DEPTH, None)
            after(self, state)  # type: ignore[arg-type]

        return __init__

    shims.replace(cls, "__init__", make)
    return True
