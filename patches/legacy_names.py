"""Names that transformers removed and legacy code imports, restored where a sound equivalent exists.

* ``*_INPUTS_DOCSTRING`` / ``*_START_DOCSTRING`` (removed in 4.52 with the
  ``auto_docstring`` rework): remote code imports them only to decorate its
  own classes; restored as empty strings.
* The same constants of the other models remote code copies or builds on
  (Mistral, Qwen2, Gemma, Phi-3, BERT, RoBERTa, GPT-2, T5, CLIP, ...; GPT-2's,
  GPT-J's and T5's ``PARALLELIZE_DOCSTRING`` too): ``m13-model-docstrings``
  restores, in each module of ``MODEL_DOCSTRINGS`` that transformers imports,
  those of its 4.51 names that are missing, as empty strings.
* ``LlamaFlashAttention2`` / ``LlamaSdpaAttention`` / ``LLAMA_ATTENTION_CLASSES``
  (removed in 4.48: one ``LlamaAttention`` dispatches on
  ``config._attn_implementation``): aliases of ``LlamaAttention``. Sound for
  code that imports them or instantiates them with the model's config; a
  subclass that overrides the old ``forward`` contract is not repaired.
* ``LlamaLinearScalingRotaryEmbedding`` / ``LlamaDynamicNTKScalingRotaryEmbedding``
  (removed in 4.48: ``LlamaRotaryEmbedding(config)`` reads the scaling from
  ``config.rope_scaling``): the import works, constructing one raises an error
  that says what to use instead; the old ``(dim, max_position_embeddings,
  base, device, scaling_factor)`` contract cannot be served by the new class.
* ``AdamW`` (removed in 4.50/4.51): restored with the 4.x update rule (eps
  added to the uncorrected ``sqrt(v)``, optional ``correct_bias``, decoupled
  weight decay), which ``torch.optim.AdamW`` does not reproduce exactly.
* ``LogitsWarper`` (removed in 4.49): alias of ``LogitsProcessor``, the same
  ``__call__(input_ids, scores)`` contract.
* ``GenerationMixin._get_logits_warper`` (removed in 4.45, when warpers moved
  into the processor list that ``_get_logits_processor`` builds): restored
  returning an empty ``LogitsProcessorList``, so that legacy sampling loops do
  not apply temperature / top-k / top-p a second time.
* ``top_k_top_p_filtering`` (``transformers``, ``transformers.generation``
  and ``transformers.generation.utils``, removed in 4.39): sampling loops of
  2020-2023 code (taming-transformers' minGPT, early TRL, chat demos) import
  it. Restored with the 4.x behaviour: top-k, then nucleus filtering, with
  the ``TopKLogitsWarper`` and ``TopPLogitsWarper`` of the installed version.
* ``DisjunctiveConstraint`` and the other constrained-beam-search classes
  (removed in 5.0, ``BeamSearchScorer`` in 4.56): importable stand-ins whose
  construction raises an error naming the removal. Legacy helpers (e.g.
  ``transformers_stream_generator``) import them at module level and most
  callers never use them.
* ``SampleOutput``, ``GreedySearchDecoderOnlyOutput`` and the other
  per-strategy output names of ``transformers.generation.utils`` (deprecated
  aliases since 4.42, removed in 5.0): ``transformers_stream_generator`` 0.0.5,
  which every Qwen v1 checkpoint lists in its code (and transformers'
  ``check_imports`` imports), imports ``SampleOutput`` at module level and
  fails with ``ImportError: cannot import name 'SampleOutput' from
  'transformers.generation.utils'``. Restored as the aliases 4.x had: the
  ``Generate*Output`` classes and ``Union`` types of them.
* ``find_pruneable_heads_and_indices`` (``transformers.pytorch_utils``,
  removed in 5.0 with head pruning) and ``is_torch_sdpa_available``
  (``transformers.utils``, removed in 5.0: SDPA is always there with the torch
  5.x requires): BERT-style remote encoders import both at module level.
  Restored with the 4.x behaviour.
* ``transformers.onnx`` (removed in 5.0; export moved to optimum): remote
  configuration files subclass ``OnnxConfig`` to describe their inputs. The
  provided module holds importable, subclassable stand-ins; exporting with
  them raises an error naming optimum.
* ``apply_chunking_to_forward``, ``find_pruneable_heads_and_indices``,
  ``prune_linear_layer``, ``prune_conv1d_layer`` and ``Conv1D`` under
  ``transformers.modeling_utils`` (re-exports of ``transformers.pytorch_utils``
  that 4.56 dropped): encoder and GPT-2-style code written before 4.20, when
  they lived in ``modeling_utils``, still imports them from there. Aliased to
  the ``pytorch_utils`` objects, or restored with the 4.x behaviour where 5.0
  removed those too (``prune_conv1d_layer``, ``find_pruneable_heads_and_indices``).
  ``SequenceSummary`` (the same file's config-driven pooling head, removed in
  4.53 for a copy per model such as ``GPT2SequenceSummary``) is restored as a
  class of the same behaviour, built when the patch applies (after
  ``modeling_utils`` has imported torch and ``transformers.activations``) so that importing
  ``modeling_utils`` imports no model module.
* ``shard_checkpoint`` (removed in 4.47): restored over
  ``huggingface_hub.split_torch_state_dict_into_shards`` with the 4.x return
  value ``(shards, index)``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from hotfix.authoring import Finding, Shims, lists_name

EMPTY_DOCSTRING = ""


class RemovedUpstreamError(ImportError):
    """A legacy name hotfix can import but not run: upstream removed what it did."""


def _stand_in(name: str, removed_in: str, advice: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RemovedUpstreamError(
            f"{name} was removed from transformers in {removed_in}; hotfix lets legacy code import it but cannot "
            f"run it. {advice} (see hotfix docs/patches.md)"
        )

    return type(name, (), {"__init__": __init__, "__doc__": f"Removed in transformers {removed_in}: {advice}"})


_CONSTRAINED = "Constrained beam search is gone from transformers 5; drop the constraint or pin transformers < 5."
DisjunctiveConstraint = _stand_in("DisjunctiveConstraint", "5.0", _CONSTRAINED)
PhrasalConstraint = _stand_in("PhrasalConstraint", "5.0", _CONSTRAINED)
Constraint = _stand_in("Constraint", "5.0", _CONSTRAINED)
ConstraintListState = _stand_in("ConstraintListState", "5.0", _CONSTRAINED)
ConstrainedBeamSearchScorer = _stand_in("ConstrainedBeamSearchScorer", "5.0", _CONSTRAINED)
BeamScorer = _stand_in("BeamScorer", "4.56", "Beam search runs inside generate(num_beams=...) now.")
BeamSearchScorer = _stand_in("BeamSearchScorer", "4.56", "Beam search runs inside generate(num_beams=...) now.")
_ROPE = (
    "Build LlamaRotaryEmbedding(config) with config.rope_scaling = {'rope_type': 'linear' | 'dynamic', 'factor': f}."
)
LlamaLinearScalingRotaryEmbedding = _stand_in("LlamaLinearScalingRotaryEmbedding", "4.48", _ROPE)
LlamaDynamicNTKScalingRotaryEmbedding = _stand_in("LlamaDynamicNTKScalingRotaryEmbedding", "4.48", _ROPE)


def _adamw() -> type:
    import math

    import torch

    class AdamW(torch.optim.Optimizer):  # type: ignore[misc]  # torch is untyped for mypy here
        """transformers' removed ``AdamW`` (decoupled weight decay, eps added to the uncorrected ``sqrt(v)``).

        Not ``torch.optim.AdamW``: torch adds ``eps`` after the bias
        correction, which moves every step slightly; this keeps the 4.x update.
        """

        def __init__(
            self,
            params: Any,
            lr: float = 1e-3,
            betas: tuple[float, float] = (0.9, 0.999),
            eps: float = 1e-6,
            weight_decay: float = 0.0,
            correct_bias: bool = True,
            no_deprecation_warning: bool = False,
        ) -> None:
            if lr < 0.0 or eps < 0.0 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
                raise ValueError(f"invalid AdamW hyper-parameters: lr={lr}, betas={betas}, eps={eps}")
            defaults = {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "correct_bias": correct_bias,
            }
            super().__init__(params, defaults)

        def step(self, closure: Any = None) -> Any:
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            with torch.no_grad():
                self._update()
            return loss

        def _update(self) -> None:
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for param in group["params"]:
                    if param.grad is None:
                        continue
                    if param.grad.is_sparse:
                        raise RuntimeError("AdamW does not support sparse gradients")
                    state = self.state[param]
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(param)
                        state["exp_avg_sq"] = torch.zeros_like(param)
                    state["step"] += 1
                    mean, square = state["exp_avg"], state["exp_avg_sq"]
                    mean.mul_(beta1).add_(param.grad, alpha=1.0 - beta1)
                    square.mul_(beta2).addcmul_(param.grad, param.grad, value=1.0 - beta2)
                    step_size = group["lr"]
                    if group["correct_bias"]:
                        step_size *= math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                    param.addcdiv_(mean, square.sqrt().add_(group["eps"]), value=-step_size)
                    if group["weight_decay"] > 0.0:
                        param.add_(param, alpha=-group["lr"] * group["weight_decay"])

    AdamW.__module__ = "transformers.optimization"
    return AdamW


_ADAMW: list[type] = []


def probe_adamw(module: types.ModuleType) -> Finding:
    if lists_name(module, "AdamW"):  # a lazy name of transformers counts
        return False, f"{module.__name__}.AdamW exists"
    return True, f"{module.__name__}.AdamW is missing"


def _built_adamw() -> type:
    if not _ADAMW:
        _ADAMW.append(_adamw())
    return _ADAMW[0]


def apply_adamw(module: types.ModuleType, shims: Shims) -> None:
    lazy = type(module)
    if "torch" in sys.modules or lazy is types.ModuleType or not callable(getattr(lazy, "__getattr__", None)):
        shims.restore(module, "AdamW", _built_adamw(), "value")
        return
    # transformers' own top-level module is lazy and does not import torch: neither does this. The class
    # (an Optimizer subclass, so it needs torch) is built on the first ``transformers.AdamW``; a process
    # that only tokenizes never pays for torch.

    class LazyModuleWithAdamW(lazy):  # type: ignore[misc,valid-type]
        def __getattr__(self, name: str) -> Any:
            if name == "AdamW":
                return _built_adamw()
            return super().__getattr__(name)

    LazyModuleWithAdamW.__qualname__ = LazyModuleWithAdamW.__name__ = lazy.__name__
    LazyModuleWithAdamW.__module__ = lazy.__module__
    module.__class__ = LazyModuleWithAdamW

    def undo() -> str | None:
        if type(module) is not LazyModuleWithAdamW:
            return f"{module.__name__}.__class__ was replaced meanwhile: AdamW stays"
        module.__class__ = lazy  # type: ignore[assignment]
        return None

    shims.record(f"{module.__name__}.AdamW (built on first use)", undo)


def get_logits_warper(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Empty: since 4.45 ``_get_logits_processor`` already holds the warpers (temperature, top-k, top-p)."""
    from transformers.generation.logits_process import LogitsProcessorList

    return LogitsProcessorList()


def probe_llama_attention(module: types.ModuleType) -> Finding:
    missing = [
        n for n in ("LlamaFlashAttention2", "LlamaSdpaAttention", "LLAMA_ATTENTION_CLASSES") if n not in vars(module)
    ]
    if not missing:
        return False, "LlamaFlashAttention2, LlamaSdpaAttention and LLAMA_ATTENTION_CLASSES exist"
    return True, f"{', '.join(missing)} missing; LlamaAttention dispatches on config._attn_implementation"


def apply_llama_attention(module: types.ModuleType, shims: Shims) -> None:
    attention = module.LlamaAttention
    for name in ("LlamaFlashAttention2", "LlamaSdpaAttention"):
        if name not in vars(module):
            shims.alias(module, name, attention)
    if "LLAMA_ATTENTION_CLASSES" not in vars(module):
        classes = {"eager": attention, "flash_attention_2": attention, "sdpa": attention}
        shims.restore(module, "LLAMA_ATTENTION_CLASSES", classes, "value")
    for stand_in in (LlamaLinearScalingRotaryEmbedding, LlamaDynamicNTKScalingRotaryEmbedding):
        if stand_in.__name__ not in vars(module):
            shims.restore(module, stand_in.__name__, stand_in, "value")


def shard_checkpoint(
    state_dict: dict[str, Any], max_shard_size: int | str = "10GB", weights_name: str = "pytorch_model.bin"
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """The 4.x ``shard_checkpoint``: ``({file: state_dict}, index or None)``."""
    from huggingface_hub import split_torch_state_dict_into_shards

    stem, _, suffix = weights_name.rpartition(".")
    pattern = stem + "{suffix}." + suffix
    split = split_torch_state_dict_into_shards(state_dict, filename_pattern=pattern, max_shard_size=max_shard_size)
    shards = {file: {name: state_dict[name] for name in names} for file, names in split.filename_to_tensors.items()}
    if not split.is_sharded:
        return {weights_name: dict(state_dict)}, None
    index = {"metadata": dict(split.metadata), "weight_map": dict(split.tensor_to_filename)}
    return shards, index


# -- G14: per-strategy generate() output names (aliases until 4.57, removed in 5.0) --

_OUTPUT_ALIASES = {
    "decoder": ("GreedySearch", "Sample", "ContrastiveSearch"),
    "beam": ("BeamSearch", "BeamSample"),
}


def _output_aliases(module: types.ModuleType) -> dict[str, Any]:
    from typing import Union

    plain = (vars(module)["GenerateDecoderOnlyOutput"], vars(module)["GenerateEncoderDecoderOutput"])
    beam = (vars(module)["GenerateBeamDecoderOnlyOutput"], vars(module)["GenerateBeamEncoderDecoderOutput"])
    aliases: dict[str, Any] = {}
    for kind, prefixes in _OUTPUT_ALIASES.items():
        decoder_only, encoder_decoder = plain if kind == "decoder" else beam
        for prefix in prefixes:
            aliases[f"{prefix}DecoderOnlyOutput"] = decoder_only
            aliases[f"{prefix}EncoderDecoderOutput"] = encoder_decoder
            aliases[f"{prefix}Output"] = Union[encoder_decoder, decoder_only]  # noqa: UP007 - the 4.x alias
    return aliases


def probe_output_aliases(module: types.ModuleType) -> Finding:
    missing = [name for name in ("SampleOutput", "GreedySearchDecoderOnlyOutput") if name not in vars(module)]
    if not missing:
        return False, "the per-strategy output names are still there"
    needed = ("GenerateDecoderOnlyOutput", "GenerateEncoderDecoderOutput", "GenerateBeamDecoderOnlyOutput",
              "GenerateBeamEncoderDecoderOutput")  # fmt: skip
    absent = [name for name in needed if name not in vars(module)]
    if absent:
        return False, f"{', '.join(missing)} missing, but so is {absent[0]}: nothing sound to alias them to"
    return True, f"{', '.join(missing)} and the other per-strategy output names are gone"


def apply_output_aliases(module: types.ModuleType, shims: Shims) -> None:
    for name, value in _output_aliases(module).items():
        if name not in vars(module):
            shims.restore(module, name, value)


# -- M30 / M31: BERT-style encoder helpers removed in 5.0 -------------------------------


def find_pruneable_heads_and_indices(
    heads: Any, n_heads: int, head_size: int, already_pruned_heads: Any
) -> tuple[set[int], Any]:
    """The heads left to prune and the indices of the rows to keep (4.x ``pytorch_utils``)."""
    import torch

    mask = torch.ones(n_heads, head_size)
    pruned = set(heads) - set(already_pruned_heads)
    for head in pruned:
        mask[head - sum(1 if h < head else 0 for h in already_pruned_heads)] = 0
    keep = mask.view(-1).contiguous().eq(1)
    return pruned, torch.arange(len(keep))[keep].long()


def is_torch_sdpa_available() -> bool:
    """4.x: SDPA is there whenever torch is (every torch that transformers 5 supports has it)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# -- M37 / M38: GPT-2-style helpers no longer importable where legacy code looks ---------


def prune_conv1d_layer(layer: Any, index: Any, dim: int = 1) -> Any:
    """A new ``Conv1D`` holding only the *index* entries of *layer* along *dim* (4.x ``pytorch_utils``).

    ``Conv1D`` keeps its weight as ``(in_features, out_features)``, the transpose
    of ``nn.Linear``: ``dim=1`` keeps output features (and their bias entries),
    ``dim=0`` keeps input features (the bias is unchanged).
    """
    import torch
    from transformers.pytorch_utils import Conv1D

    index = index.to(layer.weight.device)
    weight = layer.weight.index_select(dim, index).detach().clone()
    bias = layer.bias.detach().clone() if dim == 0 else layer.bias[index].detach().clone()
    rows, columns = weight.shape
    pruned = Conv1D(columns, rows).to(layer.weight.device)
    with torch.no_grad():
        pruned.weight.copy_(weight.contiguous())
        pruned.bias.copy_(bias.contiguous())
    pruned.weight.requires_grad = True
    pruned.bias.requires_grad = True
    return pruned


def _sequence_summary() -> type:
    """``SequenceSummary`` as 4.x ``modeling_utils`` had it: one vector per sequence, as the config says."""
    import torch
    from torch import nn
    from transformers.activations import get_activation

    class SequenceSummary(nn.Module):  # type: ignore[misc]  # torch is untyped for mypy here
        """Summarise ``hidden_states`` (batch, [..., ] seq, hidden) along the sequence.

        ``config.summary_type``: ``last`` (default), ``first``, ``mean`` or
        ``cls_index`` (the token at ``cls_index``, the last one when it is not
        given); then optional dropout, projection (to ``num_labels`` with
        ``summary_proj_to_labels``), activation and dropout. ``attn`` was never
        implemented.
        """

        def __init__(self, config: Any) -> None:
            super().__init__()
            self.summary_type = getattr(config, "summary_type", "last")
            if self.summary_type == "attn":
                raise NotImplementedError
            self.summary: nn.Module = nn.Identity()
            if getattr(config, "summary_use_proj", False):
                to_labels = getattr(config, "summary_proj_to_labels", False) and config.num_labels > 0
                self.summary = nn.Linear(config.hidden_size, config.num_labels if to_labels else config.hidden_size)
            activation = getattr(config, "summary_activation", None)
            self.activation: Any = get_activation(activation) if activation else nn.Identity()
            first = getattr(config, "summary_first_dropout", 0) or 0
            last = getattr(config, "summary_last_dropout", 0) or 0
            self.first_dropout: nn.Module = nn.Dropout(first) if first > 0 else nn.Identity()
            self.last_dropout: nn.Module = nn.Dropout(last) if last > 0 else nn.Identity()

        def forward(self, hidden_states: Any, cls_index: Any = None) -> Any:
            if self.summary_type == "last":
                output = hidden_states[:, -1]
            elif self.summary_type == "first":
                output = hidden_states[:, 0]
            elif self.summary_type == "mean":
                output = hidden_states.mean(dim=1)
            elif self.summary_type == "cls_index":
                if cls_index is None:
                    where = torch.full_like(hidden_states[..., :1, :], hidden_states.shape[-2] - 1, dtype=torch.long)
                else:
                    where = cls_index.unsqueeze(-1).unsqueeze(-1)
                    where = where.expand((-1,) * (where.dim() - 1) + (hidden_states.size(-1),))
                output = hidden_states.gather(-2, where).squeeze(-2)
            else:
                raise NotImplementedError(f"summary_type {self.summary_type!r}")
            return self.last_dropout(self.activation(self.summary(self.first_dropout(output))))

    SequenceSummary.__module__ = "transformers.modeling_utils"
    return SequenceSummary


_BUILT: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """Classes that need torch, built when a patch first resolves them (after transformers imported torch)."""
    if name == "SequenceSummary":
        if name not in _BUILT:
            _BUILT[name] = _sequence_summary()
        return _BUILT[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- M13: the docstring constants of the other models (4.51's names, module by module) ----------


def _encoder_decoder(prefix: str) -> tuple[str, ...]:
    """T5's and mT5's: the parallelize pair, and the start, inputs and encoder-inputs docstrings."""
    names = ("START_DOCSTRING", "INPUTS_DOCSTRING", "ENCODER_INPUTS_DOCSTRING")
    return ("PARALLELIZE_DOCSTRING", "DEPARALLELIZE_DOCSTRING", *(f"{prefix}_{name}" for name in names))


def _text_and_vision(prefix: str) -> tuple[str, ...]:
    """CLIP's and SigLIP's: the start docstring and the text, vision and joint inputs docstrings."""
    names = ("START_DOCSTRING", "TEXT_INPUTS_DOCSTRING", "VISION_INPUTS_DOCSTRING", "INPUTS_DOCSTRING")
    return tuple(f"{prefix}_{name}" for name in names)


MODEL_DOCSTRINGS: dict[str, tuple[str, ...]] = {
    "mistral": ("MISTRAL_START_DOCSTRING", "MISTRAL_INPUTS_DOCSTRING"),
    "qwen2": ("QWEN2_START_DOCSTRING", "QWEN2_INPUTS_DOCSTRING"),
    "gemma": ("GEMMA_START_DOCSTRING", "GEMMA_INPUTS_DOCSTRING"),
    "gemma2": ("GEMMA2_START_DOCSTRING", "GEMMA2_INPUTS_DOCSTRING"),
    "phi3": ("PHI3_START_DOCSTRING", "PHI3_INPUTS_DOCSTRING"),
    "phi": ("PHI_START_DOCSTRING", "PHI_INPUTS_DOCSTRING"),
    "bert": ("BERT_START_DOCSTRING", "BERT_INPUTS_DOCSTRING"),
    "roberta": ("ROBERTA_START_DOCSTRING", "ROBERTA_INPUTS_DOCSTRING"),
    "xlm_roberta": ("XLM_ROBERTA_START_DOCSTRING", "XLM_ROBERTA_INPUTS_DOCSTRING"),
    "gpt2": ("GPT2_START_DOCSTRING", "GPT2_INPUTS_DOCSTRING", "PARALLELIZE_DOCSTRING", "DEPARALLELIZE_DOCSTRING"),
    "t5": _encoder_decoder("T5"),
    "mixtral": ("MIXTRAL_START_DOCSTRING", "MIXTRAL_INPUTS_DOCSTRING"),
    "qwen2_moe": ("QWEN2MOE_START_DOCSTRING", "QWEN2MOE_INPUTS_DOCSTRING"),
    "gpt_neox": ("GPT_NEOX_START_DOCSTRING", "GPT_NEOX_INPUTS_DOCSTRING"),
    "falcon": ("FALCON_START_DOCSTRING", "FALCON_INPUTS_DOCSTRING"),
    "starcoder2": ("STARCODER2_START_DOCSTRING", "STARCODER2_INPUTS_DOCSTRING"),
    "cohere": ("COHERE_START_DOCSTRING", "COHERE_INPUTS_DOCSTRING"),
    "stablelm": ("STABLELM_START_DOCSTRING", "STABLELM_INPUTS_DOCSTRING"),
    "mt5": _encoder_decoder("MT5"),
    "deberta_v2": ("DEBERTA_START_DOCSTRING", "DEBERTA_INPUTS_DOCSTRING"),
    "clip": _text_and_vision("CLIP"),
    "siglip": _text_and_vision("SIGLIP"),
    "llava": ("LLAVA_START_DOCSTRING", "LLAVA_INPUTS_DOCSTRING"),
    "qwen2_vl": ("QWEN2VL_START_DOCSTRING", "QWEN2_VL_INPUTS_DOCSTRING"),
    "opt": ("OPT_START_DOCSTRING", "OPT_INPUTS_DOCSTRING"),
    "bloom": ("BLOOM_START_DOCSTRING", "BLOOM_INPUTS_DOCSTRING"),
    "gptj": ("GPTJ_START_DOCSTRING", "GPTJ_INPUTS_DOCSTRING", "PARALLELIZE_DOCSTRING", "DEPARALLELIZE_DOCSTRING"),
    "gpt_neo": ("GPT_NEO_START_DOCSTRING", "GPT_NEO_INPUTS_DOCSTRING"),
    "codegen": ("CODEGEN_START_DOCSTRING", "CODEGEN_INPUTS_DOCSTRING"),
    "olmo": ("OLMO_START_DOCSTRING", "OLMO_INPUTS_DOCSTRING"),
    "electra": ("ELECTRA_START_DOCSTRING", "ELECTRA_INPUTS_DOCSTRING"),
    "distilbert": ("DISTILBERT_START_DOCSTRING", "DISTILBERT_INPUTS_DOCSTRING"),
    "albert": ("ALBERT_START_DOCSTRING", "ALBERT_INPUTS_DOCSTRING"),
    "bart": ("BART_START_DOCSTRING", "BART_INPUTS_DOCSTRING"),
    "mbart": ("MBART_START_DOCSTRING", "MBART_INPUTS_DOCSTRING"),
    "whisper": ("WHISPER_START_DOCSTRING", "WHISPER_INPUTS_DOCSTRING", "WHISPER_ENCODER_INPUTS_DOCSTRING"),
    "vit": ("VIT_START_DOCSTRING", "VIT_INPUTS_DOCSTRING"),
}


def _docstring_names(module: types.ModuleType) -> tuple[str, ...]:
    short = module.__name__.rpartition(".modeling_")[2]
    return MODEL_DOCSTRINGS.get(short, ())


def probe_model_docstrings(module: types.ModuleType) -> Finding:
    missing = [name for name in _docstring_names(module) if name not in vars(module)]
    if not missing:
        return False, f"{module.__name__} has its docstring constants"
    return True, f"{module.__name__} lost {', '.join(missing)} (4.52, auto_docstring)"


def apply_model_docstrings(module: types.ModuleType, shims: Shims) -> None:
    for name in _docstring_names(module):
        if name not in vars(module) and not lists_name(module, name):
            shims.restore(module, name, EMPTY_DOCSTRING)


# -- M42: top_k_top_p_filtering, removed in 4.39 -----------------------------------------


def top_k_top_p_filtering(
    logits: Any, top_k: int = 0, top_p: float = 1.0, filter_value: float = -float("inf"), min_tokens_to_keep: int = 1
) -> Any:
    """*logits* (batch, vocabulary) with all but the top-k, then all outside the top-p nucleus, set to *filter_value*.

    As 4.x computed it: ``top_k > 0`` keeps at least ``max(top_k, min_tokens_to_keep)``
    tokens; a ``top_p`` in ``[0, 1]`` keeps the smallest set whose probability
    reaches it (at least ``min_tokens_to_keep``); 1.0 keeps every token.
    """
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    if top_k > 0:
        logits = TopKLogitsWarper(top_k=top_k, filter_value=filter_value, min_tokens_to_keep=min_tokens_to_keep)(
            None, logits
        )
    if 0 <= top_p <= 1.0:
        logits = TopPLogitsWarper(top_p=top_p, filter_value=filter_value, min_tokens_to_keep=min_tokens_to_keep)(
            None, logits
        )
    return logits
