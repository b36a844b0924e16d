"""``transformers.modeling_attn_mask_utils``, removed in transformers 5.24, rebuilt for the code that imports it.

Remote code of 2024 (DeepSeek V2/V3 and DeepSeek-MoE, MiniCPM, Phi-3 and
Phi-3-vision, Florence-2, and every model copied from Llama or Mistral of
4.36-4.47) builds its masks with the helpers of this module::

    from transformers.modeling_attn_mask_utils import (
        AttentionMaskConverter,
        _prepare_4d_causal_attention_mask,
        _prepare_4d_causal_attention_mask_for_sdpa,
    )

On 5.24 that import fails with ``ModuleNotFoundError: No module named
'transformers.modeling_attn_mask_utils'`` (transformers' own models build
their masks in ``transformers.masking_utils``, whose API is different). This
module is what the ``m26-attn-mask-utils-module`` patch provides under the
old name: the same functions with the same signatures and the same masks
(additive float masks, ``torch.finfo(dtype).min`` where attention is masked),
written from their documented behaviour. ``tests/test_transformers.py``
compares each of them with transformers' own where the module still exists.
Where versions differed, this follows 4.45-5.23: ``_prepare_4d_attention_mask_for_sdpa``
returns None for an all-ones mask whatever the query length (4.36-4.44
expanded it when the query and key lengths differ; the attention is the same).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "AttentionMaskConverter",
    "_create_4d_causal_attention_mask",
    "_prepare_4d_attention_mask",
    "_prepare_4d_attention_mask_for_sdpa",
    "_prepare_4d_causal_attention_mask",
    "_prepare_4d_causal_attention_mask_for_sdpa",
]


def _is_tracing(tensor: Any) -> bool:
    """Whether the mask is being traced (jit, fx or dynamo): then data-dependent shortcuts are not taken."""
    compiling = getattr(torch, "compiler", None) is not None and torch.compiler.is_compiling()
    return bool(torch.jit.is_tracing() or isinstance(tensor, torch.fx.Proxy) or compiling)


class AttentionMaskConverter:
    """Turns 2-D padding masks into 4-D additive masks, causal or not, optionally with a sliding window."""

    is_causal: bool
    sliding_window: int | None

    def __init__(self, is_causal: bool, sliding_window: int | None = None) -> None:
        self.is_causal = is_causal
        self.sliding_window = sliding_window
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise ValueError(
                f"Make sure that when passing `sliding_window` that its value is a strictly positive integer, "
                f"not `{self.sliding_window}`"
            )

    def to_causal_4d(
        self,
        batch_size: int,
        query_length: int,
        key_value_length: int,
        dtype: torch.dtype,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor | None:
        """A causal 4-D mask ``[batch, 1, query_length, key_value_length]``; None for one query and no window."""
        if not self.is_causal:
            raise ValueError(f"Please use `to_causal_4d` only if {self.__class__} has `is_causal` set to True.")
        past_key_values_length = key_value_length - query_length
        if query_length > 1 or self.sliding_window is not None:
            return self._make_causal_mask(
                (batch_size, query_length),
                dtype,
                device=device,
                past_key_values_length=past_key_values_length,
                sliding_window=self.sliding_window,
            )
        return None

    def to_4d(
        self,
        attention_mask_2d: torch.Tensor,
        query_length: int,
        dtype: torch.dtype,
        key_value_length: int | None = None,
    ) -> torch.Tensor:
        """The padding mask ``[batch, key_value_length]`` as a 4-D additive mask, combined with the causal one."""
        input_shape = (attention_mask_2d.shape[0], query_length)
        causal_4d_mask = None
        if (input_shape[-1] > 1 or self.sliding_window is not None) and self.is_causal:
            if key_value_length is None:
                raise ValueError(
                    "This attention mask converter is causal. Make sure to pass `key_value_length` to correctly "
                    "create a causal mask."
                )
            causal_4d_mask = self._make_causal_mask(
                input_shape,
                dtype,
                device=attention_mask_2d.device,
                past_key_values_length=key_value_length - query_length,
                sliding_window=self.sliding_window,
            )
        elif self.sliding_window is not None:
            raise NotImplementedError("Sliding window is currently only implemented for causal masking")
        expanded = self._expand_mask(attention_mask_2d, dtype, tgt_len=input_shape[-1]).to(attention_mask_2d.device)
        if causal_4d_mask is not None:
            expanded = causal_4d_mask.masked_fill(expanded.bool(), torch.finfo(dtype).min)
        return expanded

    @staticmethod
    def _make_causal_mask(
        input_ids_shape: Any,
        dtype: torch.dtype,
        device: torch.device | str,
        past_key_values_length: int = 0,
        sliding_window: int | None = None,
    ) -> torch.Tensor:
        """Additive causal mask ``[bsz, 1, tgt_len, tgt_len + past]`` (0 where attended, dtype min elsewhere)."""
        bsz, tgt_len = input_ids_shape
        minimum = torch.finfo(dtype).min
        mask = torch.full((tgt_len, tgt_len), minimum, device=device)
        positions = torch.arange(mask.size(-1), device=device)
        mask.masked_fill_(positions < (positions + 1).view(mask.size(-1), 1), 0)
        mask = mask.to(dtype)
        if past_key_values_length > 0:
            past = torch.zeros(tgt_len, past_key_values_length, dtype=dtype, device=device)
            mask = torch.cat([past, mask], dim=-1)
        if sliding_window is not None:
            diagonal = past_key_values_length - sliding_window - 1
            outside = torch.tril(torch.ones_like(mask, dtype=torch.bool), diagonal=diagonal)
            mask = mask.masked_fill(outside, minimum)
        return mask[None, None, :, :].expand(bsz, 1, tgt_len, tgt_len + past_key_values_length)

    @staticmethod
    def _expand_mask(mask: torch.Tensor, dtype: torch.dtype, tgt_len: int | None = None) -> torch.Tensor:
        """``[bsz, src_len]`` 1/0 padding mask to the additive ``[bsz, 1, tgt_len, src_len]`` mask."""
        bsz, src_len = mask.size()
        tgt_len = tgt_len if tgt_len is not None else src_len
        expanded = mask[:, None, None, :].expand(bsz, 1, tgt_len, src_len).to(dtype)
        inverted = 1.0 - expanded
        return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)

    @staticmethod
    def _unmask_unattended(expanded_mask: torch.Tensor, min_dtype: float) -> torch.Tensor:
        """Rows that attend to nothing (left padding) attend to everything, as the memory-efficient SDPA path needs."""
        if expanded_mask.dtype == torch.bool:
            raise ValueError("AttentionMaskConverter._unmask_unattended expects a float `expanded_mask`, not bool")
        return expanded_mask.mul(~torch.all(expanded_mask == min_dtype, dim=-1, keepdim=True))

    @staticmethod
    def _ignore_causal_mask_sdpa(
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor,
        past_key_values_length: int,
        sliding_window: int | None = None,
        is_training: bool = False,
    ) -> bool:
        """Whether SDPA's own ``is_causal`` can replace the mask (no padding, and a causal shape it can express)."""
        query_length = inputs_embeds.shape[1]
        key_value_length = query_length + past_key_values_length
        tracing = _is_tracing(inputs_embeds)
        within_window = sliding_window is None or key_value_length < sliding_window
        if attention_mask is None:
            square = query_length == 1 or key_value_length == query_length
            return bool((is_training or not tracing) and square and within_window)
        if within_window:
            if len(attention_mask.shape) == 4:
                return False
            if not tracing and bool(torch.all(attention_mask == 1)):
                return bool(query_length == 1 or key_value_length == query_length)
        return False


def _prepare_4d_causal_attention_mask(
    attention_mask: torch.Tensor | None,
    input_shape: Any,
    inputs_embeds: torch.Tensor,
    past_key_values_length: int,
    sliding_window: int | None = None,
) -> torch.Tensor | None:
    """The eager-attention causal mask ``[bsz, 1, query_length, key_value_length]`` from a 2-D, 4-D or no mask."""
    converter = AttentionMaskConverter(is_causal=True, sliding_window=sliding_window)
    key_value_length = input_shape[-1] + past_key_values_length
    dtype = inputs_embeds.dtype
    if attention_mask is not None and len(attention_mask.shape) == 2:
        return converter.to_4d(attention_mask, input_shape[-1], key_value_length=key_value_length, dtype=dtype)
    if attention_mask is not None and len(attention_mask.shape) == 4:
        expected = (input_shape[0], 1, input_shape[1], key_value_length)
        if tuple(attention_mask.shape) != expected:
            raise ValueError(f"Incorrect 4D attention_mask shape: {tuple(attention_mask.shape)}; expected: {expected}.")
        inverted = 1.0 - attention_mask
        return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)
    return converter.to_causal_4d(
        input_shape[0], input_shape[-1], key_value_length, dtype=dtype, device=inputs_embeds.device
    )


def _prepare_4d_causal_attention_mask_for_sdpa(
    attention_mask: torch.Tensor | None,
    input_shape: Any,
    inputs_embeds: torch.Tensor,
    past_key_values_length: int,
    sliding_window: int | None = None,
) -> torch.Tensor | None:
    """As :func:`_prepare_4d_causal_attention_mask`, but None where SDPA's ``is_causal`` does the same."""
    converter = AttentionMaskConverter(is_causal=True, sliding_window=sliding_window)
    key_value_length = input_shape[-1] + past_key_values_length
    dtype = inputs_embeds.dtype
    if AttentionMaskConverter._ignore_causal_mask_sdpa(
        attention_mask=attention_mask,
        inputs_embeds=inputs_embeds,
        past_key_values_length=past_key_values_length,
        sliding_window=sliding_window,
    ):
        return None
    if attention_mask is None:
        return converter.to_causal_4d(
            input_shape[0], input_shape[-1], key_value_length, dtype=dtype, device=inputs_embeds.device
        )
    if attention_mask.dim() == 4:
        expanded: torch.Tensor | None = attention_mask
    else:
        expanded = converter.to_4d(attention_mask, input_shape[-1], dtype=dtype, key_value_length=key_value_length)
    if expanded is not None and not _is_tracing(inputs_embeds) and expanded.device.type == "cuda":
        expanded = AttentionMaskConverter._unmask_unattended(expanded, min_dtype=torch.finfo(dtype).min)
    return expanded


def _prepare_4d_attention_mask(mask: torch.Tensor, dtype: torch.dtype, tgt_len: int | None = None) -> torch.Tensor:
    """A non-causal (encoder) 4-D additive mask ``[bsz, 1, tgt_len, src_len]`` from a 2-D padding mask."""
    return AttentionMaskConverter._expand_mask(mask=mask, dtype=dtype, tgt_len=tgt_len)


def _prepare_4d_attention_mask_for_sdpa(
    mask: torch.Tensor, dtype: torch.dtype, tgt_len: int | None = None
) -> torch.Tensor | None:
    """As :func:`_prepare_4d_attention_mask`, but None when nothing is padded (SDPA then needs no mask)."""
    if not _is_tracing(mask) and torch.all(mask == 1):
        return None
    return AttentionMaskConverter._expand_mask(mask=mask, dtype=dtype, tgt_len=tgt_len)


def _create_4d_causal_attention_mask(
    input_shape: Any,
    dtype: torch.dtype,
    device: torch.device | str,
    past_key_values_length: int = 0,
    sliding_window: int | None = None,
) -> torch.Tensor | None:
    """A causal 4-D mask for inputs of *input_shape* after *past_key_values_length* cached positions."""
    converter = AttentionMaskConverter(is_causal=True, sliding_window=sliding_window)
    key_value_length = past_key_values_length + input_shape[-1]
    return converter.to_causal_4d(input_shape[0], input_shape[-1], key_value_length, dtype=dtype, device=device)
