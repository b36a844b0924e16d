"""``transformers.onnx``, removed in transformers 5.0 (ONNX export moved to optimum), for code that imports it.

Remote configuration files of BERT-style encoders (and some decoders) define
an ONNX description next to their config::

    from transformers.onnx import OnnxConfig

    class JinaBertOnnxConfig(OnnxConfig):
        @property
        def inputs(self): ...

On 5.x the import fails with ``ModuleNotFoundError: No module named
'transformers.onnx'`` and the model cannot even be configured. The
``m32-onnx-module`` patch provides this module under the old name: the names
exist and can be subclassed; building an export configuration raises an
error that says where export went.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = [
    "EXTERNAL_DATA_FORMAT_SIZE_LIMIT",
    "FeaturesManager",
    "OnnxConfig",
    "OnnxConfigWithPast",
    "OnnxSeq2SeqConfigWithPast",
    "ParameterFormat",
    "PatchingSpec",
    "export",
    "validate_model_outputs",
]

EXTERNAL_DATA_FORMAT_SIZE_LIMIT = 2 * 1024 * 1024 * 1024
_ADVICE = (
    "transformers.onnx was removed in transformers 5.0; hotfix lets legacy code import it, not export with it. "
    "Export with optimum (`optimum-cli export onnx`)."
)


class RemovedOnnxExportError(ImportError):
    """ONNX export through transformers.onnx, which transformers 5 no longer has."""


class ParameterFormat(Enum):
    Float = "float"


class _StandIn:
    """Subclassable; constructing one (which only an export does) raises :class:`RemovedOnnxExportError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RemovedOnnxExportError(_ADVICE)


class OnnxConfig(_StandIn):
    """Stand-in for the 4.x base class of ONNX export configurations."""

    default_fixed_batch = 2
    default_fixed_sequence = 8
    default_fixed_num_choices = 4


class OnnxConfigWithPast(OnnxConfig):
    """Stand-in for the 4.x export configuration of models with a cache."""


class OnnxSeq2SeqConfigWithPast(OnnxConfigWithPast):
    """Stand-in for the 4.x export configuration of encoder-decoder models with a cache."""


class PatchingSpec(_StandIn):
    """Stand-in for the 4.x description of a function patched during export."""


class FeaturesManager(_StandIn):
    """Stand-in for the 4.x registry of export features."""


def export(*args: Any, **kwargs: Any) -> Any:
    raise RemovedOnnxExportError(_ADVICE)


def validate_model_outputs(*args: Any, **kwargs: Any) -> Any:
    raise RemovedOnnxExportError(_ADVICE)
