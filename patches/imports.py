"""Helpers that transformers removed from ``transformers.utils`` and legacy code still imports.

* ``is_tf_available`` / ``is_flax_available`` (removed in 5.0 with TensorFlow
  and Flax support): legacy tokenizer and modeling modules import them at
  module level, and the import fails with ``ImportError: cannot import name
  'is_tf_available' from 'transformers.utils'``. transformers 5 runs neither
  framework, so the restored functions answer ``False``.
* ``is_torch_tpu_available`` (removed in 4.51, back in later 5.x releases):
  restored as ``is_torch_xla_available(check_is_tpu=True)``, which is what
  transformers itself replaced it with.
"""

from __future__ import annotations

from typing import Any


def unavailable(*args: Any, **kwargs: Any) -> bool:
    """The framework is not available (TensorFlow and Flax are gone from transformers 5)."""
    return False


def is_torch_tpu_available(check_device: bool = True) -> bool:
    """Whether a TPU is usable through torch_xla (the 4.x helper, on its replacement)."""
    from transformers.utils import is_torch_xla_available

    return bool(is_torch_xla_available(check_is_tpu=True))
