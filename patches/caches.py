"""``Cache.get_max_length()``: removed in transformers 4.49, back in 5.23 with another meaning.

Until 4.48, ``DynamicCache().get_max_length()`` returned ``None`` ("no
maximum"). 4.49 removed the method in favour of ``get_max_cache_shape()``;
legacy ``prepare_inputs_for_generation`` code (DeepSeek-V2, MiniCPM, InternLM2
and most 2024 remote code) then failed with::

    AttributeError: 'DynamicCache' object has no attribute 'get_max_length'

(huggingface/transformers#36071, deepseek-ai/DeepSeek-Coder-V2#81). 5.23
brought a ``get_max_length`` back that returns ``-1`` for a dynamic cache, and
``get_max_cache_shape`` returns ``-1`` from 4.54 on. Legacy code tests
``max_cache_length is not None`` and then slices
``attention_mask[:, -max_cache_length:]``: with ``-1`` it silently drops one
mask column per step. A presence check is therefore not enough; the probe
looks at the value.

The shim restores ``get_max_length`` on ``Cache`` returning ``None`` where
the cache has no maximum (``-1`` or ``None`` from the new API) and the
maximum otherwise. Where upstream's method exists (5.23 on), modern callers
keep its ``-1``: only calls made from legacy code (remote code modules) get
``None``.
"""

from __future__ import annotations

import types
from typing import Any

from hotfix import Finding, Shims
from hotfix._scope import called_from_legacy


def _no_maximum_as_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, int) and value < 0) else value


def get_max_length(self: Any, layer_idx: int | None = None) -> int | None:
    """The maximum sequence length of the cache, ``None`` when it has none (the 4.x contract)."""
    if hasattr(self, "get_max_cache_shape"):
        shape = self.get_max_cache_shape() if layer_idx is None else self.get_max_cache_shape(layer_idx)
        return _no_maximum_as_none(shape)  # type: ignore[no-any-return]
    return None


def probe_get_max_length(module: types.ModuleType) -> Finding:
    if getattr(module.Cache, "get_max_length", None) is None:
        return True, "Cache.get_max_length is missing"
    import torch  # loaded already: transformers.cache_utils imports it

    cache = module.DynamicCache()
    states = torch.zeros(1, 1, 1, 1)
    cache.update(states, states, 0)
    value = cache.get_max_length()
    if value is None:
        return False, "DynamicCache().get_max_length() returns None"
    return True, f"DynamicCache().get_max_length() returns {value!r} where legacy code expects None"


def apply_get_max_length(module: types.ModuleType, shims: Shims) -> None:
    cache = module.Cache
    if getattr(cache, "get_max_length", None) is None:
        shims.restore(cache, "get_max_length", get_max_length, "method")
        return

    def make(function: Any) -> Any:
        # A plain function, not a wrapt wrapper: it runs once per generated token.
        def get_max_length(self: Any, *args: Any, **kwargs: Any) -> Any:
            value = function(self, *args, **kwargs)
            if isinstance(value, int) and value < 0 and called_from_legacy():
                return None
            return value

        return get_max_length

    # Replace it on every class that defines its own get_max_length (Cache and
    # the subclasses that override it), so that the legacy view holds for all.
    for klass in (cache, *_subclasses(cache)):
        if "get_max_length" in vars(klass):
            shims.replace(klass, "get_max_length", make)


def _subclasses(base: type) -> list[type]:
    found: list[type] = []
    stack: list[type] = list(base.__subclasses__())
    while stack:
        klass = stack.pop()
        if klass not in found:
            found.append(klass)
            stack.extend(klass.__subclasses__())
    return found
