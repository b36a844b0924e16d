"""Run one legacy-usage scenario in a fresh interpreter and print the outcome as JSON.

    python tests/scenario.py NAME[,NAME...] [--hotfix before|after] [--patches SEL] [--legacy GLOBS] [--workdir DIR]

``--hotfix before`` enables hotfix before transformers is imported, ``after``
imports transformers first. The last line of stdout is
``{"ok": bool, "error": str | null, "result": ..., "status": {...}}``.
Used by the tests so that every run starts from a clean interpreter. Several
import scenarios (comma-separated) run in one interpreter; their outcomes are
under ``"batch"``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import traceback
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

IMPORTS = {
    # processing_utils executes transformers/__init__.py again: a new module object in sys.modules
    # (a name hotfix restores on transformers itself: AdamW from 4.50, top_k_top_p_filtering in 4.39-4.49)
    "reexecuted": "import transformers.processing_utils\nimport transformers\nfrom packaging.version import Version\n"
    "if Version(transformers.__version__) >= Version('4.50'):\n    from transformers import AdamW as restored\n"
    "else:\n    from transformers import top_k_top_p_filtering as restored\nresult = restored.__name__",
    "m3": "from transformers.modeling_utils import no_init_weights\nresult = no_init_weights.__module__",
    "m14": "import transformers.deepspeed as module\nresult = module.HfDeepSpeedConfig.__name__",
    "g9": "from transformers.generation_utils import GenerationMixin\nresult = GenerationMixin.__name__",
    "m4": "from transformers.utils.import_utils import is_torch_fx_available\nresult = is_torch_fx_available()",
    "m4-utils": "from transformers.utils import is_torch_fx_available\nresult = is_torch_fx_available()",
    "t3": "from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode\nresult = len(bytes_to_unicode())",
    "m21": "from transformers.utils import is_tf_available\nresult = is_tf_available()",
    "m21-import-utils": "from transformers.utils.import_utils import is_tf_available\nresult = is_tf_available()",
    "m21-flax": "from transformers.utils import is_flax_available\nresult = is_flax_available()",
    "m16-flash": "from transformers.utils import is_flash_attn_available\nresult = is_flash_attn_available()",
    "m16-tpu": "from transformers.utils import is_torch_tpu_available\nresult = is_torch_tpu_available()",
    "h1-commit": "from transformers.utils.hub import create_commit\nresult = create_commit.__module__",
    "h1-repo": "from transformers.utils.hub import create_repo\nresult = create_repo.__module__",
    "g4": "import torch\nfrom transformers.cache_utils import DynamicCache\ncache = DynamicCache()\n"
    "cache.update(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4), 0)\nresult = cache.get_usable_length(2)",
    "m9-expand": "import torch\nfrom transformers.models.llama.modeling_llama import _expand_mask\n"
    "result = (_expand_mask(torch.tensor([[0, 1, 1]]), torch.float32, 2) == 0).int().tolist()",
    "m9-causal": "import torch\nfrom transformers.models.llama.modeling_llama import _make_causal_mask\n"
    "result = (_make_causal_mask(torch.Size([1, 3]), torch.float32, torch.device('cpu'), 1) == 0).int().tolist()",
    "m5-head": "from scenario import tiny_llama\nresult = tiny_llama().get_head_mask(None, 3)",
    "m5-extended": "import torch\nfrom scenario import tiny_llama\n"
    "mask = tiny_llama().get_extended_attention_mask(torch.tensor([[1, 1, 0]]), (1, 3), torch.device('cpu'))\n"
    "result = [str(mask.dtype), (mask == 0).int().tolist()]",
    "m6": "from transformers.models.llama.modeling_llama import LLAMA_ATTENTION_CLASSES, LlamaFlashAttention2, "
    "LlamaSdpaAttention\nresult = [sorted(LLAMA_ATTENTION_CLASSES), LlamaSdpaAttention.__name__ != '']",
    "m13-inputs": "from transformers.models.llama.modeling_llama import LLAMA_INPUTS_DOCSTRING\n"
    "result = isinstance(LLAMA_INPUTS_DOCSTRING, str)",
    "m13-start": "from transformers.models.llama.modeling_llama import LLAMA_START_DOCSTRING\n"
    "result = isinstance(LLAMA_START_DOCSTRING, str)",
    "m13-models": "from transformers.models.mistral.modeling_mistral import MISTRAL_INPUTS_DOCSTRING\n"
    "from transformers.models.bert.modeling_bert import BERT_INPUTS_DOCSTRING, BERT_START_DOCSTRING\n"
    "from transformers.models.gpt2.modeling_gpt2 import GPT2_INPUTS_DOCSTRING, PARALLELIZE_DOCSTRING\n"
    "from transformers.utils import add_start_docstrings\n"
    "@add_start_docstrings(MISTRAL_INPUTS_DOCSTRING)\ndef forward(self, input_ids):\n    return input_ids\n"
    "names = [MISTRAL_INPUTS_DOCSTRING, BERT_INPUTS_DOCSTRING, BERT_START_DOCSTRING, GPT2_INPUTS_DOCSTRING,\n"
    "         PARALLELIZE_DOCSTRING]\n"
    "result = [all(isinstance(name, str) for name in names), forward(None, 3)]",
    "m42": "from transformers import top_k_top_p_filtering as filtering\n"
    "from scenario import filtered\n"
    "result = filtered(filtering)",
    "m42-generation": "from transformers.generation import top_k_top_p_filtering as filtering\n"
    "from scenario import filtered\n"
    "result = filtered(filtering)",
    "m42-generation-utils": "from transformers.generation.utils import top_k_top_p_filtering as filtering\n"
    "from scenario import filtered\n"
    "result = filtered(filtering)",
    "m15": "import torch\nfrom transformers import AdamW\nfrom scenario import adamw_step\nresult = adamw_step(AdamW)",
    "m15-optimization": "import torch\nfrom transformers.optimization import AdamW\nfrom scenario import adamw_step\n"
    "result = adamw_step(AdamW)",
    "g8-warper": "import torch\nfrom transformers.generation import LogitsWarper\nfrom scenario import warper_call\n"
    "result = warper_call(LogitsWarper)",
    "g8-warper-module": "import torch\nfrom transformers.generation.logits_process import LogitsWarper\n"
    "from scenario import warper_call\nresult = warper_call(LogitsWarper)",
    "g8-get-warper": "from transformers import GenerationConfig\nfrom scenario import tiny_llama\n"
    "warpers = tiny_llama()._get_logits_warper(GenerationConfig(do_sample=True, temperature=0.5))\n"
    "result = type(warpers).__name__",
    "m22-disjunctive": "from transformers import DisjunctiveConstraint\nresult = DisjunctiveConstraint.__name__",
    "m22-phrasal": "from transformers import PhrasalConstraint\nresult = PhrasalConstraint.__name__",
    "m22-constrained": "from transformers import ConstrainedBeamSearchScorer as Scorer\nresult = Scorer.__name__",
    "m22-beam": "from transformers import BeamSearchScorer\nresult = BeamSearchScorer.__name__",
    "m18": "import tempfile\nfrom pathlib import Path\nfrom scenario import legacy_config_reads\n"
    "result = legacy_config_reads(Path(tempfile.mkdtemp()))",
    "m23": "from scenario import legacy_chat_generate\nresult = legacy_chat_generate()",
    "m20": "from scenario import legacy_gradient_checkpointing\nresult = legacy_gradient_checkpointing()",
    "g5": "from scenario import legacy_cache_roundtrip\nresult = legacy_cache_roundtrip()",
    "m19": "import tempfile\nfrom pathlib import Path\nfrom scenario import legacy_rope_configs\n"
    "result = legacy_rope_configs(Path(tempfile.mkdtemp()))",
    "g6": "from scenario import legacy_tuple_cache_generate\nresult = legacy_tuple_cache_generate()",
    "m26": "from scenario import legacy_attention_masks\nresult = legacy_attention_masks()",
    # the archived library Qwen v1 code requires (tests/test_archived.py)
    "stream_generator": "import transformers_stream_generator.main as main\n"
    "result = [main.NewGenerationMixin.__name__, callable(main.init_stream_support)]",
    "g14": "from transformers.generation.utils import GreedySearchDecoderOnlyOutput, SampleOutput\n"
    "result = [GreedySearchDecoderOnlyOutput.__name__, sorted(t.__name__ for t in SampleOutput.__args__)]",
    "m27-bloom-expand": "import torch\nfrom transformers.models.bloom.modeling_bloom import _expand_mask\n"
    "result = _expand_mask(torch.tensor([[0, 1, 1]]), tgt_length=2).int().tolist()",
    "m27-bloom-causal": "import torch\nfrom transformers.models.bloom.modeling_bloom import _make_causal_mask\n"
    "result = _make_causal_mask(torch.Size([1, 3]), device=torch.device('cpu'), past_key_values_length=1)"
    ".int().tolist()",
    "m27-opt-expand": "import torch\nfrom transformers.models.opt.modeling_opt import _expand_mask\n"
    "result = (_expand_mask(torch.tensor([[0, 1, 1]]), torch.float32, tgt_len=2) == 0).int().tolist()",
    "m27-opt-causal": "import torch\nfrom transformers.models.opt.modeling_opt import _make_causal_mask\n"
    "result = (_make_causal_mask(torch.Size([1, 3]), torch.float32, torch.device('cpu'), 1) == 0).int().tolist()",
    "m28": "from scenario import legacy_config_base_reads\nresult = legacy_config_base_reads()",
    "m34": "from scenario import legacy_config_field_types\nresult = legacy_config_field_types()",
    "m35": "from scenario import legacy_registered_model_type\nresult = legacy_registered_model_type()",
    "t10": "from scenario import mpt_folder_tokenizer\nresult = mpt_folder_tokenizer()",
    "m36": "from scenario import phi3_su_folder\nresult = phi3_su_folder()",
    "t12": "from scenario import bos_setting_folder\nresult = bos_setting_folder()",
    "t11": "from scenario import legacy_named_tokens\nresult = legacy_named_tokens()",
    "m30": "from transformers.pytorch_utils import find_pruneable_heads_and_indices as find\n"
    "heads, index = find([1, 3], n_heads=4, head_size=2, already_pruned_heads={0})\n"
    "result = [sorted(heads), index.tolist()]",
    "m31": "from transformers.utils import is_torch_sdpa_available\nresult = is_torch_sdpa_available()",
    "m37-chunking": "import torch\nfrom transformers.modeling_utils import apply_chunking_to_forward\n"
    "result = apply_chunking_to_forward(lambda t: t * 2, 2, 1, torch.arange(8.0).view(1, 4, 2)).sum().item()",
    "m37-prune-linear": "import torch\nfrom transformers.modeling_utils import prune_linear_layer\n"
    "layer = torch.nn.Linear(3, 4)\n"
    "with torch.no_grad():\n    layer.weight.copy_(torch.arange(12.0).view(4, 3))\n"
    "    layer.bias.copy_(torch.arange(4.0))\n"
    "pruned = prune_linear_layer(layer, torch.tensor([0, 2]))\n"
    "result = [pruned.weight.tolist(), pruned.bias.tolist()]",
    "m37-conv1d": "from transformers.modeling_utils import Conv1D\nresult = list(Conv1D(6, 3).weight.shape)",
    "m37-find-heads": "from transformers.modeling_utils import find_pruneable_heads_and_indices as find\n"
    "heads, index = find([1, 3], n_heads=4, head_size=2, already_pruned_heads={0})\n"
    "result = [sorted(heads), index.tolist()]",
    "m37-prune-conv1d": "from transformers.modeling_utils import prune_conv1d_layer\n"
    "from scenario import legacy_prune_conv1d\nresult = legacy_prune_conv1d(prune_conv1d_layer)",
    "m38": "from transformers.pytorch_utils import prune_conv1d_layer\nfrom scenario import legacy_prune_conv1d\n"
    "result = legacy_prune_conv1d(prune_conv1d_layer)",
    "m39": "from transformers.utils.model_parallel_utils import assert_device_map, get_device_map\n"
    "device_map = get_device_map(5, [0, 1])\nassert_device_map(device_map, 5)\n"
    "try:\n    assert_device_map({0: [0, 0]}, 2)\nexcept ValueError as error:\n    refused = str(error).split('.')[0]\n"
    "result = [[[device, layers] for device, layers in device_map.items()], refused]",
    "m40": "from scenario import legacy_sequence_summary\nresult = legacy_sequence_summary()",
    "m31-import-utils": "from transformers.utils.import_utils import is_torch_sdpa_available\n"
    "result = is_torch_sdpa_available()",
    "m32": "from scenario import legacy_onnx_config\nresult = legacy_onnx_config()",
    "t7": "from scenario import legacy_extra_tokens\nresult = legacy_extra_tokens()",
    "m33": "from scenario import legacy_default_tie\nresult = legacy_default_tie()",
    "g7-base": "from scenario import legacy_generative_base\nresult = legacy_generative_base()",
    "m10": "import torch\nfrom transformers.modeling_utils import shard_checkpoint\n"
    "shards, index = shard_checkpoint({'a': torch.zeros(10), 'b': torch.zeros(10)}, max_shard_size=50)\n"
    "result = [{k: sorted(v) for k, v in shards.items()}, index]",
}


def legacy_module(name: str, source: str) -> dict[str, Any]:
    """Execute *source* as the remote-code module ``transformers_modules.scenarios.<name>``; its namespace."""
    import textwrap

    module = types.ModuleType(f"transformers_modules.scenarios.{name}")
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), vars(module))
    return vars(module)


LEGACY_CONFIG = """
    from transformers import PretrainedConfig

    class LegacyChatConfig(PretrainedConfig):
        model_type = "legacy_chat"

        def __init__(self, hidden_size=8, seq_length=64, **kwargs):
            self.hidden_size = hidden_size
            self.seq_length = seq_length
            super().__init__(**kwargs)

    def read(config):
        return [config.max_length, config.num_beams, config.do_sample]

    def read_with_cache(config):
        return [*read(config), config.use_cache]
"""


def legacy_config_reads(workdir: Path) -> list[Any]:
    """A 2023 config class read by its modeling code, then saved and reloaded."""
    namespace = legacy_module("legacy_config", LEGACY_CONFIG)
    config = namespace["LegacyChatConfig"](use_cache=False, max_length=2048)
    first = namespace["read_with_cache"](config)
    config.save_pretrained(str(workdir / "legacy_config"))
    reloaded = namespace["LegacyChatConfig"].from_pretrained(str(workdir / "legacy_config"))
    return [first, namespace["read"](namespace["LegacyChatConfig"]()), reloaded.hidden_size]


LEGACY_EMBEDDING_MODEL = """
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel

    class EpochConfig(PretrainedConfig):
        model_type = "legacy_epoch"

        def __init__(self, vocab_size=16, hidden_size=8, **kwargs):
            self.vocab_size = vocab_size
            self.hidden_size = hidden_size
            super().__init__(**kwargs)

    class EpochModel(PreTrainedModel):
        config_class = EpochConfig

        def __init__(self, config):
            super().__init__(config)
            # StableLM-epoch habit: the base config always had pad_token_id (None unless given)
            self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
            self.tied = config.tie_word_embeddings
            self.decoder = config.is_decoder

    def build(**kwargs):
        model = EpochModel(EpochConfig(**kwargs))
        return [model.embed_tokens.padding_idx, model.tied, model.decoder, model.config.bos_token_id]
"""


LEGACY_ONNX_CONFIG = """
    from collections import OrderedDict

    from transformers import PretrainedConfig
    from transformers.onnx import OnnxConfig

    class EncoderConfig(PretrainedConfig):
        model_type = "legacy_encoder"

        def __init__(self, hidden_size=8, **kwargs):
            self.hidden_size = hidden_size
            super().__init__(**kwargs)

    class EncoderOnnxConfig(OnnxConfig):
        @property
        def inputs(self):
            return OrderedDict([("input_ids", {0: "batch", 1: "sequence"})])
"""


LEGACY_DEFAULT_TIE = """
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel

    class RWConfig(PretrainedConfig):
        model_type = "legacy_rw"

        def __init__(self, vocab_size=32, hidden_size=8, **kwargs):
            # Falcon RW habit: no tie_word_embeddings, the 4.x default (True) ties lm_head
            self.vocab_size = vocab_size
            self.hidden_size = hidden_size
            super().__init__(**kwargs)

    class RWForCausalLM(PreTrainedModel):
        config_class = RWConfig

        def __init__(self, config):
            super().__init__(config)
            self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
            self.post_init()

        def get_input_embeddings(self):
            return self.word_embeddings

        def get_output_embeddings(self):
            return self.lm_head

        def forward(self, input_ids):
            return self.lm_head(self.word_embeddings(input_ids))
"""


def legacy_default_tie() -> list[Any]:
    """A Falcon-RW-style checkpoint as the safetensors conversion left it: the embedding only, lm_head tied to it.

    4.x tied lm_head to the embedding by default (tie_word_embeddings=True), so
    the missing lm_head.weight was the embedding; untied, it stays random.
    """
    import torch
    from safetensors.torch import save_file

    namespace = legacy_module("legacy_rw", LEGACY_DEFAULT_TIE)
    config = namespace["RWConfig"]()
    directory = Path(tempfile.mkdtemp()) / "legacy_rw"
    config.save_pretrained(str(directory))
    weight = torch.randn(config.vocab_size, config.hidden_size, generator=torch.Generator().manual_seed(0))
    save_file({"word_embeddings.weight": weight}, str(directory / "model.safetensors"), metadata={"format": "pt"})
    model = namespace["RWForCausalLM"].from_pretrained(str(directory))
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        expected = torch.nn.functional.linear(weight[ids], weight)
        if not torch.allclose(model(ids), expected):
            raise AssertionError("the loaded legacy model gives other logits than its checkpoint (lm_head not tied)")
    return [model.lm_head.weight is model.word_embeddings.weight]


LEGACY_GENERATIVE_BASE = """
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutput

    class MixConfig(PretrainedConfig):
        model_type = "legacy_mix"

        def __init__(self, vocab_size=16, hidden_size=8, **kwargs):
            self.vocab_size = vocab_size
            self.hidden_size = hidden_size
            super().__init__(**kwargs)

    class MixPreTrainedModel(PreTrainedModel):
        # phi-1.5 MixFormer habit: the generation hook lives on the PreTrainedModel base
        config_class = MixConfig

        def prepare_inputs_for_generation(self, input_ids, **kwargs):
            return {"input_ids": input_ids}

    class MixForCausalLM(MixPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
            self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
            self.post_init()

        def forward(self, input_ids, **kwargs):
            return CausalLMOutput(logits=self.head(self.embed(input_ids)))
"""


def legacy_generative_base() -> list[Any]:
    """A model class built directly whose generation hook comes from its legacy base (as InternVL builds them)."""
    import torch

    namespace = legacy_module("legacy_mix", LEGACY_GENERATIVE_BASE)
    torch.manual_seed(0)
    model = namespace["MixForCausalLM"](namespace["MixConfig"]()).eval()
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False, pad_token_id=0)
    return [model.generation_config is not None, out.shape[1]]


def legacy_onnx_config() -> list[Any]:
    """A BERT-style remote configuration file that describes its ONNX export (import and subclass, no export)."""
    namespace = legacy_module("legacy_encoder_config", LEGACY_ONNX_CONFIG)
    return [namespace["EncoderConfig"]().hidden_size, namespace["EncoderOnnxConfig"].__mro__[1].__name__]


def legacy_extra_tokens() -> list[Any]:
    """A processor's reads of the tokenizer's additional special tokens (Florence-2's habit), then a set."""
    import json
    import tempfile

    from legacy_models import write_legacy_lm
    from transformers import AutoTokenizer

    directory = write_legacy_lm(Path(tempfile.mkdtemp()) / "legacy_lm")
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["additional_special_tokens"] = ["<od>", "</od>"]
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=True)
    read = [list(tokenizer.additional_special_tokens), list(tokenizer.additional_special_tokens_ids)]
    return [*read, tokenizer("a<od>b")["input_ids"]]


def legacy_named_tokens() -> list[Any]:
    """A tokenizer_config.json with a *_token of the model's own (ChatGLM-6B's gmask_token): encode, decode."""
    import json
    import tempfile

    from legacy_models import write_legacy_lm
    from transformers import AutoTokenizer

    directory = write_legacy_lm(Path(tempfile.mkdtemp()) / "legacy_lm")
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["gmask_token"] = "[gMASK]"
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=True)
    ids = tokenizer("a[gMASK]b")["input_ids"]
    with tempfile.TemporaryDirectory() as saved:
        tokenizer.save_pretrained(saved)
        again = AutoTokenizer.from_pretrained(saved, trust_remote_code=True)
    return [ids, tokenizer.decode(ids, skip_special_tokens=True), again("a[gMASK]b")["input_ids"]]


def legacy_config_base_reads() -> list[Any]:
    """A 2023 model reading the base attributes 4.x put on every config: unset, then set."""
    namespace = legacy_module("legacy_epoch", LEGACY_EMBEDDING_MODEL)
    return [namespace["build"](), namespace["build"](pad_token_id=3, bos_token_id=1, tie_word_embeddings=False)]


LEGACY_GPT2_STYLE_CONFIG = """
    from transformers import GPT2Config

    class NomicStyleConfig(GPT2Config):
        model_type = "legacy_nomic_style"

        def __init__(self, prenorm=False, rotary_emb_fraction=0.0, **kwargs):
            self.prenorm = prenorm
            self.rotary_emb_fraction = rotary_emb_fraction
            super().__init__(**kwargs)
"""


def legacy_config_field_types() -> list[Any]:
    """A config subclass of a model's config given a float where the field is an int (nomic-bert's n_inner)."""
    config_class = legacy_module("legacy_nomic_style", LEGACY_GPT2_STYLE_CONFIG)["NomicStyleConfig"]
    config = config_class(n_embd=16, n_inner=64.0, n_layer=1, n_head=2, rotary_emb_fraction=0.5)
    with tempfile.TemporaryDirectory() as directory:
        config.save_pretrained(directory)
        again = config_class.from_pretrained(directory)
    return [config.n_inner, again.n_inner, type(again.n_inner).__name__, again.rotary_emb_fraction]


LEGACY_OLMO_STYLE_CONFIG = """
    from transformers import AutoConfig, PretrainedConfig

    class HfOlmoStyleConfig(PretrainedConfig):
        model_type = "olmo"

        def __init__(self, d_model=8, n_layers=1, **kwargs):
            self.d_model = d_model
            self.n_layers = n_layers
            super().__init__(**kwargs)

    # Registered when the module is imported, as allenai's hf_olmo did; transformers took "olmo" in 4.40.
    AutoConfig.register("olmo", HfOlmoStyleConfig)
"""


def legacy_registered_model_type() -> list[Any]:
    """Remote code that registers its config under a model type transformers now ships (hf_olmo)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING, CONFIG_MAPPING_NAMES

    namespace = legacy_module("legacy_olmo_style", LEGACY_OLMO_STYLE_CONFIG)
    config = namespace["HfOlmoStyleConfig"](d_model=16)
    registered = CONFIG_MAPPING["olmo"] is namespace["HfOlmoStyleConfig"]
    # Where transformers has its own olmo it keeps it; before 4.40 the legacy class is registered.
    return [config.d_model, registered == ("olmo" not in CONFIG_MAPPING_NAMES)]


LEGACY_FORWARDING_MODEL = """
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class PassConfig(PretrainedConfig):
        model_type = "legacy_pass_lm"

        def __init__(self, vocab_size=32, hidden_size=8, use_cache=True, **kwargs):
            self.vocab_size = vocab_size
            self.hidden_size = hidden_size
            super().__init__(use_cache=use_cache, **kwargs)

    class PassLMHeadModel(PreTrainedModel):
        config_class = PassConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
            self.mix = nn.Linear(config.hidden_size, config.hidden_size)
            self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

        def forward(self, input_ids=None, attention_mask=None, past_key_values=None, use_cache=None,
                    output_attentions=None, output_hidden_states=None, return_dict=None):
            hidden = self.embed(input_ids)
            seen = hidden[:, :0] if past_key_values is None else past_key_values[0][0][:, 0]
            every = torch.cat([seen, hidden], dim=1)
            steps = torch.arange(1, every.shape[1] + 1, dtype=every.dtype)[None, :, None]
            running = (every.cumsum(1) / steps)[:, -hidden.shape[1]:]
            logits = self.head(torch.tanh(self.mix(running)))
            past = ((every[:, None], every[:, None]),) if use_cache else None
            return CausalLMOutputWithPast(logits=logits, past_key_values=past)

        def can_generate(self):
            return True

        def prepare_inputs_for_generation(self, input_ids, past_key_values=None, **kwargs):
            # hf_olmo's shape: every keyword generate() gives goes on to forward.
            if past_key_values:
                input_ids = input_ids[:, -1:]
            model_inputs = {"input_ids": input_ids, "past_key_values": past_key_values}
            model_inputs.update(kwargs)
            model_inputs["use_cache"] = kwargs.pop("use_cache", self.config.use_cache)
            return model_inputs
"""


def run_forwarded_keywords(workdir: Path) -> list[Any]:
    """generate() on a legacy model whose prepare_inputs_for_generation forwards every keyword (hf_olmo).

    Not an import scenario: without G15 alone (the other generate patches on), it must fail as hf_olmo did."""
    import torch

    namespace = legacy_module("legacy_pass_lm", LEGACY_FORWARDING_MODEL)
    model = namespace["PassLMHeadModel"](namespace["PassConfig"](bos_token_id=1, eos_token_id=31)).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    prompt = torch.tensor([[1, 5, 7, 9]])
    greedy = prompt
    with torch.no_grad():
        for _ in range(5):  # the model's own greedy decoding, without generate()
            next_token = model(greedy, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            greedy = torch.cat([greedy, next_token], dim=-1)
    cached = model.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=True, pad_token_id=0)
    uncached = model.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=False, pad_token_id=0)
    return [cached.tolist() == greedy.tolist(), uncached.tolist() == greedy.tolist(), greedy.shape[1]]


def _word_level_folder() -> Path:
    """A new folder holding a word-level tokenizer.json ("hello world" is [1, 2]) and its tokenizer_config.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    directory = Path(tempfile.mkdtemp())
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 1, "world": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.save(str(directory / "tokenizer.json"))
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>"}
    (directory / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return directory


def mpt_folder_tokenizer() -> list[int]:
    """The tokenizer of a folder whose config.json was written for remote MPT code, loaded without remote code."""
    from transformers import AutoTokenizer

    directory = _word_level_folder()
    config = {
        "model_type": "mpt", "architectures": ["MPTForCausalLM"], "d_model": 16, "n_heads": 2, "n_layers": 1,
        "vocab_size": 3, "attn_config": {"attn_type": "grouped_query_attention", "kv_n_heads": 1},
        "auto_map": {"AutoConfig": "configuration_mpt.MPTConfig", "AutoModelForCausalLM": "modeling_mpt.MPTForCausal"},
    }  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return list(AutoTokenizer.from_pretrained(str(directory))("hello world")["input_ids"])


def phi3_su_folder() -> list[Any]:
    """A 2024 Phi-3 128k folder (RoPE type "su") loaded without remote code: config, tokenizer, a forward past
    the pretraining length (the long factors), with weights set from a fixed sequence so every stack agrees."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    directory = _word_level_folder()
    config = {
        "model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 2, "num_key_value_heads": 2, "num_hidden_layers": 1, "vocab_size": 32,
        "max_position_embeddings": 256, "original_max_position_embeddings": 16, "rope_theta": 10000.0,
        "rope_scaling": {"type": "su", "short_factor": [1.0, 1.1, 1.2, 1.4, 1.8, 2.5, 3.5, 5.0],
                         "long_factor": [1.0, 1.5, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0]},
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
    }  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = AutoConfig.from_pretrained(str(directory))
    ids = list(AutoTokenizer.from_pretrained(str(directory))("hello world")["input_ids"])
    model = AutoModelForCausalLM.from_config(loaded, attn_implementation="eager").eval()
    with torch.no_grad():
        for index, (_, parameter) in enumerate(sorted(model.named_parameters())):
            values = torch.arange(parameter.numel(), dtype=torch.float64) * 0.7 + index
            parameter.copy_((torch.sin(values) * 0.5).reshape(parameter.shape))
        logits = model(torch.arange(24)[None] % 32).logits[0, -1, :4]
    return [loaded.original_max_position_embeddings, ids, [round(float(x), 4) for x in logits]]


def bos_setting_folder() -> list[Any]:
    """A folder in the shape of Phi-3's 2024 tokenizer files: a byte-pair tokenizer.json whose template has no BOS
    token, a tokenizer_config.json naming LlamaTokenizer that asks for it. Encoded, then saved and loaded again."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import AutoTokenizer

    directory = Path(tempfile.mkdtemp())
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=40, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    backend.train_from_iterator(["hello world", "hello", "world"], trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1", special_tokens=[])
    backend.save(str(directory / "tokenizer.json"))
    settings = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}  # fmt: skip
    (directory / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    ids = list(tokenizer("hello world")["input_ids"])
    with tempfile.TemporaryDirectory() as saved:
        tokenizer.save_pretrained(saved)
        again = list(AutoTokenizer.from_pretrained(saved)("hello world")["input_ids"])
    return [ids, again, tokenizer.decode(ids)]


LEGACY_CHAT_MODEL = """
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel

    class ChatConfig(PretrainedConfig):
        model_type = "legacy_chat_lm"

        def __init__(self, vocab_size=16, hidden_size=8, **kwargs):
            self.vocab_size = vocab_size
            self.hidden_size = hidden_size
            super().__init__(**kwargs)

    class ChatLMHeadModel(PreTrainedModel):
        config_class = ChatConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
            self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

        def forward(self, input_ids):
            return self.head(self.embed(input_ids))

        @torch.no_grad()
        def generate(self, input_ids, max_new_tokens=None):
            # Qwen-style: its own decoding loop, reading the generation config it expects to have.
            steps = max_new_tokens or self.generation_config.max_length - input_ids.shape[1]
            for _ in range(steps):
                next_token = self(input_ids)[:, -1].argmax(-1, keepdim=True)
                input_ids = torch.cat([input_ids, next_token], dim=-1)
            return input_ids
"""


def legacy_chat_generate() -> list[Any]:
    import torch

    namespace = legacy_module("legacy_chat_lm", LEGACY_CHAT_MODEL)
    torch.manual_seed(0)
    model = namespace["ChatLMHeadModel"](namespace["ChatConfig"](bos_token_id=1, eos_token_id=2)).eval()
    tokens = model.generate(torch.tensor([[1, 5, 7]]))
    return [model.generation_config.max_length, model.generation_config.eos_token_id, tokens.shape[1]]


LEGACY_CHECKPOINTED_MODEL = """
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel

    class BlockConfig(PretrainedConfig):
        model_type = "legacy_blocks"

        def __init__(self, hidden_size=8, num_layers=2, **kwargs):
            self.hidden_size = hidden_size
            self.num_layers = num_layers
            super().__init__(**kwargs)

    class BlockPreTrainedModel(PreTrainedModel):
        config_class = BlockConfig
        supports_gradient_checkpointing = True

        def _set_gradient_checkpointing(self, enable=True, gradient_checkpointing_func=None):
            # The 4.35+ override style (InternLM2, Yi, DeepSeek): one flag on the model.
            self.gradient_checkpointing = enable
            self._gradient_checkpointing_func = gradient_checkpointing_func

    class BlockModel(BlockPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.gradient_checkpointing = False
            size = config.hidden_size
            self.layers = nn.ModuleList(nn.Linear(size, size) for _ in range(config.num_layers))
            self.post_init()

        def forward(self, hidden):
            for layer in self.layers:
                if self.gradient_checkpointing and self.training:
                    hidden = self._gradient_checkpointing_func(layer.__call__, hidden)
                else:
                    hidden = layer(hidden)
            return hidden
"""


def legacy_gradient_checkpointing() -> list[Any]:
    import torch

    namespace = legacy_module("legacy_blocks", LEGACY_CHECKPOINTED_MODEL)
    torch.manual_seed(0)
    model = namespace["BlockModel"](namespace["BlockConfig"]())
    with torch.no_grad():  # fixed weights: the initialisation differs between versions
        for index, layer in enumerate(model.layers):
            layer.weight.copy_(torch.linspace(-0.5, 0.5, 64).reshape(8, 8) * (index + 1))
            layer.bias.zero_()
    model.gradient_checkpointing_enable()
    model.train()
    hidden = torch.ones(1, 8, requires_grad=True)
    model(hidden).sum().backward()
    return [model.gradient_checkpointing, round(float(hidden.grad.sum()), 5)]


LEGACY_CACHE_USER = """
    import torch
    from transformers.cache_utils import DynamicCache

    def roundtrip():
        # 2024 remote code: tuples in, DynamicCache inside, tuples out.
        legacy = tuple((torch.full((1, 2, 3, 4), float(i)), torch.full((1, 2, 3, 4), -float(i))) for i in range(2))
        cache = DynamicCache.from_legacy_cache(legacy)
        cache.update(torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4), 0)
        pairs = [[list(key.shape), float(value.sum())] for key, value in cache]
        first_key, first_value = cache[1]
        back = cache.to_legacy_cache()
        return [pairs, float(first_key.mean()), len(back), list(back[0][0].shape), cache.get_seq_length(1)]
"""


def legacy_cache_roundtrip() -> Any:
    return legacy_module("legacy_cache_user", LEGACY_CACHE_USER)["roundtrip"]()


LEGACY_ROPE_CONFIG = """
    from transformers import PretrainedConfig

    class RopeConfig(PretrainedConfig):
        model_type = "legacy_rope"

        def __init__(self, hidden_size=16, rope_theta=10000.0, rope_scaling=None, **kwargs):
            self.hidden_size = hidden_size
            self.rope_theta = rope_theta
            self.rope_scaling = rope_scaling
            super().__init__(**kwargs)

    def init_rope(config):
        # Llama-derived 2023 remote code (_init_rope)
        if config.rope_scaling is None:
            return ["plain", config.rope_theta]
        scaling_type = config.rope_scaling["type"]
        return [scaling_type, config.rope_scaling["factor"], config.rope_theta]
"""


def legacy_rope_configs(workdir: Path) -> list[Any]:
    """The RoPE a 2023 config selects, built directly and after save / reload, plain and scaled."""
    namespace = legacy_module("legacy_rope", LEGACY_ROPE_CONFIG)
    results = []
    for index, options in enumerate(
        ({}, {"rope_scaling": {"type": "linear", "factor": 2.0}},
         {"rope_scaling": {"type": "dynamic", "factor": 4.0}, "rope_theta": 500000.0})
    ):  # fmt: skip
        config = namespace["RopeConfig"](**options)
        config.save_pretrained(str(workdir / f"rope{index}"))
        reloaded = namespace["RopeConfig"].from_pretrained(str(workdir / f"rope{index}"))
        results += [namespace["init_rope"](config), namespace["init_rope"](reloaded)]
    return results


LEGACY_TUPLE_CACHE_MODEL = """
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class TupleConfig(PretrainedConfig):
        model_type = "legacy_tuple"

        def __init__(self, vocab_size=32, hidden_size=8, num_layers=2, **kwargs):
            self.vocab_size = vocab_size
            self.hidden_size = hidden_size
            self.num_layers = num_layers
            super().__init__(**kwargs)

    class TupleLM(PreTrainedModel):
        # 2023 style: past_key_values is a tuple of (key, value) per layer, built and read by the model itself.
        config_class = TupleConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
            size = config.hidden_size
            self.layers = nn.ModuleList(nn.Linear(size, size) for _ in range(config.num_layers))
            self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

        def forward(self, input_ids, past_key_values=None, attention_mask=None, use_cache=None, **kwargs):
            hidden = self.embed(input_ids)
            presents = ()
            for index, layer in enumerate(self.layers):
                keys = hidden if past_key_values is None else torch.cat([past_key_values[index][0], hidden], dim=1)
                counts = torch.arange(1, keys.shape[1] + 1, dtype=keys.dtype).view(1, -1, 1)
                context = (keys.cumsum(dim=1) / counts)[:, -hidden.shape[1]:]
                presents = presents + ((keys, keys),)
                hidden = torch.tanh(layer(hidden) + context)
            logits = self.head(hidden)
            return CausalLMOutputWithPast(logits=logits, past_key_values=presents if use_cache else None)

        def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, **kwargs):
            if past_key_values is not None:
                input_ids = input_ids[:, -1:]
            return {"input_ids": input_ids, "past_key_values": past_key_values, "use_cache": kwargs.get("use_cache")}
"""


def legacy_tuple_cache_generate() -> list[Any]:
    """Greedy generate of a 2023 tuple-cache model, with and without cache, on fixed weights."""
    import torch

    namespace = legacy_module("legacy_tuple", LEGACY_TUPLE_CACHE_MODEL)
    model = namespace["TupleLM"](namespace["TupleConfig"](bos_token_id=1, eos_token_id=31, pad_token_id=0)).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    ids = torch.tensor([[1, 5, 7, 9], [1, 3, 3, 8]])
    results = []
    for use_cache in (False, True):
        tokens = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, min_new_tokens=6, do_sample=False,
            use_cache=use_cache, pad_token_id=0,
        )  # fmt: skip
        results.append(tokens[:, ids.shape[1] :].tolist())
    return results


def legacy_attention_masks() -> list[Any]:
    """The masks 2024 remote code (DeepSeek, MiniCPM, Phi-3) builds with transformers.modeling_attn_mask_utils."""
    import torch
    from transformers.modeling_attn_mask_utils import (
        AttentionMaskConverter,
        _create_4d_causal_attention_mask,
        _prepare_4d_attention_mask,
        _prepare_4d_attention_mask_for_sdpa,
        _prepare_4d_causal_attention_mask,
        _prepare_4d_causal_attention_mask_for_sdpa,
    )

    def allowed(mask: Any) -> Any:
        return None if mask is None else (mask == 0).int().tolist()

    embeds = torch.zeros(2, 3, 4)
    padded = torch.tensor([[1, 1, 1], [0, 1, 1]])
    ones = torch.ones(1, 3, dtype=torch.long)
    converter = AttentionMaskConverter(is_causal=True, sliding_window=None)
    return [
        allowed(_prepare_4d_causal_attention_mask(padded, (2, 3), embeds, 0)),
        allowed(_create_4d_causal_attention_mask((1, 2), torch.float32, torch.device("cpu"), 2)),
        allowed(_prepare_4d_causal_attention_mask_for_sdpa(None, (2, 3), embeds, 0)),
        allowed(_prepare_4d_attention_mask(torch.tensor([[0, 1, 1]]), torch.float32, 2)),
        allowed(_prepare_4d_attention_mask_for_sdpa(ones, torch.float32)),
        allowed(converter.to_4d(torch.tensor([[0, 1, 1, 1]]), 2, torch.float32, key_value_length=4)),
    ]


def run_attn_mask_equal(workdir: Path) -> Any:
    """Every helper of hotfix's modeling_attn_mask_utils against transformers' own, on random masks and shapes."""
    import itertools

    import torch
    import transformers.modeling_attn_mask_utils as theirs

    from hotfix._patch import resolve_object

    ours = resolve_object("patches.attn_mask_utils")

    generator = torch.Generator().manual_seed(0)
    different, compared = [], 0

    def same(name: str, a: Any, b: Any) -> None:
        nonlocal compared
        compared += 1
        if (a is None) != (b is None) or (a is not None and not torch.equal(a, b)):
            different.append(name)

    for batch, query, past, window, dtype in itertools.product(
        (1, 2), (1, 3, 5), (0, 2), (None, 2, 4), (torch.float32, torch.bfloat16)
    ):
        total = query + past
        mask = (torch.rand(batch, total, generator=generator) > 0.3).long()
        mask[:, -1] = 1
        embeds = torch.zeros(batch, query, 4, dtype=dtype)
        for source, name in ((mask, "padded"), (torch.ones_like(mask), "ones"), (None, "none")):
            args = (source, (batch, query), embeds, past, window)
            label = f"{name} b{batch} q{query} p{past} w{window} {dtype}"
            same("causal " + label, ours._prepare_4d_causal_attention_mask(*args),
                 theirs._prepare_4d_causal_attention_mask(*args))  # fmt: skip
            same("sdpa " + label, ours._prepare_4d_causal_attention_mask_for_sdpa(*args),
                 theirs._prepare_4d_causal_attention_mask_for_sdpa(*args))  # fmt: skip
        same(f"create {batch} {query} {past} {window}",
             ours._create_4d_causal_attention_mask((batch, query), dtype, "cpu", past, window),
             theirs._create_4d_causal_attention_mask((batch, query), dtype, "cpu", past, window))  # fmt: skip
        same(f"expand {batch} {query}", ours._prepare_4d_attention_mask(mask, dtype, query),
             theirs._prepare_4d_attention_mask(mask, dtype, query))  # fmt: skip
        cross = "cross " if bool(torch.all(mask == 1)) and query not in (1, total) else ""
        same(f"expand sdpa {cross}{batch} {query}", ours._prepare_4d_attention_mask_for_sdpa(mask, dtype, query),
             theirs._prepare_4d_attention_mask_for_sdpa(mask, dtype, query))  # fmt: skip
    return {"compared": compared, "different": different}


def tiny_llama() -> Any:
    """A two-layer Llama built from a config (no weights loaded), for calling model helpers."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=32,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def adamw_step(optimizer_class: Any) -> list[list[float]]:
    """Three AdamW steps, with and without bias correction and weight decay, as legacy training code builds it."""
    import torch

    runs = []
    for options in ({"weight_decay": 0.0, "correct_bias": True}, {"weight_decay": 0.1, "correct_bias": False}):
        parameter = torch.nn.Parameter(torch.ones(2))
        optimizer = optimizer_class([parameter], lr=0.1, **options)
        for step in range(3):
            parameter.grad = torch.tensor([1.0, -0.5]) * (step + 1)
            optimizer.step()
        runs.append([round(x, 6) for x in parameter.detach().tolist()])
    return runs


def warper_call(base: Any) -> list[float]:
    """A legacy warper subclass (double the scores), called the way generate calls processors."""
    import torch

    class Double(base):  # type: ignore[misc,valid-type]
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            return scores * 2

    return [float(x) for x in Double()(torch.tensor([[1]]), torch.ones(1, 2)).flatten()]


def run_import(name: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(IMPORTS[name], namespace)
    return namespace["result"]


def run_legacy_lm(workdir: Path) -> Any:
    from legacy_models import run_legacy_lm, write_legacy_lm

    return run_legacy_lm(write_legacy_lm(workdir / "legacy_lm"))


def run_legacy_tok(workdir: Path) -> Any:
    from legacy_models import run_package_tokenizer, write_legacy_lm

    return run_package_tokenizer(write_legacy_lm(workdir / "legacy_lm"))


SPM_TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "code model token"]


def write_legacy_spm(directory: Path) -> Path:
    """The LegacySPM tokenizer package (tests/fixtures/legacy_spm) with a SentencePiece model trained here."""
    import random
    import shutil

    import sentencepiece

    directory.mkdir(parents=True, exist_ok=True)
    for source in (Path(__file__).resolve().parent / "fixtures" / "legacy_spm").glob("*.py"):
        shutil.copy(source, directory / source.name)
    words = "the quick brown fox jumps over lazy dog hello world model code token python import value".split()  # noqa: SIM905
    generator = random.Random(0)
    lines = [" ".join(generator.choice(words) for _ in range(10)) for _ in range(500)]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(directory / "tokenizer"), vocab_size=80, model_type="bpe",
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )  # fmt: skip
    (directory / "tokenizer.vocab").unlink()
    config = {
        "tokenizer_class": "LegacySPMTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_legacy_spm.LegacySPMTokenizer",
                                       "tokenization_legacy_spm_fast.LegacySPMTokenizerFast"]},
    }  # fmt: skip
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def run_legacy_spm_fast(workdir: Path) -> Any:
    """The fast LegacySPM tokenizer, converted from the slow one, must encode as SentencePiece does (as on 4.x)."""
    import sentencepiece
    from transformers import AutoTokenizer

    directory = write_legacy_spm(workdir / "legacy_spm")
    tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=True)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    ids = [tokenizer(text)["input_ids"] for text in SPM_TEXTS]
    return {
        "class": type(tokenizer).__name__,
        "as_sentencepiece": ids == [[1, *processor.encode(text)] for text in SPM_TEXTS],
        "decoded": [tokenizer.decode(row, skip_special_tokens=True) for row in ids],
    }


def run_direct(workdir: Path) -> Any:
    """Build the legacy model class directly (as InternVL builds its language model), not through AutoModel."""
    import torch
    from legacy_models import write_legacy_lm
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    directory = write_legacy_lm(workdir / "legacy_lm")
    config = AutoConfig.from_pretrained(str(directory), trust_remote_code=True)
    model_class = get_class_from_dynamic_module("modeling_legacy_lm.LegacyLMForCausalLM", str(directory))
    torch.manual_seed(0)
    model = model_class(config).eval()
    input_ids = torch.tensor([[1, 5, 9, 14, 20, 33]])
    mask = torch.ones_like(input_ids)
    mask[0, 0] = 0
    with torch.no_grad():
        tokens = model.generate(input_ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    return {"tokens": tokens.tolist(), "has_generation_config": model.generation_config is not None}


def run_vendored(workdir: Path) -> Any:
    """The LegacyLM files vendored into a project's own package (as LLaVA and InternVL do), not remote code.

    The package ``vendored_models.legacy_lm`` is imported as a plain package and
    its model class loads the stored checkpoint with ``from_pretrained``: hotfix
    sees the module names ``vendored_models.*``, which are legacy only when
    declared (``HOTFIX_LEGACY`` or ``enable(legacy=...)``).
    """
    import importlib
    import shutil

    from legacy_models import run_legacy_lm, write_legacy_lm

    import hotfix

    checkpoint = write_legacy_lm(workdir / "checkpoint")
    package = workdir / "vendored_models" / "legacy_lm"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("", encoding="utf-8")
    (package / "__init__.py").write_text("", encoding="utf-8")
    for source in checkpoint.glob("*.py"):
        shutil.copy(source, package / source.name)
    sys.path.insert(0, str(workdir))
    modeling = importlib.import_module("vendored_models.legacy_lm.modeling_legacy_lm")

    result = run_legacy_lm(checkpoint, model_class=modeling.LegacyLMForCausalLM)
    result["legacy"] = hotfix.is_legacy(modeling.__name__)
    return result


def run_fixed_lm(workdir: Path) -> Any:
    from legacy_models import run_legacy_lm, write_hand_fixed_legacy_lm

    return run_legacy_lm(write_hand_fixed_legacy_lm(workdir / "legacy_lm_fixed"))


def run_follow(workdir: Path) -> Any:
    """A prefix-triggered patch reaches remote code loaded by get_class_in_module."""
    from packaging.specifiers import SpecifierSet

    import hotfix

    seen: list[str] = []

    def apply(module: types.ModuleType, shims: hotfix.Shims) -> None:
        seen.append(module.__name__)
        shims.set(module, "HOTFIX_SAW_ME", True)

    class Pack:
        @hotfix.hookimpl
        def hotfix_patches(self) -> list[hotfix.Patch]:
            return [
                hotfix.Patch(
                    id="test-follow", summary="marks remote modules", distribution="transformers",
                    affected=SpecifierSet(">=4"), probe=lambda m: (True, "remote module"), apply=apply,
                    prefixes=("transformers_modules.",),
                )
            ]  # fmt: skip

    selection = os.environ.get("HOTFIX_PATCHES")  # what the test selected, set by the first enable()
    hotfix.disable()
    hotfix.register_plugin(Pack(), name="follow")
    hotfix.enable(patches=selection.split(",") if selection else None)
    result = run_legacy_lm(workdir)
    modeling = [name for name in sys.modules if name.endswith(".modeling_legacy_lm")]
    marked = [bool(getattr(sys.modules[name], "HOTFIX_SAW_ME", False)) for name in modeling]
    return {"seen": sorted(seen), "modeling": modeling, "marked": marked, "tokens": result["tokens"]}


def run_modern(workdir: Path) -> Any:
    """A modern Llama and GPT-2 built from configs: saved, reloaded, forward and greedy generate."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    builders = {
        "llama": lambda: LlamaForCausalLM(
            LlamaConfig(
                vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            )
        ),
        "gpt2": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=128)),
    }  # fmt: skip
    results = {}
    input_ids = torch.tensor([[1, 5, 9, 14, 20, 33], [3, 7, 7, 40, 41, 3]])
    for name, build in builders.items():
        torch.manual_seed(0)
        build().save_pretrained(workdir / name)
        model = AutoModelForCausalLM.from_pretrained(workdir / name).eval()
        with torch.no_grad():
            logits = model(input_ids).logits
            tokens = model.generate(input_ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
            uncached = model.generate(input_ids, max_new_tokens=8, do_sample=False, pad_token_id=0, use_cache=False)
        results[name] = {"logits": logits.flatten().tolist(), "tokens": tokens.tolist(), "uncached": uncached.tolist()}
    return results


def run_revert(workdir: Path) -> Any:
    """After disable(), every namespace hotfix touched holds exactly the objects it held before."""
    import transformers.cache_utils
    import transformers.generation.utils
    import transformers.modeling_utils
    import transformers.utils
    import transformers.utils.import_utils

    import hotfix
    from hotfix._subclass import all_subclasses

    cache_classes = [transformers.cache_utils.Cache, *transformers.cache_utils.Cache.__subclasses__()]
    owners = [
        transformers.modeling_utils, transformers.cache_utils, transformers.utils, transformers.utils.import_utils,
        transformers.modeling_utils.PreTrainedModel, transformers.generation.utils.GenerationMixin, *cache_classes,
    ]  # fmt: skip
    before = [dict(vars(owner)) for owner in owners]
    hotfix.enable()
    tokens = run_legacy_lm(workdir)["tokens"]
    import transformers.deepspeed

    legacy_classes = [c for c in all_subclasses(transformers.modeling_utils.PreTrainedModel)
                      if c.__module__.startswith("transformers_modules.")]  # fmt: skip
    applied = [p.id for p in hotfix.status().patches if p.state == "applied"]
    hotfix.disable()
    differences = []
    for owner, snapshot in zip(owners, before, strict=True):
        now = dict(vars(owner))
        for key in set(snapshot) | set(now):
            if snapshot.get(key, "<missing>") is not now.get(key, "<missing>"):
                differences.append(f"{getattr(owner, '__name__', owner)}.{key}")
    return {
        "applied": applied,
        "differences": sorted(differences),
        "deepspeed_left": "transformers.deepspeed" in sys.modules,
        "legacy_tied_keys": [type(vars(c).get("_tied_weights_keys")).__name__ for c in legacy_classes
                             if "_tied_weights_keys" in vars(c)],
        "tokens": tokens,
    }  # fmt: skip


def run_packages(workdir: Path) -> Any:
    """Every part of every fixture package written for this transformers or older, each on its own.

    A part that fails is reported as data (its first failing stage and the
    error) and the next one runs: the packages share nothing but transformers.
    """
    import transformers
    from legacy_models import PACKAGES, package_parts, run_package
    from packaging.version import Version

    here = Version(transformers.__version__)
    outcomes: dict[str, dict[str, Any]] = {}
    for name in PACKAGES:
        for part, since in package_parts(name).items():
            if here < Version(since):
                continue
            try:
                result = run_package(name, workdir / f"{name}-{part}", part)
            except Exception as error:  # noqa: BLE001 - reported to the test as data
                outcome = {
                    "ok": False,
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc(),
                }
            else:
                outcome = {"ok": True, "error": None, "result": result}
            outcomes.setdefault(name, {})[part] = outcome
    return outcomes


def run_big_loads(workdir: Path) -> Any:
    """Each package's stored weights loaded as large models are: ``device_map="auto"``, then with a memory budget
    below the model's size and the rest offloaded to disk. Records where the legacy class's ``__init__`` put its
    parameters and buffers, where loading put the modules, the logits and greedy tokens, and whether weights
    missing from the checkpoint were initialised as ``_init_weights`` says (LegacyLM without its final norm)."""
    import safetensors.torch
    import torch
    import transformers
    from legacy_models import MASK, PACKAGES, PROMPTS, write_package
    from transformers import AutoModelForCausalLM

    seen: dict[str, Any] = {}
    plain_buffers: dict[str, Any] = {}
    post_init = transformers.PreTrainedModel.post_init

    def recording_post_init(self: Any) -> None:
        # The outermost class calls post_init last: what it saw is what the whole model was built with.
        seen["parameters"] = sorted({p.device.type for p in self.parameters()})
        seen["buffers"] = sorted({b.device.type for b in self.buffers()})
        post_init(self)

    transformers.PreTrainedModel.post_init = recording_post_init
    results: dict[str, Any] = {}
    input_ids = torch.tensor(PROMPTS)
    mask = torch.tensor(MASK)
    for name in PACKAGES:
        directory = write_package(name, workdir / name)
        stored = safetensors.torch.load_file(str(directory / "model.safetensors"))
        size = sum(tensor.numel() * tensor.element_size() for tensor in stored.values())
        budget = {
            "device_map": "auto",
            "max_memory": {"cpu": size * 2 // 3},
            "offload_folder": str(workdir / f"{name}-offload"),
        }
        loadings: dict[str, dict[str, Any]] = {"auto": {"device_map": "auto"}, "offload": budget}
        for how, options in loadings.items():
            seen.clear()
            try:
                model = AutoModelForCausalLM.from_pretrained(str(directory), trust_remote_code=True, **options).eval()
                with torch.no_grad():
                    logits = model(input_ids, attention_mask=mask).logits
                    tokens = model.generate(input_ids, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                            pad_token_id=0, eos_token_id=2)  # fmt: skip
            except Exception as error:  # noqa: BLE001 - reported to the test as data
                results[f"{name} {how}"] = {"error": f"{type(error).__name__}: {error}"}
                continue
            if how == "auto":
                plain_buffers = {key: value.clone() for key, value in model.named_buffers() if "scale" not in key}
            results[f"{name} {how}"] = {
                "built": dict(seen),
                "placed": sorted(set(map(str, (getattr(model, "hf_device_map", None) or {}).values()))),
                "logits": [[round(x, 6) for x in row] for row in logits[:, -1, :].tolist()],
                "tokens": tokens[:, input_ids.shape[1] :].tolist(),
            }
            del model
        # Quantized (where optimum-quanto is installed): the quantizer needs the parameters on meta; the buffers
        # that __init__ computed must still be the unquantized model's, and the logits close to its.
        if (
            importlib.util.find_spec("optimum") is not None
            and importlib.util.find_spec("optimum.quanto") is not None
            and "error" not in results[f"{name} auto"]
        ):
            from transformers import QuantoConfig

            model = AutoModelForCausalLM.from_pretrained(
                str(directory), trust_remote_code=True, quantization_config=QuantoConfig(weights="int8")
            ).eval()
            with torch.no_grad():
                logits = model(input_ids, attention_mask=mask).logits[:, -1, :]
            plain = torch.tensor(results[f"{name} auto"]["logits"])
            buffers = dict(model.named_buffers())
            results[f"{name} quantized"] = {
                "quantized": sorted({type(m).__name__ for m in model.modules() if "quanto" in type(m).__module__}),
                "buffers_equal": all(torch.equal(buffers[key], value) for key, value in plain_buffers.items()),
                "logits_error": float((logits - plain).abs().max() / plain.abs().max()),
            }
            del model
    # Weights the checkpoint lacks are initialised by the model's own _init_weights, as 4.x did.
    directory = workdir / "legacy_lm"
    weights = safetensors.torch.load_file(str(directory / "model.safetensors"))
    missing = [key for key in weights if key.startswith("transformer.ln_f.")]
    kept = {key: value for key, value in weights.items() if key not in missing}
    safetensors.torch.save_file(kept, str(directory / "model.safetensors"), metadata={"format": "pt"})
    model = AutoModelForCausalLM.from_pretrained(str(directory), trust_remote_code=True)
    state = model.state_dict()
    results["missing"] = {key: sorted({float(x) for x in state[key].flatten()}) for key in missing}
    return results


def filtered(filtering: Any) -> list[Any]:
    """A minGPT-style sampling step: top-k 3 then top-p 0.8 of fixed logits, and each alone."""
    import torch

    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0, 0.5, 3.5], [0.0, 0.1, 0.2, 5.0, 0.3, 0.4]])

    def kept(tensor: Any) -> list[list[int]]:
        return [[int(v) for v in torch.isfinite(row).nonzero().flatten().tolist()] for row in tensor]

    return [kept(filtering(logits.clone(), top_k=3, top_p=0.8)), kept(filtering(logits.clone(), top_k=2)),
            kept(filtering(logits.clone(), top_p=0.5, min_tokens_to_keep=2)),
            filtering(logits.clone(), top_k=1, filter_value=-5.0)[0].tolist()]  # fmt: skip


def legacy_prune_conv1d(prune_conv1d_layer: Any) -> list[Any]:
    """GPT-2-style head pruning with *prune_conv1d_layer*: output features 1 and 3 of a Conv1D, then inputs 0 and 2."""
    import torch
    from transformers.pytorch_utils import Conv1D

    layer = Conv1D(4, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(12.0).view(3, 4))
        layer.bias.copy_(torch.arange(4.0))
    pruned = prune_conv1d_layer(layer, torch.tensor([1, 3]))
    kept_inputs = prune_conv1d_layer(layer, torch.tensor([0, 2]), dim=0)
    return [pruned.weight.tolist(), pruned.bias.tolist(), pruned.nf, kept_inputs.weight.tolist(),
            kept_inputs.bias.tolist(), pruned.weight.requires_grad]  # fmt: skip


def legacy_sequence_summary() -> list[Any]:
    """A GPT-2 double-heads style head: SequenceSummary from modeling_utils, as code before 4.53 imports it."""
    import torch
    from transformers import GPT2Config
    from transformers.modeling_utils import SequenceSummary

    config = GPT2Config(n_embd=4, summary_type="cls_index", summary_use_proj=True, summary_proj_to_labels=True,
                        num_labels=1, summary_activation="tanh", summary_first_dropout=0.1)  # fmt: skip
    head = SequenceSummary(config).eval()
    with torch.no_grad():
        head.summary.weight.fill_(0.05)
        head.summary.bias.fill_(-1.0)
    hidden = torch.arange(24.0).view(2, 3, 4)
    picked = head(hidden, torch.tensor([0, 2]))
    last = head(hidden)
    mean = SequenceSummary(GPT2Config(n_embd=4, summary_type="mean", summary_use_proj=False)).eval()(hidden)
    return [list(picked.shape), [round(v, 4) for v in picked.flatten().tolist()],
            [round(v, 4) for v in last.flatten().tolist()], mean.tolist()]  # fmt: skip


LEGACY_VISION_TOWERS = """
    import torch
    from torch import nn
    from transformers import CLIPVisionModel, SiglipVisionModel
    from transformers.models.clip.modeling_clip import CLIPVisionTransformer
    from transformers.models.siglip.modeling_siglip import SiglipVisionTransformer

    class CLIPVisionTower(nn.Module):
        # LLaVA / InternLM-XComposer2 habit: a pretrained CLIP tower whose last layer is dropped and whose
        # position embedding is resized for another image size, both through the inner vision_model
        def __init__(self, path, image_size):
            super().__init__()
            self.vision_tower = CLIPVisionModel.from_pretrained(path)
            del self.vision_tower.vision_model.encoder.layers[-1:]
            self.resize_pos(image_size)

        def inner(self) -> CLIPVisionTransformer:
            return self.vision_tower.vision_model

        def resize_pos(self, image_size):
            embeddings = self.inner().embeddings
            old = embeddings.position_embedding.weight.detach()
            side, new_side = int((old.shape[0] - 1) ** 0.5), image_size // embeddings.patch_size
            grid = old[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = nn.functional.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
            weight = torch.cat([old[:1], grid.permute(0, 2, 3, 1).reshape(new_side * new_side, -1)])
            embeddings.position_embedding = nn.Embedding.from_pretrained(weight, freeze=False)
            embeddings.num_patches = new_side * new_side
            embeddings.num_positions = embeddings.num_patches + 1
            embeddings.register_buffer("position_ids", torch.arange(embeddings.num_positions).expand((1, -1)),
                                       persistent=False)
            embeddings.image_size = image_size

        def forward(self, images):
            return self.vision_tower(images, output_hidden_states=True).hidden_states[-1]

    class SiglipVisionTower(nn.Module):
        # LLaVA-OneVision habit: the last layer and the pooling head of a pretrained SigLIP tower dropped
        def __init__(self, path):
            super().__init__()
            self.vision_tower = SiglipVisionModel.from_pretrained(path)
            del self.vision_tower.vision_model.encoder.layers[-1:]
            self.vision_tower.vision_model.head = nn.Identity()

        def inner(self) -> SiglipVisionTransformer:
            return self.vision_tower.vision_model

        def forward(self, images):
            return self.vision_tower(images, output_hidden_states=True).hidden_states[-1]
"""


def legacy_vision_towers(workdir: Path) -> list[Any]:
    """CLIP and SigLIP towers used the way 2023-2024 vision-language code used them (M41)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    def saved(model: Any, name: str) -> str:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _, parameter in sorted(model.named_parameters()):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
        directory = workdir / name
        model.save_pretrained(str(directory))
        return str(directory)

    sizes = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
             "image_size": 16, "patch_size": 8}  # fmt: skip
    namespace = legacy_module("legacy_vision_towers", LEGACY_VISION_TOWERS)
    clip = namespace["CLIPVisionTower"](saved(CLIPVisionModel(CLIPVisionConfig(**sizes)), "clip"), 24).eval()
    siglip = namespace["SiglipVisionTower"](saved(SiglipVisionModel(SiglipVisionConfig(**sizes)), "siglip")).eval()
    images = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        clip_out, siglip_out = clip(images), siglip(images[:, :, :16, :16])
    return [
        [sum(key.endswith("mlp.fc1.weight") for key in tower.state_dict()) for tower in (clip, siglip)],
        type(siglip.inner().head).__name__,
        [list(clip_out.shape), list(siglip_out.shape)],
        [round(v, 4) for v in clip_out[0, :2, :4].flatten().tolist()],
        [round(v, 4) for v in siglip_out[0, :2, :4].flatten().tolist()],
    ]


SCENARIOS = {
    "packages": run_packages,
    "legacy_lm": run_legacy_lm, "legacy_tok": run_legacy_tok, "direct": run_direct, "fixed_lm": run_fixed_lm,
    "revert": run_revert, "modern": run_modern, "follow": run_follow, "attn_mask_equal": run_attn_mask_equal,
    "legacy_spm_fast": run_legacy_spm_fast,
    "vendored": run_vendored, "big_loads": run_big_loads, "g15": run_forwarded_keywords, "m41": legacy_vision_towers,
}  # fmt: skip


def _run_one(name: str, workdir: Path) -> dict[str, Any]:
    try:
        result = run_import(name) if name in IMPORTS else SCENARIOS[name](workdir)
    except Exception as error:  # noqa: BLE001 - reported to the test as data
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    return {"ok": True, "error": None, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--hotfix", choices=["before", "after"])
    parser.add_argument("--patches")
    parser.add_argument("--workdir")
    parser.add_argument("--legacy", help="module globs for hotfix.enable(legacy=...)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp())
    outcome: dict[str, Any] = {"ok": True, "error": None, "result": None, "status": {}}
    selection = args.patches.split(",") if args.patches else None
    legacy = args.legacy.split(",") if args.legacy else None
    if args.hotfix == "before":
        import hotfix

        hotfix.enable(patches=selection, legacy=legacy)
    elif args.hotfix == "after":
        import transformers.modeling_utils

        import hotfix

        hotfix.enable(patches=selection, legacy=legacy)
    names = args.name.split(",")
    unknown = [n for n in names if n not in IMPORTS and n not in SCENARIOS]
    if unknown or (len(names) > 1 and any(n not in IMPORTS for n in names)):
        raise SystemExit(
            f"unknown scenario {', '.join(unknown) or args.name} (a comma-separated batch takes import scenarios only);"
            f" known: {', '.join([*IMPORTS, *SCENARIOS])}"
        )
    if len(names) > 1:
        # Independent import scenarios share one interpreter: a failed import has no side effect.
        outcome["batch"] = {name: _run_one(name, workdir) for name in names}
    else:
        outcome.update(_run_one(names[0], workdir))
    if "hotfix" in sys.modules:
        import hotfix

        outcome["status"] = {p.id: {"state": p.state, "reason": p.reason} for p in hotfix.status().patches}
    import transformers

    outcome["transformers"] = transformers.__version__
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
