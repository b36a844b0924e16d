"""The auto-gptq 0.7.1 flow on a tiny Llama, run the same way on every stack.

Stages: ``import auto_gptq``; quantize a tiny fp16 LlamaForCausalLM (4 bit,
group size 64) and ``save_quantized`` it; ``from_quantized`` the reference
checkpoint on CPU; forward logits; greedy ``generate``. tests/test_autogptq.py
makes the reference in each test session, on auto-gptq's own 2024 stack
(``make``), since the int4 codes GPTQ finds in float16 depend on the processor.

    python tests/gptq_flow.py make  DIR   # reference stack: write checkpoint + outputs into DIR
    python tests/gptq_flow.py check DIR   # any stack: run every stage, compare with DIR
    python tests/gptq_flow.py scope       # with hotfix: the shims leave non-auto-gptq code alone

``check`` prints one JSON line per stage (``{"stage": ..., "ok": ...}``), then
exits non-zero if a stage failed. With ``--enable-after-import`` it imports
transformers, peft and huggingface_hub first and calls ``hotfix.enable()``
only then (HOTFIX_ENABLE=1 in the environment is the other way in).

auto-gptq refuses to quantize without CUDA. ``cpu_pretends_cuda`` makes its
own CUDA checks pass on CPU for the quantize step; it is harness code: hotfix
never does this. The fp weights are generated from a seed and written with
safetensors and a hand-written config, so they are the same bytes on every
transformers version.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LLAMA_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 256,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "use_cache": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float16",
}
BITS, GROUP_SIZE = 4, 64
CHECKPOINT = "checkpoint"
REFERENCE = "reference.json"
PROMPTS = [[1, 17, 42, 99, 7, 201, 33, 5], [1, 250, 3, 77, 128, 64, 9, 12]]
NEW_TOKENS = 8


def write_fp_model(directory: Path, seed: int = 0) -> Path:
    """Write the tiny fp16 Llama (config.json + model.safetensors) into *directory*."""
    import torch
    from safetensors.torch import save_file

    c = LLAMA_CONFIG
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for n in range(c["num_hidden_layers"]):
        layer = f"model.layers.{n}"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[f"{layer}.self_attn.{proj}.weight"] = (h, h)
        shapes[f"{layer}.mlp.gate_proj.weight"] = (i, h)
        shapes[f"{layer}.mlp.up_proj.weight"] = (i, h)
        shapes[f"{layer}.mlp.down_proj.weight"] = (h, i)
        shapes[f"{layer}.input_layernorm.weight"] = (h,)
        shapes[f"{layer}.post_attention_layernorm.weight"] = (h,)
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight"):
            tensors[name] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            tensors[name] = 0.08 * torch.randn(shape, generator=generator)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: t.half().contiguous() for k, t in tensors.items()}
    save_file(weights, str(directory / "model.safetensors"), {"format": "pt"})
    (directory / "config.json").write_text(json.dumps(c, indent=1) + "\n", encoding="utf-8")
    return directory


def calibration_examples(seed: int = 1, count: int = 4, length: int = 48) -> list[dict[str, Any]]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(count):
        ids = torch.randint(3, LLAMA_CONFIG["vocab_size"], (length,), generator=generator)
        examples.append({"input_ids": ids.tolist(), "attention_mask": [1] * length})
    return examples


@contextlib.contextmanager
def cpu_pretends_cuda() -> Iterator[None]:
    """Make auto-gptq's own CUDA checks pass on a CPU-only torch (harness only)."""
    import torch
    from auto_gptq.modeling import _base, _utils

    saved: list[tuple[Any, str, Any]] = []

    def swap(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    cpu = torch.device("cpu")
    try:
        swap(torch.cuda, "is_available", lambda: True)
        swap(torch.cuda, "synchronize", lambda *a, **k: None)
        swap(torch.cuda, "empty_cache", lambda: None)
        swap(_base, "CUDA_0", cpu)
        swap(_utils, "CUDA_0", cpu)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def quantize(fp_dir: Path, out_dir: Path) -> Any:
    """Quantize the fp model in *fp_dir* and ``save_quantized`` it into *out_dir*; returns auto-gptq's model."""
    import torch
    from auto_gptq import AutoGPTQForCausalLM, BaseQuantizeConfig

    torch.manual_seed(0)
    config = BaseQuantizeConfig(bits=BITS, group_size=GROUP_SIZE, desc_act=False)
    with cpu_pretends_cuda():
        model = AutoGPTQForCausalLM.from_pretrained(str(fp_dir), config, torch_dtype=torch.float16)
        model.quantize(calibration_examples(), use_triton=False)
    model.save_quantized(str(out_dir), use_safetensors=True)
    return model


def load_quantized(checkpoint: Path) -> Any:
    """``from_quantized`` on CPU.

    float32: auto-gptq's ``generate`` runs under CPU autocast, which rejects
    fp16 tensors on torch 2.13 (``Unexpected floating ScalarType``).
    """
    import torch
    from auto_gptq import AutoGPTQForCausalLM

    return AutoGPTQForCausalLM.from_quantized(
        str(checkpoint), device="cpu", use_safetensors=True, use_triton=False,
        disable_exllama=True, disable_exllamav2=True, torch_dtype=torch.float32,
    )  # fmt: skip


def forward_logits(model: Any) -> list[list[list[float]]]:
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor(PROMPTS)).logits
    return [[[float(x) for x in row] for row in seq] for seq in logits[:, -2:, :].float()]


def generate_tokens(model: Any) -> list[list[int]]:
    import torch

    with torch.no_grad():
        ids = torch.tensor(PROMPTS)
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=LLAMA_CONFIG["eos_token_id"],
        )  # fmt: skip
    return [[int(t) for t in row] for row in out[:, len(PROMPTS[0]) :]]


def checkpoint_tensors(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .safetensors file in {directory}, found {[f.name for f in files]}")
    return load_file(str(files[0]))


def compare_tensors(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    import torch

    problems = [f"missing {k}" for k in sorted(set(want) - set(got))]
    problems += [f"unexpected {k}" for k in sorted(set(got) - set(want))]
    for key in sorted(set(got) & set(want)):
        a, b = got[key], want[key]
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append(f"{key}: {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}")
        elif not torch.equal(a, b):
            problems.append(f"{key}: values differ")
    return problems


def _flat(nested: list[Any]) -> list[float]:
    return [x for seq in nested for row in seq for x in row]


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("auto_gptq", "transformers", "peft", "accelerate", "huggingface_hub", "torch"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "-"
    return found


def make(data: Path) -> None:
    """Reference stack: quantize, load the result back, record its outputs."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        fp_dir = write_fp_model(Path(tmp) / "fp")
        checkpoint = data / CHECKPOINT
        if checkpoint.exists():
            shutil.rmtree(checkpoint)
        quantize(fp_dir, checkpoint)
    config_file = checkpoint / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["_name_or_path"] = "tiny-llama-fp16"  # not the temporary directory it was quantized from
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    model = load_quantized(checkpoint)
    reference = {"versions": versions(), "logits": forward_logits(model), "tokens": generate_tokens(model)}
    (data / REFERENCE).write_text(json.dumps(reference) + "\n", encoding="utf-8")
    print(f"wrote {checkpoint} and {data / REFERENCE} on {reference['versions']}")


def check(data: Path, enable_after_import: bool) -> bool:
    """Run every stage; print a JSON line per stage; True when all passed and matched the reference."""
    reference = json.loads((data / REFERENCE).read_text(encoding="utf-8"))
    ok = True

    def stage(name: str, body: Callable[[], str]) -> None:
        nonlocal ok
        try:
            detail = body()
            line: dict[str, Any] = {"stage": name, "ok": True, "detail": detail}
        except Exception as exc:  # noqa: BLE001 -- reported, not raised: every stage gets its line
            ok = False
            error = f"{type(exc).__name__}: {exc}"
            line = {"stage": name, "ok": False, "error": error, "traceback": traceback.format_exc()}
        print(json.dumps(line), flush=True)

    if enable_after_import:
        import huggingface_hub  # noqa: F401
        import peft  # noqa: F401
        import transformers  # noqa: F401

        import hotfix

        hotfix.enable()

    state: dict[str, Any] = {}

    def do_import() -> str:
        import auto_gptq

        return f"auto_gptq {auto_gptq.__version__} on {versions()}"

    def do_quantize() -> str:
        with tempfile.TemporaryDirectory() as tmp:
            fp_dir = write_fp_model(Path(tmp) / "fp")
            quantize(fp_dir, Path(tmp) / "q")
            problems = compare_tensors(checkpoint_tensors(Path(tmp) / "q"), checkpoint_tensors(data / CHECKPOINT))
        if problems:
            raise AssertionError("quantized checkpoint differs from the reference: " + "; ".join(problems[:8]))
        return "checkpoint tensors equal the reference"

    def do_load() -> str:
        state["model"] = load_quantized(data / CHECKPOINT)
        return type(state["model"]).__name__

    def do_forward() -> str:
        got = forward_logits(state["model"])
        if got != reference["logits"]:
            pairs = zip(_flat(got), _flat(reference["logits"]), strict=True)
            worst = max(abs(a - b) for a, b in pairs)
            raise AssertionError(f"logits differ from the reference (max abs difference {worst})")
        return "logits equal the reference"

    def do_generate() -> str:
        got = generate_tokens(state["model"])
        if got != reference["tokens"]:
            raise AssertionError(f"tokens {got} != reference {reference['tokens']}")
        return f"tokens equal the reference: {got}"

    stage("import", do_import)
    if not ok:
        report_hotfix()
        return False
    stage("quantize", do_quantize)
    stage("from_quantized", do_load)
    if "model" in state:
        stage("forward", do_forward)
        stage("generate", do_generate)
    report_hotfix()
    return ok


def report_hotfix() -> None:
    """A last line with hotfix's patch states, when hotfix is enabled in this process."""
    hotfix = sys.modules.get("hotfix")
    if hotfix is None or not hotfix.is_enabled():
        return
    states = {p.id: {"state": p.state, "reason": p.reason} for p in hotfix.status().patches}
    print(json.dumps({"stage": "hotfix", "ok": True, "status": states}), flush=True)


def scope() -> dict[str, Any]:
    """What code outside auto-gptq sees while hotfix's auto-gptq shims are in place (run with hotfix enabled).

    A plain transformers model built and run before ``import auto_gptq`` and
    again after auto-gptq quantized another model: same logits, decoder layers
    still return tensors, ``from_pretrained(resume_download=...)`` from
    non-legacy code still fails as transformers 5 makes it fail, and no hook
    is left on the quantized model's layers.
    """
    import torch
    from transformers import AutoModelForCausalLM

    def modern_run(fp_dir: Path) -> tuple[list[float], str]:
        model = AutoModelForCausalLM.from_pretrained(str(fp_dir), dtype=torch.float32)
        captured: list[str] = []
        hook = model.model.layers[0].register_forward_hook(lambda m, a, out: captured.append(type(out).__name__))
        with torch.no_grad():
            logits = model(input_ids=torch.tensor(PROMPTS)).logits[:, -1, :]
        hook.remove()
        return [float(x) for x in logits.flatten()], captured[0]

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp_dir = write_fp_model(Path(tmp) / "fp")
        result["logits_before"], result["layer_output_before"] = modern_run(fp_dir)
        quantized = quantize(fp_dir, Path(tmp) / "q")
        layers = quantized.model.model.layers
        result["hooks_left"] = sum(len(layer._forward_hooks) for layer in layers)
        result["logits_after"], result["layer_output_after"] = modern_run(fp_dir)
        try:
            AutoModelForCausalLM.from_pretrained(str(fp_dir), resume_download=True)
            result["resume_download"] = "accepted"
        except TypeError as exc:
            result["resume_download"] = f"TypeError: {exc}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["make", "check", "scope"])
    parser.add_argument("data", type=Path, nargs="?", help="the reference folder (make, check)")
    parser.add_argument("--enable-after-import", action="store_true")
    args = parser.parse_args(argv)
    if args.mode != "scope" and args.data is None:
        parser.error(f"{args.mode} needs the reference folder")
    if args.mode == "make":
        import transformers

        if "hotfix" in sys.modules and sys.modules["hotfix"].is_enabled():
            parser.error("make the reference without hotfix (unset HOTFIX_ENABLE)")
        if int(transformers.__version__.split(".")[0]) >= 5:
            parser.error(f"transformers {transformers.__version__}: make the reference on auto-gptq's own stack")
        args.data.mkdir(parents=True, exist_ok=True)
        make(args.data)
        return 0
    if args.mode == "scope":
        print(json.dumps(scope()), flush=True)
        return 0
    return 0 if check(args.data, args.enable_after_import) else 1


if __name__ == "__main__":
    sys.exit(main())
