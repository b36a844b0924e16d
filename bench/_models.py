"""Models the benchmarks load: a ~100M-parameter Llama, a small Llama, and the LegacyLM fixture twice
(as written, and fixed by hand: see tests/legacy_models.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from legacy_models import write_hand_fixed_legacy_lm, write_legacy_lm  # noqa: E402

__all__ = ["llama_config", "write_hand_fixed_legacy_lm", "write_legacy_lm", "write_llama"]


def llama_config(size: str) -> dict[str, Any]:
    if size == "100m":  # about 100M parameters
        return {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 8,
                "num_attention_heads": 12, "num_key_value_heads": 12, "max_position_embeddings": 512}  # fmt: skip
    if size == "small":
        return {"vocab_size": 2048, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
                "num_attention_heads": 8, "num_key_value_heads": 4, "max_position_embeddings": 512}  # fmt: skip
    return {"vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}  # fmt: skip


def write_llama(directory: Path, size: str, dtype: str = "float32") -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    marker = directory / "bench.json"
    wanted = {"size": size, "dtype": dtype}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return directory
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**llama_config(size)))
    model.to(getattr(torch, dtype)).save_pretrained(directory)
    marker.write_text(json.dumps(wanted))
    return directory
