"""Legacy slow tokenizers (ChatGLM, Baichuan, InternLM, Qwen-era remote code).

**T1: the base ``__init__`` asks for the vocabulary before the subclass has one (4.34 on).**
Since 4.34, ``PreTrainedTokenizer.__init__`` ends by registering the special
tokens through ``_add_tokens``, which reads ``self.get_vocab()``. Remote
tokenizers written before set their vocabulary fields *after*
``super().__init__()``, so loading them fails with::

    AttributeError: 'ChatGLMTokenizer' object has no attribute 'tokenizer'

(huggingface/transformers#26340, baichuan-inc/Baichuan2#226; on 4.4x the
``except`` around it reports a missing protobuf instead). The shim wraps the
``__init__`` of tokenizer classes defined outside transformers: while it runs,
an ``_add_tokens`` (or, from 5.0, ``_update_total_vocab_size``) call that
fails with ``AttributeError`` because the instance is not built yet is put
aside and replayed, in order, when that ``__init__`` returns. On 5.x the
same failure shows as ``TypeError: 'property' object cannot be interpreted as
an integer`` (Baichuan 2, ChatGLM, CodeGeeX2, InternLM: ``get_vocab()`` runs
``range(self.vocab_size)``, the ``vocab_size`` property fails, and the base
class's ``__getattr__`` returns the property object itself); it is put aside
the same way. Tokenizers whose fields are ready (modern remote code)
never fail there and see no change. Token ids passed in
``added_tokens_decoder`` (tokenizer_config.json) are set by the base class
before any of this and keep their ids.

**T2: ``pad()`` passes ``padding_side=`` to ``_pad`` (4.45 on).**
Legacy tokenizers override ``_pad`` with the old signature and fail with::

    TypeError: ChatGLMTokenizer._pad() got an unexpected keyword argument 'padding_side'

(zai-org/ChatGLM3#1324, zai-org/GLM-4#578). The shim wraps such overrides (a
``_pad`` without ``padding_side`` or ``**kwargs``): the keyword is taken off
and, for the duration of the call, becomes ``self.padding_side``, which is
where the old ``_pad`` read it from.

**T7: ``additional_special_tokens`` is gone (5.0); the list is ``extra_special_tokens``.**
Remote processors and tokenizers (Florence-2's processor, chat templates
with tool tokens) read ``tokenizer.additional_special_tokens`` and
``additional_special_tokens_ids`` and fail with::

    AttributeError: LegacyLMTokenizer has no attribute additional_special_tokens

The shim restores both as properties over the list 5.x keeps (the tokens of
``additional_special_tokens`` in tokenizer_config.json land there); setting
the list sets that list, as the 4.x setter did.

**T11: every ``*_token`` keyword becomes a special token (5.0).**
4.x knew seven named special tokens (``bos_token`` ... ``mask_token``) and
the additional ones; another ``*_token`` keyword of ``tokenizer_config.json``
or ``__init__`` (ChatGLM-6B's ``gmask_token="[gMASK]"`` and
``end_token="</s>"``) was a plain setting. 5.x registers each as a
"model-specific" special token: it is added to the vocabulary where it is
missing (other ids: ``"a[gMASK]b"`` encodes to a new id instead of its
characters), splits text, and ``decode(..., skip_special_tokens=True)`` drops
it (ChatGLM-6B's replies lose ``[gMASK]``, which 4.x kept). Silently. For
tokenizer classes defined outside transformers the shim keeps such keywords
plain settings, as in 4.x; they stay in ``init_kwargs`` and are saved with
the tokenizer as before.

**T12: ``add_bos_token`` / ``add_eos_token`` of tokenizer_config.json ignored (5.0).**
4.x Llama-family fast tokenizers (``LlamaTokenizerFast``, ``CodeLlamaTokenizerFast``,
``GemmaTokenizerFast``, ``CohereTokenizerFast``, ``GPTNeoXTokenizerFast``) rebuilt the
post-processor from these two settings at load, whatever ``tokenizer.json`` said. 5.x drops
both settings when the folder has a ``tokenizer.json`` and keeps that file's post-processor.
Where the two disagree (Phi-3's 2024 files: ``"add_bos_token": true``, a ``tokenizer.json``
template without ``<s>``), text encodes without its BOS token, silently. For a folder whose
``tokenizer_config.json`` names one of those classes and sets either key (5.x never writes
them), the shim rebuilds the post-processor from them, as 4.x did.
"""

from __future__ import annotations

import inspect
import logging
import types
from typing import Any

from hotfix.authoring import Finding, Shims, is_legacy, on_legacy_subclass, takes, wrap_outermost_init

_PENDING = "_hotfix_pending_added_tokens"
_BASE_NAMES = ("PreTrainedTokenizer", "PythonBackend")


def _base(module: types.ModuleType) -> type | None:
    for name in _BASE_NAMES:
        base = vars(module).get(name)
        if isinstance(base, type):
            return base
    return None


def probe_init_order(module: types.ModuleType) -> Finding:
    base = _base(module)
    if base is None:
        return False, f"{module.__name__} defines no PreTrainedTokenizer"
    try:
        source = inspect.getsource(base.__init__)  # type: ignore[misc]
    except (OSError, TypeError):
        return True, "cannot read PreTrainedTokenizer.__init__; assuming it registers tokens at init (4.34+)"
    if "_add_tokens" in source:
        return (
            True,
            "PreTrainedTokenizer.__init__ registers special tokens through get_vocab() before subclasses set up",
        )
    return False, "PreTrainedTokenizer.__init__ does not register tokens"


# Methods the base __init__ calls that read the vocabulary (5.0 added the second).
_DEFERRABLE = ("_add_tokens", "_update_total_vocab_size")


def _defer_when_unbuilt(name: str) -> Any:
    def make(function: Any) -> Any:
        def deferrable(self: Any, *args: Any, **kwargs: Any) -> Any:
            pending = self.__dict__.get(_PENDING)
            if pending is None:
                return function(self, *args, **kwargs)
            try:
                return function(self, *args, **kwargs)
            except (AttributeError, TypeError):
                # The legacy subclass has not set its vocabulary fields yet. From
                # 5.x the tokenizer's __getattr__ answers a property that failed
                # that way with the property object itself, so range(self.vocab_size)
                # raises TypeError. A real error raises again when the call is replayed.
                pending.append((name, args, kwargs))
                return 0

        return deferrable

    return make


def _start_deferring(tokenizer: Any) -> None:
    tokenizer.__dict__[_PENDING] = []


def _replay_deferred(tokenizer: Any, _: None) -> None:
    for name, call_args, call_kwargs in tokenizer.__dict__.pop(_PENDING, []):
        getattr(tokenizer, name)(*call_args, **call_kwargs)


def _wrap_legacy_init(cls: type, shims: Shims) -> None:
    # A legacy subclass of a legacy tokenizer nests: the outermost __init__ replays what was deferred.
    wrap_outermost_init(shims, cls, before=_start_deferring, after=_replay_deferred)


def apply_init_order(module: types.ModuleType, shims: Shims) -> None:
    base = _base(module)
    assert base is not None  # the probe said so
    if "_hotfix_t1" in vars(base):
        return  # reached through another module name for the same class
    shims.set(base, "_hotfix_t1", True)
    for name in _DEFERRABLE:
        if hasattr(base, name):
            shims.replace(base, name, _defer_when_unbuilt(name))
    on_legacy_subclass(shims, base, _wrap_legacy_init)


def probe_pad_padding_side(module: types.ModuleType) -> Finding:
    base = _base(module)
    if base is None:
        return False, f"{module.__name__} defines no PreTrainedTokenizer"
    if takes(getattr(base, "_pad"), "padding_side"):  # noqa: B009
        return True, "pad() passes padding_side= to _pad; legacy overrides do not take it"
    return False, "_pad takes no padding_side"


def _wrap_legacy_pad(cls: type, shims: Shims) -> None:
    own = vars(cls).get("_pad")
    if own is None or takes(own, "padding_side", var_keyword=True, unreadable=True):
        return

    def make(function: Any) -> Any:
        def _pad(self: Any, *args: Any, padding_side: str | None = None, **kwargs: Any) -> Any:
            if padding_side is None or padding_side == getattr(self, "padding_side", None):
                return function(self, *args, **kwargs)
            saved = self.padding_side
            self.padding_side = padding_side
            try:
                return function(self, *args, **kwargs)
            finally:
                self.padding_side = saved

        return _pad

    shims.replace(cls, "_pad", make)


def apply_pad_padding_side(module: types.ModuleType, shims: Shims) -> None:
    base = _base(module)
    assert base is not None
    if "_hotfix_t2" in vars(base):
        return
    shims.set(base, "_hotfix_t2", True)
    on_legacy_subclass(shims, base, _wrap_legacy_pad)


# -- T5: slow tokenizers add [CLS]/[SEP] by default (5.0) ------------------------------

_LEGACY_INPUT_NAMES = ["input_ids", "token_type_ids", "attention_mask"]


def _inherits_default(cls: type, name: str, default_owner: type) -> bool:
    """Whether a legacy class *cls* takes attribute *name* from *default_owner* (the generic base's default).

    A legacy tokenizer built on a concrete transformers tokenizer (a BERT or
    Llama subclass) keeps that tokenizer's own behaviour.
    """
    if not is_legacy(cls.__module__):
        return False
    owner = next((klass for klass in cls.__mro__ if name in vars(klass)), None)
    return owner is default_owner


def probe_special_tokens_pattern(module: types.ModuleType) -> Finding:
    base = _base(module)
    if base is None:
        return False, "no slow tokenizer base class here"
    if "cls_sep" in vars(base)["__init__"].__code__.co_consts:
        return True, "slow tokenizers default to special_tokens_pattern='cls_sep'"
    return False, "slow tokenizers add no special tokens unless asked"


def _legacy_build_inputs(self: Any, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
    """4.x PreTrainedTokenizer.build_inputs_with_special_tokens: no special tokens."""
    return token_ids_0 if token_ids_1 is None else token_ids_0 + token_ids_1


def apply_special_tokens_pattern(module: types.ModuleType, shims: Shims) -> None:
    base = _base(module)
    assert base is not None

    def give(cls: type, shims: Shims) -> None:
        if _inherits_default(cls, "build_inputs_with_special_tokens", base):
            shims.set(cls, "build_inputs_with_special_tokens", _legacy_build_inputs)

    on_legacy_subclass(shims, base, give)


# -- T6: token_type_ids left out of the default model_input_names (5.0) ---------------


def probe_model_input_names(module: types.ModuleType) -> Finding:
    names = getattr(module.PreTrainedTokenizerBase, "model_input_names", None)
    if names is not None and "token_type_ids" not in names:
        return True, f"tokenizers that declare no model_input_names return {names}"
    return False, "the default model_input_names still include token_type_ids"


def apply_model_input_names(module: types.ModuleType, shims: Shims) -> None:
    default_owner = module.PreTrainedTokenizerBase

    def give(cls: type, shims: Shims) -> None:
        if _inherits_default(cls, "model_input_names", default_owner):
            shims.set(cls, "model_input_names", list(_LEGACY_INPUT_NAMES))

    on_legacy_subclass(shims, default_owner, give)


# -- T7: additional_special_tokens became extra_special_tokens (5.0) --------------------

_EXTRA = "_extra_special_tokens"


def _additional_special_tokens(self: Any) -> list[str]:
    return [str(token) for token in self.__dict__.get(_EXTRA, [])]


def _set_additional_special_tokens(self: Any, value: Any) -> None:
    self.__dict__[_EXTRA] = list(value or [])


def _additional_special_tokens_ids(self: Any) -> Any:
    return self.convert_tokens_to_ids(_additional_special_tokens(self))


def probe_additional_special_tokens(module: types.ModuleType) -> Finding:
    base = module.PreTrainedTokenizerBase
    if any("additional_special_tokens" in vars(klass) for klass in base.__mro__):
        return False, "PreTrainedTokenizerBase still has additional_special_tokens"
    try:
        source = inspect.getsource(base.__getattr__)
    except (OSError, TypeError, AttributeError):
        return False, "cannot tell where the tokenizer keeps its extra special tokens"
    if _EXTRA not in source:
        return False, f"the tokenizer does not keep its extra special tokens in {_EXTRA}"
    return True, "additional_special_tokens is gone; the list is extra_special_tokens"


def apply_additional_special_tokens(module: types.ModuleType, shims: Shims) -> None:
    base = module.PreTrainedTokenizerBase
    shims.set(base, "additional_special_tokens", property(_additional_special_tokens, _set_additional_special_tokens))
    shims.set(base, "additional_special_tokens_ids", property(_additional_special_tokens_ids))


# -- T11: *_token keywords become model-specific special tokens (5.0) ----------------------

_MODEL_SPECIFIC = "_set_model_specific_special_tokens"


def probe_named_tokens(module: types.ModuleType) -> Finding:
    base = module.PreTrainedTokenizerBase
    if not callable(getattr(base, _MODEL_SPECIFIC, None)):
        return False, "PreTrainedTokenizerBase has no model-specific special tokens"
    return True, "every *_token keyword of a tokenizer becomes a special token"


def apply_named_tokens(module: types.ModuleType, shims: Shims) -> None:
    standard = frozenset(module.PreTrainedTokenizerBase.SPECIAL_TOKENS_ATTRIBUTES)

    def make(function: Any) -> Any:
        def set_model_specific_special_tokens(self: Any, special_tokens: dict[str, Any]) -> Any:
            if not is_legacy(type(self).__module__):
                return function(self, special_tokens)
            kept = {key: value for key, value in special_tokens.items() if key in standard}
            if len(kept) != len(special_tokens):
                shims.mark_used(f"{type(self).__name__}: {', '.join(sorted(set(special_tokens) - set(kept)))}")
            return function(self, kept) if kept else None

        return set_model_specific_special_tokens

    shims.replace(module.PreTrainedTokenizerBase, _MODEL_SPECIFIC, make)


# -- T12: add_bos_token / add_eos_token of tokenizer_config.json ignored (5.0) ------------

# The 4.x classes whose fast tokenizer rebuilt its post-processor from the two settings, with their
# add_bos_token default (add_eos_token defaulted to False in all of them).
REBUILT_POST_PROCESSOR = {
    "LlamaTokenizer": True, "LlamaTokenizerFast": True, "CodeLlamaTokenizer": True, "CodeLlamaTokenizerFast": True,
    "GemmaTokenizer": True, "GemmaTokenizerFast": True, "CohereTokenizerFast": True, "GPTNeoXTokenizerFast": False,
}  # fmt: skip


def probe_bos_eos_settings(module: types.ModuleType) -> Finding:
    code = getattr(module.PreTrainedTokenizerBase._from_pretrained, "__code__", None)
    if code is not None and "add_bos_token" in code.co_consts:
        return True, "from_pretrained drops add_bos_token and add_eos_token where the folder has a tokenizer.json"
    return False, "from_pretrained passes add_bos_token and add_eos_token on"


def _legacy_bos_eos(files: Any) -> tuple[str, bool, bool] | None:
    """(class, add_bos_token, add_eos_token) as 4.x applied them, for a 4.x tokenizer_config.json; else None."""
    import json

    if not isinstance(files, dict) or not files.get("tokenizer_file") or not files.get("tokenizer_config_file"):
        return None
    try:
        with open(files["tokenizer_config_file"], encoding="utf-8") as handle:
            settings = json.load(handle)
    except (OSError, ValueError):
        return None
    name = settings.get("tokenizer_class") if isinstance(settings, dict) else None
    if name not in REBUILT_POST_PROCESSOR or not ({"add_bos_token", "add_eos_token"} & set(settings)):
        return None
    bos, eos = settings.get("add_bos_token", REBUILT_POST_PROCESSOR[name]), settings.get("add_eos_token", False)
    return (name, bos, eos) if isinstance(bos, bool) and isinstance(eos, bool) else None


def apply_bos_eos_settings(module: types.ModuleType, shims: Shims) -> None:
    def from_pretrained(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        legacy = _legacy_bos_eos(args[0] if args else kwargs.get("resolved_vocab_files"))
        tokenizer = wrapped(*args, **kwargs)
        # Keywords given to from_pretrained win, as they did in 4.x (5.x keeps those).
        if legacy is None or "add_bos_token" in kwargs or "add_eos_token" in kwargs:
            return tokenizer
        name, bos, eos = legacy
        rebuild = getattr(tokenizer, "update_post_processor", None)
        backend = getattr(tokenizer, "_tokenizer", None)
        if not callable(rebuild) or not hasattr(tokenizer, "_add_bos_token") or backend is None:
            return tokenizer
        if (getattr(tokenizer, "add_bos_token", None), getattr(tokenizer, "add_eos_token", None)) != (bos, eos):
            if not shims.marked:
                shims.mark_used(f"tokenizer_config.json of a {name}: add_bos_token={bos}, add_eos_token={eos}")
            kept = (tokenizer._add_bos_token, getattr(tokenizer, "_add_eos_token", False), backend.post_processor)
            object.__setattr__(tokenizer, "_add_bos_token", bos)
            object.__setattr__(tokenizer, "_add_eos_token", eos)
            try:
                rebuild()
            except Exception:  # keep the tokenizer as 5.x loaded it rather than fail its load
                object.__setattr__(tokenizer, "_add_bos_token", kept[0])
                object.__setattr__(tokenizer, "_add_eos_token", kept[1])
                backend.post_processor = kept[2]
                logging.getLogger("hotfix").warning(
                    "t12: the add_bos_token/add_eos_token of %s's tokenizer_config.json could not be applied",
                    name,
                    exc_info=True,
                )
        return tokenizer

    shims.wrap(module.PreTrainedTokenizerBase, "_from_pretrained", from_pretrained)
