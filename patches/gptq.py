"""auto-gptq's quantization loop reads ``layer(...)[0]``; decoder layers return a tensor from transformers 4.54.

``BaseGPTQForCausalLM.quantize`` (auto-gptq 0.7.1) runs the calibration
batches through each decoder layer itself and keeps ``layer(x, ...)[0]`` as
the next layer's input. Until 4.53 a decoder layer returned a tuple
``(hidden_states, ...)``; from 4.54 (Llama and every model since refactored)
it returns the hidden-states tensor, so ``[0]`` silently takes batch row 0:
the next layer gets a ``(seq, hidden)`` tensor and quantization fails with::

    RuntimeError: The size of tensor a (4) must match the size of tensor b (32) at non-singleton dimension 3

or, where the shapes happen to broadcast, quantizes on wrong activations.

The shim wraps ``quantize``: for the duration of the call, each decoder layer
of the model being quantized carries a forward hook that turns a tensor
output into the 1-tuple ``(hidden_states,)`` when the layer was called by
auto-gptq's own code. Calls from the model's forward (and every model that
auto-gptq is not quantizing) keep transformers' tensor. The hooks are removed
when ``quantize`` returns or raises.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from hotfix.authoring import Finding, Shims, called_from_legacy


def _torch_frame(frame: types.FrameType) -> bool:
    # Between the hook and the caller of layer(...): torch's _call_impl / _wrapped_call_impl.
    return str(frame.f_globals.get("__name__", "")).startswith("torch.")


def _tuple_for_auto_gptq(module: Any, args: Any, output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor) and called_from_legacy(through=_torch_frame):
        return (output,)
    return None


def probe_layer_outputs(module: types.ModuleType) -> Finding:
    base = getattr(module, "BaseGPTQForCausalLM", None)
    if base is None or not callable(getattr(base, "quantize", None)):
        return False, "auto_gptq.modeling._base.BaseGPTQForCausalLM.quantize not found"
    return True, "transformers decoder layers return a tensor; auto-gptq's quantize indexes layer(...)[0]"


def apply_layer_outputs(module: types.ModuleType, shims: Shims) -> None:
    base = module.BaseGPTQForCausalLM
    get_layers = module.get_module_by_name_prefix

    def make(function: Callable[..., Any]) -> Callable[..., Any]:
        def quantize(self: Any, *args: Any, **kwargs: Any) -> Any:
            layers = get_layers(self.model, self.layers_block_name)
            handles = [layer.register_forward_hook(_tuple_for_auto_gptq) for layer in layers or ()]
            try:
                return function(self, *args, **kwargs)
            finally:
                for handle in handles:
                    handle.remove()

        return quantize

    shims.replace(base, "quantize", make)
