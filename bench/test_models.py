"""Model-level figures: load, generation throughput, torch.compile graph breaks (items 5-7; item 8 on CUDA)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from _harness import figure, interleave, timed

import hotfix

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from _models import write_hand_fixed_legacy_lm, write_legacy_lm, write_llama  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
LEGACY_BENCH_CONFIG = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
                       "vocab_size": 2048, "max_position_embeddings": 256}  # fmt: skip


def _load(path: Path, dtype: Any, trust: bool = False) -> Any:
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust}
    if DEVICE == "cuda":
        kwargs["device_map"] = "auto"  # through accelerate
    return transformers.AutoModelForCausalLM.from_pretrained(str(path), **kwargs).eval()


@pytest.fixture(autouse=True)
def _disabled() -> Any:
    os.environ.pop("HOTFIX_ENABLE", None)
    hotfix.disable()
    yield
    hotfix.disable()


def _toggle(enabled: bool) -> None:
    if enabled:
        hotfix.enable(propagate=False)
    else:
        hotfix.disable()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_model_load(benchmark: Any, workdir: Path, smoke: bool, dtype: str) -> None:
    """Item 5: from_pretrained of a locally saved ~100M-parameter Llama, hotfix enabled against disabled."""
    size = "tiny" if smoke else "100m"
    path = write_llama(workdir / f"llama-{size}-{dtype}", size, dtype)
    torch_dtype = getattr(torch, dtype)

    def load(enabled: bool) -> float:
        _toggle(enabled)
        seconds = timed(lambda: _load(path, torch_dtype))
        hotfix.disable()
        return seconds

    load(False)
    rounds = 1 if smoke else 8
    series = benchmark.pedantic(lambda: interleave(lambda: load(False), lambda: load(True), rounds), rounds=1)
    figure(benchmark, f"model load ({dtype}, {size} Llama)", series["ratio"], unit="ratio", target=1.01,
           direction="le", item=5 if DEVICE == "cpu" else 8, device=DEVICE, baseline_s=series["baseline"],
           candidate_s=series["candidate"])  # fmt: skip


def _tokens_per_second(model: Any, batch: int, new_tokens: int) -> float:
    input_ids = torch.tensor([[1, 5, 9, 14, 20, 33]] * batch, device=model.device)
    mask = torch.ones_like(input_ids)
    mask[0, 0] = 0  # keep the mask (transformers drops an all-ones one), as real padded batches do
    with torch.no_grad():
        seconds = timed(
            lambda: model.generate(input_ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                   do_sample=False, pad_token_id=0)
        )  # fmt: skip
    return batch * new_tokens / seconds


@pytest.mark.parametrize("batch", [1, 8])
def test_generation_modern(benchmark: Any, workdir: Path, smoke: bool, batch: int) -> None:
    """Item 6a: a modern Llama, every patch installed (none on its path) against hotfix disabled."""
    path = write_llama(workdir / "llama-small", "tiny" if smoke else "small")
    model = _load(path, torch.float32)
    new_tokens = 4 if smoke else 64
    _tokens_per_second(model, batch, new_tokens)

    def run(enabled: bool) -> float:
        _toggle(enabled)
        return _tokens_per_second(model, batch, new_tokens)

    rounds = 1 if smoke else 16
    series = benchmark.pedantic(lambda: interleave(lambda: run(False), lambda: run(True), rounds), rounds=1)
    figure(benchmark, f"generate tokens/s, modern Llama, batch {batch}", series["ratio"], unit="ratio",
           target=0.99, direction="ge", item=6 if DEVICE == "cpu" else 8, device=DEVICE,
           baseline_tps=series["baseline"], candidate_tps=series["candidate"])  # fmt: skip


@pytest.fixture(scope="module")
def legacy_pair(workdir: Path) -> tuple[Path, Path]:
    return (
        write_legacy_lm(workdir / "legacy_lm", **LEGACY_BENCH_CONFIG),
        write_hand_fixed_legacy_lm(workdir / "legacy_lm_fixed", **LEGACY_BENCH_CONFIG),
    )


@pytest.mark.parametrize("batch", [1, 8])
def test_generation_legacy(benchmark: Any, legacy_pair: tuple[Path, Path], smoke: bool, batch: int) -> None:
    """Item 6b: the legacy fixture through hotfix's shims against the same model fixed by hand."""
    legacy_path, fixed_path = legacy_pair
    hotfix.enable(propagate=False)
    legacy = _load(legacy_path, torch.float32, trust=True)
    hotfix.disable()
    fixed = _load(fixed_path, torch.float32, trust=True)
    new_tokens = 4 if smoke else 64

    def run(model: Any, enabled: bool) -> float:
        _toggle(enabled)
        return _tokens_per_second(model, batch, new_tokens)

    run(fixed, False)
    run(legacy, True)
    rounds = 1 if smoke else 16
    series = benchmark.pedantic(
        lambda: interleave(lambda: run(fixed, False), lambda: run(legacy, True), rounds), rounds=1
    )
    figure(benchmark, f"generate tokens/s, legacy via shims vs hand-fixed, batch {batch}", series["ratio"],
           unit="ratio", target=0.99, direction="ge", item=6 if DEVICE == "cpu" else 8, device=DEVICE,
           baseline_tps=series["baseline"], candidate_tps=series["candidate"])  # fmt: skip


def _graph_breaks(function: Any, *args: Any, **kwargs: Any) -> int:
    import torch._dynamo

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(function)(*args, **kwargs)
    return int(explanation.graph_break_count)


def test_compile_graph_breaks(benchmark: Any, legacy_pair: tuple[Path, Path]) -> None:
    """Item 7: graph breaks of the legacy fixture's forward with shims against the hand-fixed copy."""
    legacy_path, fixed_path = legacy_pair
    hotfix.enable(propagate=False)
    legacy = _load(legacy_path, torch.float32, trust=True)
    fixed = _load(fixed_path, torch.float32, trust=True)
    input_ids = torch.tensor([[1, 5, 9, 14, 20, 33]], device=legacy.device)
    mask = torch.ones_like(input_ids)

    def step(model: Any) -> Any:
        # One decoding step as generate() runs it: prepare inputs (G2, G3 shims), forward, update kwargs (G1 shim).
        cache = transformers.DynamicCache()
        model(input_ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        next_ids = torch.cat([input_ids, input_ids[:, -1:]], dim=-1)
        next_mask = torch.cat([mask, mask[:, -1:]], dim=-1)
        inputs = model.prepare_inputs_for_generation(next_ids, past_key_values=cache, attention_mask=next_mask)
        outputs = model(**inputs)
        return model._update_model_kwargs_for_generation(outputs, {"attention_mask": next_mask})

    def attempt(function: Any, *args: Any, **kwargs: Any) -> int | str:
        try:
            return _graph_breaks(function, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - a tracing failure is a result to report
            return f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"

    def measure() -> dict[str, int | str]:
        return {
            "forward_legacy": attempt(legacy, input_ids, attention_mask=mask, use_cache=False),
            "forward_fixed": attempt(fixed, input_ids, attention_mask=mask, use_cache=False),
            "step_legacy": attempt(step, legacy),
            "step_fixed": attempt(step, fixed),
        }

    counts = benchmark.pedantic(measure, rounds=1)
    hotfix.disable()
    for part in ("forward", "step"):
        legacy_count, fixed_count = counts[f"{part}_legacy"], counts[f"{part}_fixed"]
        ok = isinstance(legacy_count, int) and isinstance(fixed_count, int)
        extra = float(legacy_count - fixed_count) if ok else float("nan")  # type: ignore[operator]
        figure(benchmark, f"torch.compile extra graph breaks, {'forward' if part == 'forward' else 'decoding step'}",
               [extra], unit="count", target=0, direction="le", item=7, **counts)  # fmt: skip
