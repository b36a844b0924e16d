"""Loading the tokenizers of remote-code folders (InternLM2, InternLM2.5 fast tokenizers; vendored MPT folders).

**T8: transformers 5 no longer converts the slow tokenizer (5.0 on).**
In 4.x a ``PreTrainedTokenizerFast`` subclass with a ``slow_tokenizer_class``
and no ``tokenizer.json`` was built by instantiating the slow tokenizer and
running the converter registered in ``SLOW_TO_FAST_CONVERTERS`` under the
slow class's name; remote code registers its own there
(``SLOW_TO_FAST_CONVERTERS["InternLM2Tokenizer"] = InternLM2Converter``).
5.x reads ``tokenizer.model`` itself: it looks a converter up under the
*fast* class's name and only uses one with the new ``convert_from_spm``
API, so the remote converter never runs. Without protobuf the SentencePiece
extraction fails and its tiktoken fallback reads the binary model as text::

    ValueError: Error parsing line b'\\x0e' in .../tokenizer.model

With protobuf the tokenizer loads and splits text differently from the
model's own SentencePiece (silently other token ids). The shim restores the
4.x construction for remote fast classes whose slow class has a converter
that legacy code registered: ``convert_to_native_format`` leaves their
arguments as they are, and ``__init__`` builds the slow tokenizer from the
arguments the subclass passes up and hands the converter's result over as
``tokenizer_object``, as 4.x did. A ``tokenizer.json`` still wins.

**T9: ``SentencePieceExtractor`` changed its API (5.0 on).**
4.x: ``SentencePieceExtractor(path).extract(vocab_scores=None)`` returned
``(vocab, merges)`` and needed only sentencepiece. 5.x: ``extract(model_type,
**kwargs)`` returns keyword arguments, and the constructor needs protobuf.
Legacy converters call the old form and fail with::

    AttributeError: 'list' object has no attribute '__name__'

The shim answers the old call forms (no argument, ``vocab_scores=``, or a
list or mapping of scores first) with the 4.x result, from the model read
with sentencepiece; 5.x's own calls (a model type or ``None`` first) are
unchanged. A legacy caller without protobuf gets the sentencepiece-only
extractor 4.x had.

**T10: ``AutoTokenizer`` validates the folder's model config (5.4 on).**
4.x read only ``tokenizer_config.json`` when it names the tokenizer class.
5.x first loads ``config.json`` through ``AutoConfig`` (falling back to a
plain config on ``ValueError``/``OSError``), and since 5.4 the config classes
are strict: a folder written for remote code whose ``model_type`` is also a
transformers model, loaded without ``trust_remote_code`` (a vendored
Replit/MPT folder: ``attn_config.attn_type = "grouped_query_attention"``),
fails in transformers' own ``MptConfig`` with::

    StrictDataclassFieldValidationError: Validation error for field 'attn_type': ...

which the fallback does not catch (it is no ``ValueError``). The shim takes
that fallback for it: when the config that ``AutoTokenizer.from_pretrained``
loads for itself fails validation, the call is made again with the plain
``PreTrainedConfig`` of the folder, which is what the tokenizer needs from it.
"""

from __future__ import annotations

import os
import types
from typing import Any

from hotfix.authoring import Finding, Shims, called_from_legacy, is_legacy, takes

_NATIVE = "convert_to_native_format"


def _legacy_converter(cls: Any) -> Any:
    """The converter legacy code registered for *cls*'s slow tokenizer, when *cls* is a legacy fast class."""
    if not isinstance(cls, type) or not is_legacy(cls.__module__):
        return None
    slow = getattr(cls, "slow_tokenizer_class", None)
    if not isinstance(slow, type):
        return None
    from transformers.convert_slow_tokenizer import SLOW_TO_FAST_CONVERTERS

    converter = SLOW_TO_FAST_CONVERTERS.get(slow.__name__)
    if converter is None or not is_legacy(getattr(converter, "__module__", "")):
        return None
    return converter


def probe_slow_conversion(module: types.ModuleType) -> Finding:
    backend = vars(module).get("TokenizersBackend")
    if not isinstance(backend, type) or _NATIVE not in vars(backend):
        return False, "no TokenizersBackend.convert_to_native_format: fast tokenizers convert their slow tokenizer"
    return True, "fast tokenizers read tokenizer.model themselves; a converter of remote code is ignored"


def _native_format(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if _legacy_converter(instance) is None:
        return wrapped(*args, **kwargs)
    tokenizer_file = kwargs.get("tokenizer_file")
    if isinstance(tokenizer_file, str) and os.path.isfile(tokenizer_file):
        return wrapped(*args, **kwargs)
    local = dict(kwargs)
    local.pop("trust_remote_code", None)
    local.pop("tokenizer_file", None)
    return local


# What 4.x's PreTrainedTokenizerFast.__init__ took off before it built the slow tokenizer.
_FAST_ONLY = frozenset(
    {"tokenizer_object", "__slow_tokenizer", "gguf_file", "tokenizer_file", "from_slow", "added_tokens_decoder"}
)


def _convert_slow(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    converter = _legacy_converter(type(instance))
    if converter is not None and kwargs.get("tokenizer_object") is None and not kwargs.get("tokenizer_file"):
        slow_kwargs = {key: value for key, value in kwargs.items() if key not in _FAST_ONLY}
        slow = type(instance).slow_tokenizer_class(*args, **slow_kwargs)
        kwargs = {**kwargs, "tokenizer_object": converter(slow).converted()}
    return wrapped(*args, **kwargs)


def apply_slow_conversion(module: types.ModuleType, shims: Shims) -> None:
    backend = module.TokenizersBackend
    shims.wrap(backend, _NATIVE, _native_format)
    shims.wrap(backend, "__init__", _convert_slow)


def probe_extractor_api(module: types.ModuleType) -> Finding:
    extractor: Any = vars(module).get("SentencePieceExtractor")
    if not isinstance(extractor, type) or "extract" not in vars(extractor):
        return False, "no SentencePieceExtractor.extract"
    if not takes(vars(extractor)["extract"], "model_type"):
        return False, "SentencePieceExtractor.extract takes vocab_scores (the 4.x API)"
    return True, "SentencePieceExtractor.extract takes model_type and returns keyword arguments"


def _legacy_form(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if "model_type" in kwargs:
        return False
    if not args:
        return set(kwargs) <= {"vocab_scores"}
    return not kwargs and len(args) == 1 and isinstance(args[0], (list, tuple, dict))


def apply_extractor_api(module: types.ModuleType, shims: Shims) -> None:
    extractor = module.SentencePieceExtractor
    generate_merges = module.generate_merges

    def extract(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not _legacy_form(args, kwargs):
            return wrapped(*args, **kwargs)
        shims.mark_used("SentencePieceExtractor.extract(vocab_scores)")
        processor = instance.__dict__.get("sp")
        if processor is not None:
            vocab = {processor.id_to_piece(index): index for index in range(processor.GetPieceSize())}
        else:
            vocab = {piece.piece: index for index, piece in enumerate(instance.proto.pieces)}
        vocab_scores = args[0] if args else kwargs.get("vocab_scores")
        return vocab, generate_merges(vocab, vocab_scores)

    def construct(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return wrapped(*args, **kwargs)
        except ImportError:
            if not called_from_legacy():
                raise
        # 4.x's extractor: sentencepiece alone (5.x also wants protobuf for the model's proto).
        from sentencepiece import SentencePieceProcessor

        model = args[0] if args else kwargs["model"]
        processor = SentencePieceProcessor()
        processor.Load(model)
        instance.sp = processor
        return None

    shims.wrap(extractor, "extract", extract)
    shims.wrap(extractor, "__init__", construct)


# -- T10: AutoTokenizer loads a strict config it does not need (5.4) ---------------------

_HUB_KEYWORDS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


def _validation_error(module: types.ModuleType) -> Any:
    try:
        import huggingface_hub.errors as errors
    except ImportError:
        return None
    error = getattr(errors, "StrictDataclassError", None)
    return error if isinstance(error, type) and not issubclass(error, ValueError) else None


def probe_tokenizer_config(module: types.ModuleType) -> Finding:
    import transformers.configuration_utils as configuration

    base = getattr(configuration, "PreTrainedConfig", None)
    if not isinstance(getattr(base, "__validators__", None), dict):
        return False, "configs are not validated: a folder's config.json always loads"
    if _validation_error(module) is None:
        return False, "a config that fails validation raises a ValueError, which AutoTokenizer falls back from"
    return True, "AutoTokenizer loads the folder's config strictly and does not fall back when it fails validation"


def _while_loading_config(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_globals.get("__name__") == "transformers.models.auto.configuration_auto":
            return True
        frame = frame.tb_next
    return False


def apply_tokenizer_config(module: types.ModuleType, shims: Shims) -> None:
    invalid = _validation_error(module)
    from transformers.configuration_utils import PreTrainedConfig

    def from_pretrained(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return wrapped(*args, **kwargs)
        except invalid as error:
            if kwargs.get("config") is not None or not args or not _while_loading_config(error):
                raise
        shims.mark_used("AutoTokenizer.from_pretrained with a config.json that fails validation")
        hub = {key: kwargs[key] for key in _HUB_KEYWORDS if key in kwargs}
        return wrapped(*args, **{**kwargs, "config": PreTrainedConfig.from_pretrained(args[0], **hub)})

    shims.wrap(module.AutoTokenizer, "from_pretrained", from_pretrained)
