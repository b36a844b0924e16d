"""Models the benchmarks load: a ~100M-parameter Llama, a small Llama, and the LegacyLM fixture twice.

The "hand-fixed" LegacyLM is the fixture with its legacy API calls rewritten
the way a user would fix them by hand for the installed transformers; it is
derived from the fixture at run time (each rewrite must apply) so that the two
stay the same model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from legacy_models import write_legacy_lm  # noqa: E402

HAND_FIXES = [
    (
        "from transformers.modeling_utils import no_init_weights  # noqa: F401  (kept from the original repo)\n",
        "",
    ),
    ("from transformers.utils.import_utils import is_torch_fx_available\n", "\n"),
    ("if is_torch_fx_available():", "if True:"),
    ('_tied_weights_keys = ["lm_head.weight"]', '_tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}'),
    ("past_length = past_key_values.seen_tokens", "past_length = past_key_values.get_seq_length()"),
    (
        "max_cache_length = past_key_values.get_max_length()",
        "max_cache_length = past_key_values.get_max_length()\n"
        "                max_cache_length = None if max_cache_length < 0 else max_cache_length",
    ),
    (
        "self._extract_past_from_model_output(\n"
        "            outputs, standardize_cache_format=standardize_cache_format\n        )",
        "outputs.past_key_values",
    ),
]


def write_hand_fixed_legacy_lm(directory: Path, seed: int = 0, **overrides: Any) -> Path:
    """The LegacyLM checkpoint with its modeling code fixed by hand for transformers 5.x."""
    write_legacy_lm(directory, seed, **overrides)
    modeling = directory / "modeling_legacy_lm.py"
    text = modeling.read_text(encoding="utf-8")
    for old, new in HAND_FIXES:
        if old not in text:
            raise RuntimeError(f"hand fix no longer applies to the fixture: {old!r}")
        text = text.replace(old, new)
    modeling.write_text(text, encoding="utf-8")
    return directory


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
