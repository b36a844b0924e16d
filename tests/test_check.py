"""``hotfix check``: a model folder's own code, stage by stage, on a tiny model shrunk from its config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotfix._check import CheckError, shrink_config

ROOT = Path(__file__).resolve().parent.parent


def test_a_2023_config_is_shrunk_consistently() -> None:
    config = {
        "hidden_size": 4096, "num_attention_heads": 32, "multi_query_group_num": 2, "kv_channels": 128,
        "num_layers": 28, "ffn_hidden_size": 13696, "padded_vocab_size": 65024, "seq_length": 32768,
        "eos_token_id": 2, "rope_ratio": 500, "torch_dtype": "bfloat16", "use_cache": True,
        "text_config": {"hidden_size": 2048, "num_hidden_layers": 24},
    }  # fmt: skip
    shrunk = shrink_config(config)
    assert shrunk["hidden_size"] == 64 and shrunk["num_attention_heads"] == 4 and shrunk["kv_channels"] == 16
    assert shrunk["num_layers"] == 2 and shrunk["ffn_hidden_size"] == 128 and shrunk["seq_length"] == 512
    assert shrunk["padded_vocab_size"] == 65024 and shrunk["eos_token_id"] == 2  # the tokenizer's ids must fit
    assert shrunk["text_config"] == {"hidden_size": 64, "num_hidden_layers": 2}
    assert shrunk["torch_dtype"] == "float32" and shrunk["use_cache"] is True  # the same numbers on every stack


def test_a_config_the_rules_cannot_shrink_is_refused_naming_the_keys() -> None:
    with pytest.raises(CheckError, match=r"no shrink rule for vision\.embed_width=1152"):
        shrink_config({"hidden_size": 4096, "vision": {"embed_width": 1152}})
    with pytest.raises(CheckError, match="quantization_config: the weights are quantized"):
        shrink_config({"hidden_size": 4096, "quantization_config": {"bits": 4}})
    assert shrink_config({"hidden_size": 4096, "quantization_bit": 0})["quantization_bit"] == 0
    with pytest.raises(CheckError, match="wbits: the weights are GPTQ-quantized"):
        shrink_config({"n_embd": 6144, "wbits": 8})
    assert shrink_config({"n_embd": 6144, "wbits": 32})["wbits"] == 32  # MOSS's full-precision setting


def test_an_fp8_quantization_config_is_dropped_with_a_note() -> None:
    shrunk = shrink_config({"hidden_size": 4096, "quantization_config": {"quant_method": "fp8", "fmt": "e4m3"}})
    assert "quantization_config" not in shrunk
    assert shrunk["_hotfix_check_notes"] == [
        "dropped quantization_config: the checkpoint's fp8 quantization: the code is checked unquantized"
    ]


def _check(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    completed = subprocess.run(
        [sys.executable, "-m", "hotfix", "check", "--json", *args],
        capture_output=True, text=True, env={**environment, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=600,
    )  # fmt: skip
    assert completed.stdout, completed.stderr[-2000:]
    return completed.returncode, json.loads(completed.stdout)


def test_a_folder_without_config_is_an_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hotfix", "check", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2 and "has no config.json" in completed.stderr


def test_help_says_that_it_runs_the_models_code() -> None:
    completed = subprocess.run([sys.executable, "-m", "hotfix", "check", "--help"], capture_output=True, text=True)
    assert "runs the Python files of the folder" in " ".join(completed.stdout.split())


def test_a_refused_config_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8, "quantization_config": {"bits": 4}}))
    code, report = _check(str(tmp_path))
    assert code == 1 and "quantization_config" in report["refused"]


@pytest.mark.transformers
def test_every_stage_of_a_legacy_package_with_hotfix_and_the_failures_without(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from legacy_models import package_parts, write_package
    from packaging.version import Version
    from test_transformers import TRANSFORMERS, affected

    since = package_parts("legacy_glm")["model"]
    if TRANSFORMERS is None or Version(TRANSFORMERS) < Version(since):
        pytest.skip(f"legacy_glm is written against transformers >= {since}")
    folder = write_package("legacy_glm", tmp_path / "legacy_glm", weights=False)
    code, (patched, plain) = _check(str(folder), "--compare")
    stages = {s["stage"]: s for s in patched["stages"]}
    assert list(stages) == ["construct", "save and reload", "forward", "generate with cache",
                            "generate without cache", "cache agrees", "tokenizer"]  # fmt: skip
    assert all(s["ok"] for s in stages.values()), patched["stages"]
    assert code == 0 and len(patched["tokens"]) == 6 and patched["tokens"] == patched["tokens_no_cache"]
    g1 = "g1-extract-past-from-model-output"
    assert g1 in patched["patches"] or not affected(g1)
    if affected("m18-config-generation-defaults"):  # and the other breaks of the package's model code
        failed = [s for s in plain["stages"] if not s["ok"]]
        assert failed and failed[0]["stage"] == "construct"
        assert failed[0]["where"].startswith("modeling_legacy_glm.py:"), failed[0]
        assert "hotfix: patch " in failed[0]["fix"] and " covers this" in failed[0]["fix"]  # what to do


@pytest.mark.transformers
def test_a_failing_stage_names_the_line_of_the_models_file(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from legacy_models import write_package

    folder = write_package("legacy_lm", tmp_path / "legacy_lm")
    modeling = folder / "modeling_legacy_lm.py"
    text = modeling.read_text(encoding="utf-8")
    marker = "    def prepare_inputs_for_generation("
    assert marker in text
    modeling.write_text(text.replace(marker, "    def prepare_inputs_for_generation(self, *a, **k):\n"
                                     "        raise ValueError('broken on purpose')\n\n    def _old(", 1))  # fmt: skip
    code, report = _check(str(folder))
    stages = {s["stage"]: s for s in report["stages"]}
    assert code == 1 and stages["forward"]["ok"] and not stages["generate with cache"]["ok"]
    assert "broken on purpose" in stages["generate with cache"]["error"]
    assert stages["generate with cache"]["where"].startswith("modeling_legacy_lm.py:")


@pytest.mark.transformers
def test_output_of_the_models_code_without_a_newline_does_not_hide_the_report(tmp_path: Path) -> None:
    # transformers' "Do you wish to run the custom code? [y/N] " prompt ends without a newline (MiniCPM-V's processor
    # asked it when vendored): the report printed after it was lost and the check said "crashed".
    pytest.importorskip("transformers")
    from legacy_models import write_package

    folder = write_package("legacy_lm", tmp_path / "legacy_lm")
    modeling = folder / "modeling_legacy_lm.py"
    modeling.write_text("import sys\nsys.stdout.write('Do you wish to run the custom code? [y/N] ')\n"
                        + modeling.read_text(encoding="utf-8"), encoding="utf-8")  # fmt: skip
    _code, report = _check(str(folder))
    assert "crashed" not in report, report
    assert {s["stage"] for s in report["stages"]} >= {"construct", "forward"}


OLMO_STYLE_HELPER = """
from transformers import AutoConfig, PretrainedConfig


class HelperConfig(PretrainedConfig):
    model_type = "olmo"


AutoConfig.register("olmo", HelperConfig)
"""


@pytest.mark.transformers
def test_vendored_mode_also_declares_the_modules_hotfix_legacy_names(tmp_path: Path) -> None:
    # OLMo's files import the installed hf_olmo package besides themselves; that copy registers "olmo" too (M35).
    pytest.importorskip("transformers")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if "olmo" not in CONFIG_MAPPING_NAMES:
        pytest.skip("transformers has no olmo of its own here: registering one does not fail")
    from legacy_models import write_package

    folder = write_package("legacy_lm", tmp_path / "legacy_lm", weights=False)
    helper = tmp_path / "site" / "olmo_style_helper"
    helper.mkdir(parents=True)
    (helper / "__init__.py").write_text(OLMO_STYLE_HELPER, encoding="utf-8")
    modeling = folder / "modeling_legacy_lm.py"
    modeling.write_text("import olmo_style_helper  # noqa: F401\n" + modeling.read_text("utf-8"), encoding="utf-8")
    path = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    _code, report = _check(str(folder), "--vendored", env=path)
    assert "already used by a Transformers config" in report["stages"][0]["error"], report["stages"]
    code, report = _check(str(folder), "--vendored", env={**path, "HOTFIX_LEGACY": "olmo_style_helper"})
    assert report["legacy"] == ["hotfix_check_vendored", "olmo_style_helper"]
    assert code == 0 and all(s["ok"] for s in report["stages"]), report["stages"]


@pytest.mark.transformers
def test_vendored_mode_imports_the_files_as_a_plain_package_declared_legacy(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from legacy_models import write_package

    folder = write_package("legacy_lm", tmp_path / "legacy_lm", weights=False)
    code, report = _check(str(folder), "--vendored")
    assert report["vendored"] == "hotfix_check_vendored"
    assert code == 0 and all(s["ok"] for s in report["stages"]), report["stages"]
    assert len(report["tokens"]) == 6


# Code appended to the LegacyLM fixture's files to break exactly one stage (the stages before it still pass).
_BROKEN_PREPARE = """
    _prepare = LegacyLMForCausalLM.prepare_inputs_for_generation
    def _broken_prepare(self, input_ids, past_key_values=None, **kwargs):
        if {condition}:
            raise ValueError("broken on purpose")
        return _prepare(self, input_ids, past_key_values=past_key_values, **kwargs)
    LegacyLMForCausalLM.prepare_inputs_for_generation = _broken_prepare
    """
BREAKS = {
    "construct": (
        "modeling",
        """
        def _broken_init(self, config):
            raise ValueError("broken on purpose")
        LegacyLMForCausalLM.__init__ = _broken_init
        """,
    ),
    "save and reload": (
        "modeling",
        """
        def _broken_save(self, *args, **kwargs):
            raise ValueError("broken on purpose")
        LegacyLMForCausalLM.save_pretrained = _broken_save
        """,
    ),
    "forward": (
        "modeling",
        """
        def _broken_forward(self, input_ids, **kwargs):
            raise ValueError("broken on purpose")
        LegacyLMForCausalLM.forward = _broken_forward
        """,
    ),
    "generate with cache": ("modeling", _BROKEN_PREPARE.format(condition="past_key_values is not None")),
    "generate without cache": ("modeling", _BROKEN_PREPARE.format(condition='kwargs.get("use_cache") is False')),
    "cache agrees": (
        "modeling",
        """
        _forward = LegacyLMForCausalLM.forward
        def _drifting_forward(self, input_ids, past_key_values=None, **kwargs):
            output = _forward(self, input_ids, past_key_values=past_key_values, **kwargs)
            if past_key_values is not None and input_ids.shape[1] == 1:
                output.logits[..., 5] += 1000.0  # a cache bug: other tokens with the cache than without
            return output
        LegacyLMForCausalLM.forward = _drifting_forward
        """,
    ),
    "tokenizer": (
        "tokenization",
        """
        def _broken_tokenize(self, text, **kwargs):
            raise ValueError("broken on purpose")
        LegacyLMTokenizer._tokenize = _broken_tokenize
        """,
    ),
}


@pytest.mark.transformers
@pytest.mark.parametrize("broken", list(BREAKS))
def test_each_stage_fails_when_the_models_code_breaks_it(tmp_path: Path, broken: str) -> None:
    pytest.importorskip("transformers")
    import textwrap

    from legacy_models import write_package

    folder = write_package("legacy_lm", tmp_path / "legacy_lm")
    part, code = BREAKS[broken]
    target = folder / f"{part}_legacy_lm.py"
    target.write_text(target.read_text(encoding="utf-8") + "\n" + textwrap.dedent(code), encoding="utf-8")
    status, report = _check(str(folder))
    stages = {s["stage"]: s for s in report["stages"]}
    assert status == 1 and not stages[broken]["ok"], report["stages"]
    order = list(BREAKS)
    before = order[: order.index(broken)] if broken != "tokenizer" else order[:-1]
    assert all(stages[name]["ok"] for name in before if name in stages), report["stages"]
    if broken == "cache agrees":
        assert report["tokens"] != report["tokens_no_cache"]
    else:
        assert "broken on purpose" in stages[broken]["error"]
        assert stages[broken]["where"].startswith(f"{part}_legacy_lm.py:"), stages[broken]
        assert stages[broken]["fix"].startswith("hotfix: no hotfix patch covers this error")


TINY_PROCESSOR = """
import numpy as np
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


class TinyImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values"]

    def __init__(self, size=8, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def preprocess(self, images, return_tensors=None, **kwargs):
        pixels = [np.asarray(image, dtype=np.float32)[: self.size, : self.size].transpose(2, 0, 1) / 255.0
                  for image in images]
        return BatchFeature(data={"pixel_values": np.stack(pixels)}, tensor_type=return_tensors)
"""


@pytest.mark.transformers
@pytest.mark.parametrize("broken", [False, True])
def test_a_folder_with_a_processor_gets_a_processor_stage(tmp_path: Path, broken: bool) -> None:
    pytest.importorskip("transformers")
    from legacy_models import write_package

    folder = write_package("legacy_lm", tmp_path / "legacy_lm")
    code = TINY_PROCESSOR + ("\nTinyImageProcessor.preprocess = lambda self, *a, **k: 1 / 0\n" if broken else "")
    (folder / "image_processing_tiny.py").write_text(code, encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "TinyImageProcessor", "size": 8,
        "auto_map": {"AutoImageProcessor": "image_processing_tiny.TinyImageProcessor"},
    }), encoding="utf-8")  # fmt: skip
    status, report = _check(str(folder))
    stages = {s["stage"]: s for s in report["stages"]}
    assert list(stages)[-1] == "processor"
    if broken:
        assert status == 1 and not stages["processor"]["ok"] and "ZeroDivisionError" in stages["processor"]["error"]
    else:
        assert status == 0 and stages["processor"]["ok"], report["stages"]
        assert report["processor"] == {"class": "TinyImageProcessor", "shapes": {"pixel_values": [1, 3, 8, 8]}}


TINY_VISION = """
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput


class TinyVisionConfig(PretrainedConfig):
    model_type = "tiny_vision"

    def __init__(self, img_size=8, patch_size=4, num_channels=3, n_embd=16, **kwargs):
        self.img_size = img_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.n_embd = n_embd
        super().__init__(**kwargs)


class TinyVisionModel(PreTrainedModel):
    config_class = TinyVisionConfig

    def __init__(self, config):
        super().__init__(config)
        self.patches = nn.Conv2d(config.num_channels, config.n_embd, config.patch_size, stride=config.patch_size)
        self.post_init()

    def _init_weights(self, module):
        pass

    def forward(self, pixel_values, return_dict=None):
        assert pixel_values.shape[1:] == (self.config.num_channels, self.config.img_size, self.config.img_size)
        hidden = self.patches(pixel_values).flatten(2).transpose(1, 2)
        return BaseModelOutput(last_hidden_state=hidden)
"""


@pytest.mark.transformers
def test_a_vision_encoder_is_given_a_picture_of_its_configured_size(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    folder = tmp_path / "tiny_vision"
    folder.mkdir()
    (folder / "modeling_tiny_vision.py").write_text(TINY_VISION, encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "tiny_vision", "architectures": ["TinyVisionModel"], "img_size": 8, "patch_size": 4,
        "auto_map": {"AutoConfig": "modeling_tiny_vision.TinyVisionConfig",
                     "AutoModel": "modeling_tiny_vision.TinyVisionModel"},
    }), encoding="utf-8")  # fmt: skip
    status, report = _check(str(folder))
    assert status == 0, report["stages"]
    assert [s["stage"] for s in report["stages"]] == ["construct", "save and reload", "forward"]
    assert len(report["logits"]) == 8
