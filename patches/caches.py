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
maximum otherwise. Where upstream's method exists (5.23 on), it is left as
it is and every caller keeps its ``-1``, except legacy code that tests the
result against ``None``: when a legacy model class (a ``PreTrainedModel``
subclass of remote code or of a module declared legacy) is defined, each of
its functions that compare a ``get_max_length()`` result with ``None``
(read from its bytecode, once) calls the 4.x contract instead, at every
call of the method in that function (InternLM2.5 tests one call and uses
another), under the name ``_hotfix_get_max_length``. Nothing asks at run
time, so the decoding step compiles like the hand-fixed copy. Remote code
already fixed for 5.23 (``if max_length < 0``) keeps ``-1``.
"""

from __future__ import annotations

import types
from typing import Any

from hotfix.authoring import (
    Finding,
    Shims,
    called_from_legacy,
    is_legacy,
    on_legacy_subclass,
    redirect_legacy_calls,
    result_tested_for_none_at,
)

_LEGACY = "_hotfix_get_max_length"
"""What legacy code's ``get_max_length()`` calls look up where upstream's method returns -1."""


def _no_maximum_as_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, int) and value < 0) else value


def _legacy_get_max_length(self: Any, *args: Any) -> int | None:
    """Upstream's answer (5.23+) in the 4.x contract: ``None`` for no maximum. Called per token."""
    value: int | None = self.get_max_length(*args)
    return None if value is None or value < 0 else value


def get_max_length(self: Any, layer_idx: int | None = None) -> int | None:
    """The maximum sequence length of the cache, ``None`` when it has none (the 4.x contract)."""
    if hasattr(self, "get_max_cache_shape"):
        shape = self.get_max_cache_shape() if layer_idx is None else self.get_max_cache_shape(layer_idx)
        return _no_maximum_as_none(shape)  # type: ignore[no-any-return]
    return None


def _cache_utils() -> types.ModuleType:
    # The patch triggers on transformers.modeling_utils (its legacy classes subclass PreTrainedModel);
    # transformers.cache_utils is loaded before it.
    import importlib

    return importlib.import_module("transformers.cache_utils")


def probe_get_max_length(module: types.ModuleType) -> Finding:
    cache_utils = _cache_utils()
    if getattr(cache_utils.Cache, "get_max_length", None) is None:
        return True, "Cache.get_max_length is missing"
    import torch  # loaded already: transformers.cache_utils imports it

    cache = cache_utils.DynamicCache()
    states = torch.zeros(1, 1, 1, 1)
    cache.update(states, states, 0)
    value = cache.get_max_length()
    if value is None:
        return False, "DynamicCache().get_max_length() returns None"
    return True, f"DynamicCache().get_max_length() returns {value!r} where legacy code expects None"


def apply_get_max_length(module: types.ModuleType, shims: Shims) -> None:
    cache = _cache_utils().Cache
    if getattr(cache, "get_max_length", None) is None:
        shims.restore(cache, "get_max_length", get_max_length, "method")
        return
    # Upstream's method stays untouched for every caller (transformers' own Bloom calls it per token);
    # legacy classes whose code tests its result for None call the 4.x contract under another name.
    shims.restore(cache, _LEGACY, _legacy_get_max_length, "method")

    def adapt(cls: type, class_shims: Shims) -> None:
        if is_legacy(cls.__module__):
            # "any": InternLM2.5 reads it twice, `torch.tensor(c.get_max_length()) if c.get_max_length() is
            # not None else None`; the first call runs only when the second found a maximum.
            redirect_legacy_calls(
                class_shims, cls, "get_max_length", _LEGACY, when=result_tested_for_none_at, sites="any"
            )

    on_legacy_subclass(shims, module.PreTrainedModel, adapt)


def _cache_maximum(cache: Any, layer_idx: int) -> int | None:
    """The cache's maximum length, ``None`` for no maximum, from whichever API this version has."""
    for name in ("get_max_cache_shape", "get_max_length"):
        method = getattr(cache, name, None)
        if method is None:
            continue
        try:
            value = method(layer_idx)
        except TypeError:
            value = method()
        return _no_maximum_as_none(value)  # type: ignore[no-any-return]
    return None


def get_usable_length(self: Any, new_seq_length: int, layer_idx: int | None = 0) -> int:
    """How much of the cache the next ``new_seq_length`` tokens can attend to (the 4.x formula).

    Without a maximum every cached token is usable; with one, what must be
    evicted to make room for the new tokens is not.
    """
    layer = layer_idx or 0
    previous: int = self.get_seq_length(layer)
    maximum = _cache_maximum(self, layer)
    if maximum is not None and previous + new_seq_length > maximum:
        return maximum - new_seq_length
    return previous


# -- G5: the tuple-compatible DynamicCache API (removed in 5.0) ------------------------


def from_legacy_cache(cls: Any, past_key_values: Any = None) -> Any:
    """A cache holding the ``((key, value), ...)`` tuples of the legacy format, one pair a layer."""
    cache = cls()
    if past_key_values is not None:
        for layer_idx, layer in enumerate(past_key_values):
            cache.update(layer[0], layer[1], layer_idx)
    return cache


def to_legacy_cache(self: Any) -> tuple[tuple[Any, Any], ...]:
    """The ``((key, value), ...)`` tuples of the legacy format."""
    return tuple((layer.keys, layer.values) for layer in self.layers)


def _getitem(self: Any, layer_idx: int) -> tuple[Any, Any]:
    if layer_idx >= len(self.layers):
        raise KeyError(f"Cache only has {len(self.layers)} layers, attempted to access layer with index {layer_idx}")
    layer = self.layers[layer_idx]
    return layer.keys, layer.values


def probe_legacy_cache(module: types.ModuleType) -> Finding:
    cache = module.DynamicCache
    missing = [n for n in ("from_legacy_cache", "to_legacy_cache", "__getitem__") if not hasattr(cache, n)]
    if missing:
        return True, f"DynamicCache lost {', '.join(missing)}"
    return False, "DynamicCache still has from_legacy_cache, to_legacy_cache and indexing"


def apply_legacy_cache(module: types.ModuleType, shims: Shims) -> None:
    cache = module.DynamicCache
    if not hasattr(cache, "from_legacy_cache"):
        shims.restore(cache, "from_legacy_cache", from_legacy_cache, "classmethod")
    if not hasattr(cache, "to_legacy_cache"):
        shims.restore(cache, "to_legacy_cache", to_legacy_cache, "method")
    if not hasattr(cache, "__getitem__"):
        shims.restore(cache, "__getitem__", _getitem, "method")

    def make(function: Any) -> Any:
        def __iter__(self: Any) -> Any:
            if called_from_legacy():
                shims.mark_used("legacy code iterated a DynamicCache")
                # Legacy code unpacks (key, value) per layer; 5.x yields (key, value, sliding_window).
                return iter([(layer.keys, layer.values) for layer in self.layers])
            return function(self)

        return __iter__

    if "__iter__" in vars(cache):
        shims.replace(cache, "__iter__", make)
