"""Attention-mask helpers that transformers removed and legacy modeling code still calls.

* ``_expand_mask`` / ``_make_causal_mask`` (module functions of
  ``transformers.models.llama.modeling_llama`` until 4.36; remote code that
  reused Llama's mask code imports them): restored over
  the ``AttentionMaskConverter`` of ``patches/attn_mask_utils.py``, which computes the same masks
  (transformers' own went with its module in 5.24).
* ``_expand_mask`` / ``_make_causal_mask`` of ``modeling_bloom`` and
  ``modeling_opt`` (module functions until 4.34; MosaicML's MPT and Replit
  code imports all four in ``hf_prefixlm_converter.py``): Bloom's are boolean
  masks (``True`` where attention is masked), OPT's the additive ones Llama
  had, restored over the same helpers.
* ``get_head_mask`` (removed in 5.0 with head masking): restored with the 4.x
  behaviour; a model without head masking gets ``[None] * num_hidden_layers``.
* ``get_extended_attention_mask(attention_mask, input_shape, device)``: 5.0
  dropped the ``device`` parameter, so a legacy positional ``device`` is read
  as the dtype; 5.23 removed the method. The shim drops a positional or
  keyword ``device`` where the method exists, and restores it (with
  ``invert_attention_mask``) where it is gone.
"""

from __future__ import annotations

import types
from typing import Any

from hotfix.authoring import Finding, Shims, takes


def expand_mask(mask: Any, dtype: Any, tgt_len: int | None = None) -> Any:
    """``[bsz, seq_len]`` padding mask to ``[bsz, 1, tgt_len, src_len]`` additive mask (the 4.3x helper)."""
    from .attn_mask_utils import AttentionMaskConverter

    return AttentionMaskConverter._expand_mask(mask=mask, dtype=dtype, tgt_len=tgt_len)


def make_causal_mask(input_ids_shape: Any, dtype: Any, device: Any, past_key_values_length: int = 0) -> Any:
    """Additive causal mask ``[bsz, 1, tgt_len, tgt_len + past]`` (the 4.3x helper)."""
    from .attn_mask_utils import AttentionMaskConverter

    return AttentionMaskConverter._make_causal_mask(
        input_ids_shape=input_ids_shape, dtype=dtype, device=device, past_key_values_length=past_key_values_length
    )


def bloom_expand_mask(mask: Any, tgt_length: int) -> Any:
    """``[bsz, src_len]`` padding mask to the boolean ``[bsz, 1, tgt_len, src_len]`` mask, True where masked."""
    import torch

    batch_size, src_length = mask.shape
    tgt_length = tgt_length if tgt_length is not None else src_length
    return (~(mask[:, None, None, :].to(torch.bool))).expand(batch_size, 1, tgt_length, src_length)


def bloom_make_causal_mask(input_ids_shape: Any, device: Any, past_key_values_length: int) -> Any:
    """Boolean causal mask ``[bsz, 1, tgt_len, tgt_len + past]``, True where a position is in the future."""
    import torch

    batch_size, target_length = input_ids_shape
    mask = torch.zeros((target_length, target_length + past_key_values_length), dtype=torch.bool, device=device)
    positions = torch.arange(target_length, device=device)
    mask[:, past_key_values_length:] = positions[:, None] < positions[None, :]
    return mask[None, None, :, :].expand(batch_size, 1, target_length, target_length + past_key_values_length)


def get_head_mask(self: Any, head_mask: Any, num_hidden_layers: int, is_attention_chunked: bool = False) -> Any:
    """The 4.x ``ModuleUtilsMixin.get_head_mask``: a 5-D mask per layer, or ``[None] * num_hidden_layers``."""
    if head_mask is None:
        return [None] * num_hidden_layers
    if head_mask.dim() == 1:
        head_mask = head_mask.unsqueeze(0).unsqueeze(0).unsqueeze(-1).unsqueeze(-1)
        head_mask = head_mask.expand(num_hidden_layers, -1, -1, -1, -1)
    elif head_mask.dim() == 2:
        head_mask = head_mask.unsqueeze(1).unsqueeze(-1).unsqueeze(-1)
    if head_mask.dim() != 5:
        raise ValueError(f"head_mask.dim != 5, instead {head_mask.dim()}")
    head_mask = head_mask.to(dtype=self.dtype)
    if is_attention_chunked:
        head_mask = head_mask.unsqueeze(-1)
    return head_mask


def _extended_mask(self: Any, attention_mask: Any, input_shape: Any, dtype: Any = None) -> Any:
    """The 4.x/5.0 ``get_extended_attention_mask`` body (decoder and encoder cases)."""
    import torch

    dtype = dtype if dtype is not None else self.dtype
    if attention_mask.dim() == 3:
        extended = attention_mask[:, None, :, :]
    elif attention_mask.dim() == 2:
        if getattr(self.config, "is_decoder", False):
            batch_size, seq_length = input_shape
            seq_ids = torch.arange(seq_length, device=attention_mask.device)
            causal = seq_ids[None, None, :].repeat(batch_size, seq_length, 1) <= seq_ids[None, :, None]
            causal = causal.to(attention_mask.dtype)
            if causal.shape[1] < attention_mask.shape[1]:
                prefix = attention_mask.shape[1] - causal.shape[1]
                causal = torch.cat(
                    [torch.ones((batch_size, seq_length, prefix), device=attention_mask.device, dtype=causal.dtype),
                     causal],
                    dim=-1,
                )  # fmt: skip
            extended = causal[:, None, :, :] * attention_mask[:, None, None, :]
        else:
            extended = attention_mask[:, None, None, :]
    else:
        raise ValueError(
            f"Wrong shape for input_ids (shape {input_shape}) or attention_mask (shape {attention_mask.shape})"
        )
    extended = extended.to(dtype=dtype)
    return (1.0 - extended) * torch.finfo(dtype).min


def get_extended_attention_mask(
    self: Any, attention_mask: Any, input_shape: Any, device: Any = None, dtype: Any = None
) -> Any:
    """The 4.x signature: ``device`` is accepted and unused, as it was upstream since 4.3x."""
    return _extended_mask(self, attention_mask, input_shape, dtype)


def invert_attention_mask(self: Any, encoder_attention_mask: Any) -> Any:
    import torch

    if encoder_attention_mask.dim() == 3:
        extended = encoder_attention_mask[:, None, :, :]
    else:
        extended = encoder_attention_mask[:, None, None, :]
    extended = extended.to(dtype=self.dtype)
    return (1.0 - extended) * torch.finfo(self.dtype).min


def probe_extended_attention_mask(module: types.ModuleType) -> Finding:
    method = getattr(module.PreTrainedModel, "get_extended_attention_mask", None)
    if method is None:
        return True, "PreTrainedModel.get_extended_attention_mask is missing"
    if takes(method, "device", unreadable=True):
        return False, "PreTrainedModel.get_extended_attention_mask accepts device"
    return (
        True,
        "PreTrainedModel.get_extended_attention_mask lost its device parameter: a positional device is read as dtype",
    )


def apply_extended_attention_mask(module: types.ModuleType, shims: Shims) -> None:
    import torch

    model = module.PreTrainedModel
    if getattr(model, "get_extended_attention_mask", None) is None:
        shims.restore(model, "get_extended_attention_mask", get_extended_attention_mask, "method")
        if getattr(model, "invert_attention_mask", None) is None:
            shims.restore(model, "invert_attention_mask", invert_attention_mask, "method")
        return

    def positional(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # (self, attention_mask, input_shape, device[, dtype]) -> (self, attention_mask, input_shape[, dtype])
        if len(args) >= 4 and (args[3] is None or isinstance(args[3], (torch.device, str))):
            args = args[:3] + args[4:]
        return args, kwargs

    shims.adapt_arguments(model, "get_extended_attention_mask", drop=("device",), positional=positional)
