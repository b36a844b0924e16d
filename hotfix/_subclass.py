"""Act on classes as they are defined: one ``__init_subclass__`` hook per base class.

Legacy remote code defines its classes when its module executes, often via
``get_class_in_module``, which bypasses ``sys.meta_path``. Hooking
``__init_subclass__`` on the library's base class (``PreTrainedModel``,
``PreTrainedTokenizer``) sees every subclass however its module was loaded.

Several patches may hook the same base. The hook itself belongs to the
framework: it is installed on the first registration and removed with the
last one, so that reverting one patch never removes another patch's hook.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, final

__all__ = ["SubclassHooks", "all_subclasses"]

Callback = Callable[[type, Any], None]
_Entry = tuple[int, Callback, Any, tuple[str, ...]]


def all_subclasses(base: type) -> list[type]:
    """Every subclass of *base*, direct or not, each once, parents before children."""
    seen: dict[type, None] = {}
    stack: list[type] = list(type.__subclasses__(base))
    while stack:
        klass = stack.pop(0)
        if klass in seen:
            continue
        seen[klass] = None
        stack.extend(type.__subclasses__(klass))
    return list(seen)


@final
class SubclassHooks:
    """The registry of subclass callbacks and the ``__init_subclass__`` hooks that run them."""

    __slots__ = ("_entries", "_installed", "_lock", "_on_error", "_tokens")

    def __init__(self, on_error: Callable[[Any, type, BaseException], None]) -> None:
        self._entries: dict[type, list[_Entry]] = {}
        self._installed: dict[type, tuple[Any, Any]] = {}
        self._lock = threading.RLock()
        self._tokens = itertools.count()
        self._on_error = on_error

    def register(self, base: type, callback: Callback, shims: Any, exclude: tuple[str, ...]) -> int:
        token = next(self._tokens)
        with self._lock:
            self._entries.setdefault(base, []).append((token, callback, shims, exclude))
            if base not in self._installed:
                self._install(base)
        for klass in all_subclasses(base):
            self._run_one(klass, (token, callback, shims, exclude))
        return token

    def unregister(self, base: type, token: int) -> str | None:
        with self._lock:
            entries = [entry for entry in self._entries.get(base, []) if entry[0] != token]
            if entries:
                self._entries[base] = entries
                return None
            self._entries.pop(base, None)
            return self._uninstall(base)

    def _install(self, base: type) -> None:
        original = vars(base).get("__init_subclass__")
        hooks = self

        def __init_subclass__(cls: Any, /, **kwargs: Any) -> None:
            if original is not None:
                original.__func__(cls, **kwargs)
            else:
                parent: Any = super(base, cls)
                parent.__init_subclass__(**kwargs)
            hooks._dispatch(base, cls)

        installed: Any = classmethod(__init_subclass__)
        setattr(base, "__init_subclass__", installed)  # noqa: B010 - a dunder on someone else's class
        self._installed[base] = (original, installed)

    def _uninstall(self, base: type) -> str | None:
        original, installed = self._installed.pop(base)
        if vars(base).get("__init_subclass__") is not installed:
            return f"{base.__qualname__}.__init_subclass__ was replaced after hotfix hooked it; left as it is"
        if original is None:
            delattr(base, "__init_subclass__")
        else:
            setattr(base, "__init_subclass__", original)  # noqa: B010 - see _install
        return None

    def _dispatch(self, base: type, cls: type) -> None:
        # Runs inside the class statement of someone else's module: a failing
        # callback is reported, never raised into their import.
        with self._lock:
            entries = list(self._entries.get(base, ()))
        for entry in entries:
            self._run_one(cls, entry)

    def _run_one(self, cls: type, entry: _Entry) -> None:
        _, callback, shims, exclude = entry
        if exclude and cls.__module__.startswith(exclude):
            return
        before = len(shims.changes)
        try:
            callback(cls, shims)
            if len(shims.changes) > before:
                from ._usage import hit, short

                hit(shims.patch_id, f"class {short(cls.__module__)}.{cls.__qualname__} adapted")
        except Exception as error:  # noqa: BLE001 - see _dispatch
            self._on_error(shims, cls, error)
