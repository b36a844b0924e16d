"""Legacy configuration classes on transformers 5.

**M18: generation defaults are no longer config attributes (5.0).**
Until 4.x every ``PretrainedConfig`` carried the generation defaults
(``max_length=20``, ``num_beams=1``, ``use_cache=True``, ...) as attributes,
and generation parameters passed to ``__init__`` were stored on the config.
transformers 5 pops them from ``**kwargs`` and drops them. Legacy modeling
code reads them while it builds or runs the model::

    AttributeError: 'ChatGLMConfig' object has no attribute 'max_length'

The shim keeps, for configuration classes defined outside transformers, the
generation parameters their ``__init__`` passed to the base class, and gives
them (or else the 4.x default) to *legacy code* that reads a missing one:
modules loaded as remote code (``transformers_modules.*``) and auto-gptq.
transformers itself still sees no generation parameter on the config, so
``save_pretrained`` (which refuses configs carrying them) keeps working and
``config.json`` does not change.

**M28: the 4.x base attributes of every config are gone (5.0).**
4.x ``PretrainedConfig.__init__`` set ``pad_token_id``, ``bos_token_id``,
``eos_token_id``, ``sep_token_id``, ``decoder_start_token_id`` (``None``),
``tie_word_embeddings`` (``True``), ``is_decoder``, ``add_cross_attention``
(``False``), ``pruned_heads`` and the like on every config; 5.x sets only
those a config passes. Legacy modeling code reads them unconditionally
(StableLM-epoch: ``nn.Embedding(config.vocab_size, config.hidden_size,
config.pad_token_id)``) and fails with::

    AttributeError: 'StableLMEpochConfig' object has no attribute 'pad_token_id'

The shim answers legacy readers of a missing one with the 4.x default, the
same way as M18; transformers still sees the attribute missing.

**M19: ``config.rope_scaling`` is an alias of ``rope_parameters`` (5.0).**
A legacy config built with ``rope_scaling=None`` reads back as
``{'rope_theta': 10000.0, 'rope_type': 'default'}``, so Llama-derived remote
code (``if config.rope_scaling is None: ... else: config.rope_scaling["type"]``)
takes the scaled branch and fails with ``KeyError: 'type'``. For legacy config
classes, legacy readers get the 4.x shape: ``None`` for default RoPE, else the
dict with its ``type`` key. The RoPE parameters themselves are not touched:
the same ``rope_theta`` and factor reach the model.

**M34: configuration classes are strict dataclasses (5.4).**
Every attribute assignment on a config is checked against the field's type
annotation (huggingface_hub's ``@strict``). 4.x checked nothing, and
published ``config.json`` files carry values of other types: nomic-bert's
``n_inner: 2048.0`` fails at construction with::

    StrictDataclassFieldValidationError: Validation error for field 'n_inner': ... expected int, got float

For configuration classes defined outside transformers (and not themselves
declared ``@strict``), the shim turns the field validators off, so values
are stored as given, as in 4.x. transformers' own classes, and the class
validators (``validate()``), are unchanged.

**M35: a model type that legacy code registers is now transformers' own (4.40).**
Remote code that registers its configuration class under its model type
(OLMo's ``hf_olmo``: ``AutoConfig.register("olmo", OLMoConfig)``) fails at
import once transformers ships a model of that name::

    ValueError: 'olmo' is already used by a Transformers config, pick another name.

For a registration made by legacy code under a name that transformers itself
maps, the shim leaves transformers' mapping in place and returns, as the
registration did before the name was taken. The remote classes still load
through ``auto_map`` with ``trust_remote_code=True``, as they always did;
transformers' own model of that name keeps its config class.

**M36: Phi-3's 2024 RoPE type ``"su"`` fails transformers' own Phi3Config (5.0-5.24).**
The Phi-3 128k configs of 2024 (Phi-3-mini/small/medium-128k before their
``config.json`` said ``"longrope"``) name their RoPE scaling ``"type": "su"``
beside a top-level ``original_max_position_embeddings``. transformers 5.0-5.24
standardises the RoPE parameters before it renames ``su`` to ``longrope``, so
the pretraining length is never copied into them, and loading such a folder
without remote code fails (``AutoConfig``, ``AutoModelForCausalLM``, and
``AutoTokenizer``, which loads the folder's config for itself)::

    KeyError: "Missing required keys in `rope_parameters` for 'rope_type'='longrope':
    {'original_max_position_embeddings'}"

The shim renames ``su`` to ``longrope`` before the standardisation, as 5.25
does; configs of any other type are untouched.
"""

from __future__ import annotations

import types
from typing import Any

from hotfix.authoring import (
    Finding,
    Shims,
    called_from_legacy,
    called_into_from_legacy,
    is_legacy,
    on_legacy_subclass,
)

# PretrainedConfig._get_global_generation_defaults() of transformers 4.57.
GENERATION_DEFAULTS: dict[str, Any] = {
    "max_length": 20, "min_length": 0, "do_sample": False, "early_stopping": False, "num_beams": 1,
    "num_beam_groups": 1, "diversity_penalty": 0.0, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
    "typical_p": 1.0, "repetition_penalty": 1.0, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "num_return_sequences": 1, "output_scores": False,
    "return_dict_in_generate": False, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "remove_invalid_values": False, "exponential_decay_length_penalty": None, "suppress_tokens": None,
    "begin_suppress_tokens": None,
}  # fmt: skip
# Passed through **kwargs, 4.x stored these on the config and 5.x drops them (use_cache had no default).
KEPT_NAMES = (*GENERATION_DEFAULTS, "use_cache")
_KEPT = "_hotfix_generation_kwargs"
# What PretrainedConfig.__init__ of transformers 4.57 set on every config, beside the generation defaults.
BASE_DEFAULTS: dict[str, Any] = {
    "pad_token_id": None, "bos_token_id": None, "eos_token_id": None, "sep_token_id": None,
    "decoder_start_token_id": None, "tie_word_embeddings": True, "is_decoder": False, "add_cross_attention": False,
    "tie_encoder_decoder": False, "cross_attention_hidden_size": None, "tokenizer_class": None, "prefix": None,
    "task_specific_params": None, "finetuning_task": None, "is_encoder_decoder": False,
}  # fmt: skip
# Which of the two tables legacy readers get (the patches applied in this process).
_ANSWERING = {"generation": False, "base": False}
_MARK: dict[str, Shims] = {}  # table -> the Shims of the applied patch that answers it


def _config_class(module: types.ModuleType) -> type:
    klass = getattr(module, "PreTrainedConfig", None) or module.PretrainedConfig
    assert isinstance(klass, type)
    return klass


def probe_generation_defaults(module: types.ModuleType) -> Finding:
    config = _config_class(module)()
    if hasattr(config, "max_length"):
        return False, "PretrainedConfig still has the generation defaults"
    return True, "PretrainedConfig no longer carries generation defaults; legacy model code reads them"


def _getattr(self: Any, name: str) -> Any:
    if _ANSWERING["generation"] and name in KEPT_NAMES and called_from_legacy():
        if not _MARK["generation"].marked:
            _MARK["generation"].mark_used(f"legacy code read config.{name}")
        kept = self.__dict__.get(_KEPT, {})
        if name in kept:
            return kept[name]
        if name in GENERATION_DEFAULTS:
            return GENERATION_DEFAULTS[name]
    if _ANSWERING["base"] and name in BASE_DEFAULTS and called_from_legacy():
        if not _MARK["base"].marked:
            _MARK["base"].mark_used(f"legacy code read config.{name}")
        value = BASE_DEFAULTS[name]
        return dict(value) if isinstance(value, dict) else value
    raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


def _adapt(cls: type, shims: Shims) -> None:
    if "__getattr__" not in vars(cls) and not any("__getattr__" in vars(b) for b in cls.__mro__[1:-1]
                                                   if is_legacy(b.__module__)):  # fmt: skip
        shims.set(cls, "__getattr__", _getattr)


def _answer(table: str, shims: Shims) -> None:
    """Make legacy readers get *table*'s defaults until the patch is reverted."""
    _ANSWERING[table] = True
    _MARK[table] = shims

    def undo() -> None:
        _ANSWERING[table] = False
        _MARK.pop(table, None)

    shims.record(f"legacy config readers get the 4.x {table} defaults", undo)


def apply_generation_defaults(module: types.ModuleType, shims: Shims) -> None:
    base = _config_class(module)
    _answer("generation", shims)

    def make(function: Any) -> Any:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            if is_legacy(type(self).__module__):
                kept = {k: kwargs[k] for k in KEPT_NAMES if k in kwargs}
                if kept:
                    self.__dict__.setdefault(_KEPT, {}).update(kept)
            function(self, *args, **kwargs)

        return __init__

    shims.replace(base, "__init__", make)
    on_legacy_subclass(shims, base, _adapt)


# -- M28: the 4.x base attributes (token ids, tie_word_embeddings, ...) are gone (5.0) --


def probe_base_defaults(module: types.ModuleType) -> Finding:
    config = _config_class(module)()
    missing = [name for name in ("pad_token_id", "tie_word_embeddings", "is_decoder") if not hasattr(config, name)]
    if missing:
        return True, f"a config no longer has the 4.x base attributes ({', '.join(missing)}, ...) unless passed"
    return False, "PretrainedConfig still sets the 4.x base attributes"


def apply_base_defaults(module: types.ModuleType, shims: Shims) -> None:
    _answer("base", shims)
    on_legacy_subclass(shims, _config_class(module), _adapt)


# -- M19: rope_scaling reads back as the standardized rope_parameters (5.0) ----------


def probe_rope_scaling(module: types.ModuleType) -> Finding:
    if isinstance(vars(_config_class(module)).get("rope_scaling"), property):
        return True, "PretrainedConfig.rope_scaling is an alias of the standardized rope_parameters"
    return False, "rope_scaling is a plain attribute"


def _getattribute_frame(frame: types.FrameType) -> bool:
    # PretrainedConfig.__getattribute__ (attribute_map) runs the property from its own frame.
    return frame.f_code.co_name == "__getattribute__"


def _legacy_shape(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    kind = value.get("type", value.get("rope_type"))
    if kind in (None, "default"):
        return None
    shaped = {k: v for k, v in value.items() if k not in ("rope_theta", "rope_type")}
    shaped["type"] = kind
    return shaped


def apply_rope_scaling(module: types.ModuleType, shims: Shims) -> None:
    base = _config_class(module)
    upstream = vars(base)["rope_scaling"]

    def getter(self: Any) -> Any:
        value = upstream.fget(self)
        return _legacy_shape(value) if called_from_legacy(through=_getattribute_frame) else value

    def setter(self: Any, value: Any) -> None:
        upstream.fset(self, value)

    legacy_property = property(getter, setter, doc="rope_scaling, in the 4.x shape for legacy readers (hotfix M19)")

    def adapt(cls: type, class_shims: Shims) -> None:
        if "rope_scaling" not in vars(cls):
            class_shims.set(cls, "rope_scaling", legacy_property)

    on_legacy_subclass(shims, base, adapt)


# -- M34: config fields are type-checked on assignment (5.4) ---------------------------


def probe_field_types(module: types.ModuleType) -> Finding:
    # huggingface_hub's @strict keeps each field's validators in __validators__; transformers' model configs
    # (GPT2Config, LlamaConfig, ...) are declared @strict on top of PreTrainedConfig.
    if not isinstance(getattr(_config_class(module), "__validators__", None), dict):
        return False, "config attributes are not validated on assignment"
    return True, "config classes are strict dataclasses: fields are type-checked on assignment"


def _unvalidated(cls: type, shims: Shims) -> None:
    if "__validators__" not in vars(cls):  # a class that declares @strict itself keeps its checks
        shims.set(cls, "__validators__", {}, count=False)


def apply_field_types(module: types.ModuleType, shims: Shims) -> None:
    on_legacy_subclass(shims, _config_class(module), _unvalidated)


# -- M35: legacy code registers a model type transformers now ships (4.40) -----------

# Model types that published remote code registers with AutoConfig.register and that a later transformers
# release took for a model of its own (the release in the comment).
REGISTERED_BY_LEGACY_CODE = ("olmo",)  # 4.40: allenai's hf_olmo (OLMo-1B/7B before the -hf repositories)


def probe_taken_model_types(module: types.ModuleType) -> Finding:
    own = getattr(module, "CONFIG_MAPPING_NAMES", {})
    taken = [name for name in REGISTERED_BY_LEGACY_CODE if name in own]
    if taken:
        return True, f"transformers maps {', '.join(taken)} itself: legacy code registering it fails"
    return False, "no model type that legacy code registers is taken by transformers"


def apply_taken_model_types(module: types.ModuleType, shims: Shims) -> None:
    own = module.CONFIG_MAPPING_NAMES

    def register(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = args[0] if args else kwargs.get("key")
        exist_ok = args[2] if len(args) > 2 else kwargs.get("exist_ok", False)
        if key in own and not exist_ok and called_into_from_legacy("transformers"):
            shims.mark_used(f"AutoConfig.register({key!r}) by legacy code: transformers keeps its own {key!r}")
            return None
        return wrapped(*args, **kwargs)

    shims.wrap(type(module.CONFIG_MAPPING), "register", register)


# -- M36: Phi-3's 2024 RoPE type "su" (5.0-5.24) -------------------------------------

_SU = "su"
_SU_PROBE = {
    "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1, "max_position_embeddings": 64,
    "original_max_position_embeddings": 32, "rope_scaling": {"type": _SU, "short_factor": [1.0] * 4,
                                                             "long_factor": [1.0] * 4},
}  # fmt: skip


def _names_su(parameters: Any) -> bool:
    return isinstance(parameters, dict) and _SU in (parameters.get("type"), parameters.get("rope_type"))


def _as_longrope(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: "longrope" if k in ("type", "rope_type") and v == _SU else v for k, v in parameters.items()}


def probe_su_rope_type(module: types.ModuleType) -> Finding:
    try:
        module.Phi3Config(**_SU_PROBE)
    except KeyError as error:
        return True, f"Phi3Config rejects the 2024 RoPE type 'su': {error}"
    return False, "Phi3Config accepts the RoPE type 'su'"


def apply_su_rope_type(module: types.ModuleType, shims: Shims) -> None:
    def convert(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _names_su(kwargs.get("rope_scaling")):
            kwargs = {**kwargs, "rope_scaling": _as_longrope(kwargs["rope_scaling"])}
        elif _names_su(getattr(instance, "rope_parameters", None)):
            instance.rope_parameters = _as_longrope(instance.rope_parameters)
        else:
            return wrapped(*args, **kwargs)
        if not shims.marked:
            shims.mark_used(f"{type(instance).__name__} with the RoPE type 'su', read as 'longrope'")
        return wrapped(*args, **kwargs)

    shims.wrap(module.Phi3Config, "convert_rope_params_to_dict", convert)
