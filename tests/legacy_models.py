"""Build tiny checkpoints of the legacy fixture models under tests/fixtures/.

The weights are written with safetensors and the config by hand, without
importing the fixture's code, so that a checkpoint can be made on any
transformers version, including the ones where the fixture cannot load.
Loading it back goes through the real ``from_pretrained(...,
trust_remote_code=True)`` path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"

LEGACY_LM_CONFIG: dict[str, Any] = {
    "vocab_size": 96,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
    "layer_norm_epsilon": 1e-5,
    "initializer_range": 0.02,
    "use_cache": True,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": True,
}


def _legacy_lm_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    h, v, p = config["hidden_size"], config["vocab_size"], config["max_position_embeddings"]
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (v, h), "transformer.wpe.weight": (p, h)}
    for i in range(config["num_hidden_layers"]):
        block = f"transformer.h.{i}"
        shapes.update(
            {
                f"{block}.ln_1.weight": (h,), f"{block}.ln_1.bias": (h,),
                f"{block}.attn.qkv.weight": (3 * h, h), f"{block}.attn.qkv.bias": (3 * h,),
                f"{block}.attn.o_proj.weight": (h, h), f"{block}.attn.o_proj.bias": (h,),
                f"{block}.ln_2.weight": (h,), f"{block}.ln_2.bias": (h,),
                f"{block}.mlp.0.weight": (4 * h, h), f"{block}.mlp.0.bias": (4 * h,),
                f"{block}.mlp.2.weight": (h, 4 * h), f"{block}.mlp.2.bias": (h,),
            }
        )  # fmt: skip
    shapes.update({"transformer.ln_f.weight": (h,), "transformer.ln_f.bias": (h,)})
    return shapes


def write_legacy_lm(directory: Path, seed: int = 0, **overrides: Any) -> Path:
    """Write the LegacyLM checkpoint (config, weights, remote code) into *directory*; *overrides* change the config."""
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    config = {**LEGACY_LM_CONFIG, **overrides}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in _legacy_lm_shapes(config).items():
        noise = torch.randn(shape, generator=generator)
        if ".ln_" in name and name.endswith(".weight"):
            tensors[name] = 1.0 + 0.1 * noise
        else:
            tensors[name] = 0.2 * noise if "wte" in name or "wpe" in name else 0.1 * noise
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    for source in (FIXTURES / "legacy_lm").glob("*.py"):
        shutil.copy(source, directory / source.name)
    write_legacy_lm_tokenizer(directory, config["vocab_size"])
    config.update(
        {
            "model_type": "legacy_lm",
            "architectures": ["LegacyLMForCausalLM"],
            "auto_map": {
                "AutoConfig": "configuration_legacy_lm.LegacyLMConfig",
                "AutoModelForCausalLM": "modeling_legacy_lm.LegacyLMForCausalLM",
            },
            "torch_dtype": "float32",
        }
    )
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def write_legacy_lm_tokenizer(directory: Path, vocab_size: int) -> None:
    """vocab.txt (special tokens, then one printable character a line) and tokenizer_config.json with auto_map."""
    characters = [chr(code) for code in range(32, 32 + vocab_size - len(SPECIAL_TOKENS))]
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in [*SPECIAL_TOKENS, *characters]), encoding="utf-8")
    config = {
        "tokenizer_class": "LegacyLMTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_legacy_lm.LegacyLMTokenizer", None]},
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "padding_side": "left", "model_max_length": 64,
    }  # fmt: skip
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


TEXTS = ["Hello, world!", "hotfix ~ 2024", "a"]


HAND_FIXES = [
    (
        "from transformers.modeling_utils import no_init_weights  # noqa: F401  (kept from the original repo)\n",
        "",
    ),
    ("from transformers.utils.import_utils import is_torch_fx_available\n", "\n"),
    ("from transformers import PreTrainedModel\n", "from transformers import GenerationMixin, PreTrainedModel\n"),
    (
        "class LegacyLMForCausalLM(LegacyLMPreTrainedModel):",
        "class LegacyLMForCausalLM(LegacyLMPreTrainedModel, GenerationMixin):",
    ),
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
    """The LegacyLM checkpoint with its modeling code fixed by hand for transformers 5.23+.

    Its legacy API calls are rewritten the way a user would fix them (HAND_FIXES,
    each of which must apply, so the two copies stay the same model). It is modern
    remote code: hotfix must leave it alone.
    """
    write_legacy_lm(directory, seed, **overrides)
    modeling = directory / "modeling_legacy_lm.py"
    text = modeling.read_text(encoding="utf-8")
    for old, new in HAND_FIXES:
        if old not in text:
            raise RuntimeError(f"hand fix no longer applies to the fixture: {old!r}")
        text = text.replace(old, new)
    modeling.write_text(text, encoding="utf-8")
    return directory


PROMPTS = [[1, 5, 9, 14, 20, 33], [0, 0, 1, 7, 40, 41]]
MASK = [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]  # the second prompt is left-padded


def run_legacy_lm(directory: Path, max_new_tokens: int = 8, model_class: Any = None) -> dict[str, Any]:
    """Load the checkpoint the way users do and run forward and greedy generate (batch, with and without cache).

    *model_class* loads it instead of ``AutoModelForCausalLM`` (a vendored copy of the class).
    """
    import torch
    from transformers import AutoModelForCausalLM

    if model_class is not None:
        model = model_class.from_pretrained(str(directory))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(directory), trust_remote_code=True)
    model.eval()
    input_ids = torch.tensor(PROMPTS)
    attention_mask = torch.tensor(MASK)
    with torch.no_grad():
        logits = model(input_ids, attention_mask=attention_mask).logits
        results = {}
        for use_cache in (True, False):
            generated = model.generate(
                input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False,
                use_cache=use_cache, pad_token_id=0, eos_token_id=None,
            )  # fmt: skip
            results["cache" if use_cache else "no_cache"] = generated[:, input_ids.shape[1] :].tolist()
    tied = model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    return {"logits": logits[:, -1, :8].tolist(), "tokens": results, "tied": tied}


# --- Remote-code packages -------------------------------------------------------------------------------------------
#
# Every package under tests/fixtures/ is a small model repository written the
# way one family of 2023-2024 remote-code models wrote theirs. Its
# fixture.json holds the config.json (with auto_map), the tokenizer files to
# generate, the transformers version each part is written against ("since")
# and the patches its code needs on newer versions. The weights are stored in
# tests/data/fixtures/<name>/model.safetensors; they and reference.json are
# made by scripts/make_fixture_references.py on the oldest matrix version where
# the package works natively.

PACKAGES = ("legacy_lm", "legacy_glm", "legacy_baichuan", "legacy_internlm2", "legacy_qwen", "legacy_deepseek")
PACKAGE_DATA = Path(__file__).resolve().parent / "data" / "fixtures"


def package_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((FIXTURES / name / "fixture.json").read_text(encoding="utf-8"))
    return spec


def write_package(name: str, directory: Path, weights: bool = True) -> Path:
    """Write package *name* (code, config.json, tokenizer files, stored weights) into *directory*."""
    if name == "legacy_lm":
        return write_legacy_lm(directory)
    spec = package_spec(name)
    directory.mkdir(parents=True, exist_ok=True)
    for source in (FIXTURES / name).glob("*.py"):
        shutil.copy(source, directory / source.name)
    (directory / "config.json").write_text(json.dumps(spec["config"], indent=2), encoding="utf-8")
    tokenizer = spec.get("tokenizer")
    if tokenizer is not None:
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer["config"], indent=2), encoding="utf-8")
        VOCABULARIES[tokenizer["vocabulary"]](directory)
    stored = PACKAGE_DATA / name / "model.safetensors"
    if weights:
        if not stored.exists():
            raise FileNotFoundError(f"{stored} is missing: run scripts/make_fixture_references.py {name} weights")
        shutil.copy(stored, directory / "model.safetensors")
    return directory


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _glm_vocabulary(directory: Path) -> None:
    """GLM-style: specials first, then one printable character a line."""
    specials = ["<unk>", "<pad>", "<eos>", "[gMASK]", "<sop>"]
    _write_lines(directory / "glm_vocab.txt", specials + [chr(code) for code in range(32, 32 + 96 - len(specials))])


BAICHUAN_WORDS = ["hello", "world", "hot", "fix", "20", "24", "Hel", "lo", "wor", "ld"]


def _baichuan_vocabulary(directory: Path) -> None:
    """SentencePiece-like pieces with scores: specials, whole words (with and without the space mark), characters."""
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    words = [*("\u2581" + w for w in BAICHUAN_WORDS), *BAICHUAN_WORDS]
    characters = ["\u2581", *(chr(code) for code in range(33, 127))]
    pieces = [*specials, *words, *characters]
    _write_lines(directory / "pieces.vocab", [f"{piece}\t{-index}" for index, piece in enumerate(pieces)])


QWEN_MERGES = ["he", "ll", "hell", "hello", "wo", "or", "ld", "wor", "world", " w", " h", "ho", "hot", "fi", "fix",
               "hotfix", " hotfix", "20", "24", "2024", "He", "Hell", "Hello", " world"]  # fmt: skip


def _qwen_vocabulary(directory: Path) -> None:
    """tiktoken-style BPE ranks (base64 token, rank): the 256 bytes, then merges in rank order."""
    import base64

    tokens = [bytes([value]) for value in range(256)] + [merge.encode() for merge in QWEN_MERGES]
    lines = [f"{base64.b64encode(token).decode()} {rank}" for rank, token in enumerate(tokens)]
    _write_lines(directory / "qwen.tiktoken", lines)


VOCABULARIES = {"glm": _glm_vocabulary, "baichuan": _baichuan_vocabulary, "qwen": _qwen_vocabulary}


def randomize(model: Any, seed: int = 0) -> None:
    """Give every parameter seeded values that do not depend on the transformers version's initialisation."""
    import zlib

    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            generator = torch.Generator().manual_seed(seed + zlib.crc32(name.encode()))
            noise = torch.randn(parameter.shape, generator=generator)
            is_norm = "norm" in name or ".ln_" in name or name.startswith("ln_")
            parameter.copy_(
                1.0 + 0.1 * noise if is_norm and parameter.dim() == 1 and "bias" not in name else 0.2 * noise
            )


def package_parts(name: str) -> dict[str, str]:
    """The parts of package *name* (model, tokenizer) and the transformers version each is written against."""
    since: dict[str, str] = package_spec(name)["since"]
    return since


def run_package_model(directory: Path, max_new_tokens: int = 8, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """Construct from the config, save and reload, load the stored weights, forward, greedy generate (cache on/off).

    Then the generate calls whose answers follow from the batch's (``"derived"``):
    one unpadded prompt without a mask (the first row of the batch), and, where
    the package's fixture.json says ``"from_embeds": true``, the batch from its
    input embeddings. A failing stage raises with the stage's name in front of the error.
    """
    spec = spec or {}
    import tempfile

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    stage = "construct"
    try:
        config = AutoConfig.from_pretrained(str(directory), trust_remote_code=True)
        torch.manual_seed(0)
        built = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
        # As the custom-model guide says: so that save_pretrained writes the code beside the weights.
        type(built).register_for_auto_class("AutoModelForCausalLM")
        randomize(built, seed=1)
        stage = "save and reload"
        with tempfile.TemporaryDirectory() as tmp:
            built.save_pretrained(tmp)
            reloaded = AutoModelForCausalLM.from_pretrained(tmp, trust_remote_code=True)
            saved, loaded = built.state_dict(), reloaded.state_dict()
            same = saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
        stage = "load"
        model = AutoModelForCausalLM.from_pretrained(str(directory), trust_remote_code=True).eval()
        input_ids, attention_mask = torch.tensor(PROMPTS), torch.tensor(MASK)
        with torch.no_grad():
            stage = "forward"
            logits = model(input_ids, attention_mask=attention_mask).logits
            tokens = {}
            for use_cache in (True, False):
                stage = "generate with cache" if use_cache else "generate without cache"
                generated = model.generate(
                    input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False,
                    use_cache=use_cache, pad_token_id=0, eos_token_id=2,
                )  # fmt: skip
                tokens["cache" if use_cache else "no_cache"] = generated[:, input_ids.shape[1] :].tolist()
            # As chat() and most users call it: one prompt, no attention mask (4.x always made one).
            stage = "generate one prompt"
            generated = model.generate(
                input_ids[:1], max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0, eos_token_id=2
            )
            single = generated[0, input_ids.shape[1] :].tolist()
            derived: dict[str, Any] = {"single": single + [0] * (max_new_tokens - len(single))}
            if spec.get("from_embeds"):
                # As vision-language models drive their language model: merged embeddings, no input_ids.
                stage = "generate from inputs_embeds"
                embeds = model.get_input_embeddings()(input_ids)
                generated = model.generate(
                    inputs_embeds=embeds, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                    do_sample=False, pad_token_id=0, eos_token_id=2,
                )  # fmt: skip
                derived["from_embeds"] = generated[:, -max_new_tokens:].tolist()
    except Exception as error:
        raise RuntimeError(f"[{stage}] {type(error).__name__}: {error}") from error
    return {
        "class": type(model).__name__,
        "reloaded_equal": same,
        "logits": [[round(x, 6) for x in row] for row in logits[:, -1, :].tolist()],
        "tokens": tokens,
        "derived": derived,
    }


def run_package_tokenizer(directory: Path) -> dict[str, Any]:
    """Load, encode, decode, pad, batch, save and reload: every output the tokenizer gives."""
    import tempfile

    from transformers import AutoTokenizer

    stage = "load"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=True)
        stage = "encode"
        single = tokenizer(TEXTS[0])["input_ids"]
        stage = "batch"
        batch = tokenizer(TEXTS, padding=True)
        stage = "pad"
        padded = tokenizer.pad({"input_ids": [single, single[:3]]}, padding="longest")
        stage = "decode"
        decoded = tokenizer.decode(single, skip_special_tokens=True)
        batch_decoded = tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
        stage = "save and reload"
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            again = AutoTokenizer.from_pretrained(tmp, trust_remote_code=True)(TEXTS, padding=True)["input_ids"]
    except Exception as error:
        raise RuntimeError(f"[tokenizer {stage}] {type(error).__name__}: {error}") from error
    return {
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "special_ids": [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id],
        "single": single,
        "decoded": decoded,
        "batch": {key: list(value) for key, value in sorted(batch.items())},
        "padded": {key: list(value) for key, value in sorted(padded.items())},
        "batch_decoded": batch_decoded,
        "reloaded_ids": again,
    }


def run_package(name: str, directory: Path, part: str) -> dict[str, Any]:
    """Run *part* ("model" or "tokenizer") of package *name* from a fresh copy written into *directory*."""
    write_package(name, directory)
    if part == "model":
        return run_package_model(directory, spec=package_spec(name))
    return run_package_tokenizer(directory)


def derived_expected(reference_tokens: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """What the derived generate calls must give, from the reference's batch tokens (made on the old stack)."""
    expected: dict[str, Any] = {"single": reference_tokens["cache"][0]}
    if spec.get("from_embeds"):
        expected["from_embeds"] = reference_tokens["cache"]
    return expected
