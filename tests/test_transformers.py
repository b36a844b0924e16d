"""Every bundled patch against the real transformers installed here.

Each scenario runs in a fresh interpreter (tests/scenario.py). On a version
where a patch's break exists, the legacy usage fails without hotfix with the
error users saw, fails the same way with hotfix minus that one patch, and
works with hotfix enabled before or after transformers is imported. On a
version outside the patch's range it works without hotfix and the patch
reports itself skipped. The suite runs in every environment of the version
matrix (see scripts/test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from scenario import IMPORTS

from hotfix import _framework
from hotfix._registry import load_toml
from hotfix._resources import registry_text
from hotfix._versions import gate, installed_version
from hotfix.testing import NOTHING, Outcome, Run, check_patch

pytestmark = pytest.mark.transformers

TESTS = Path(__file__).resolve().parent
PATCHES = {p.id: p for p in load_toml(registry_text(), "registry.toml")[0]}
TRANSFORMERS = installed_version("transformers")
REFERENCE = json.loads((TESTS / "data" / "legacy_lm_reference.json").read_text(encoding="utf-8"))
# The LegacyLM tokenizer's stages on 4.33 (the package reference, tests/data/fixtures/legacy_lm).
TOKENIZER_REFERENCE = json.loads((TESTS / "data" / "fixtures" / "legacy_lm" / "reference.json").read_text("utf-8"))[
    "tokenizer"
]

# patch id -> (scenario, what it fails with on the affected versions), from each patch's `reproducer` and
# `fails_with` (else `error`) in registry.toml: the registry entry is the one place a patch's test is named.
REPRODUCERS: dict[str, tuple[str, str]] = {
    p.id: (p.reproducer.removeprefix("scenario:"), p.fails_with or p.error)
    for p in PATCHES.values()
    if p.reproducer.startswith("scenario:")
}

# What a scenario must return where it works, natively or through its shim (the 4.x answer).
FILTERED = [[[1, 5], [3]], [[1, 5], [3, 5]], [[1, 5], [3, 5]], [-5.0, 4.0, -5.0, -5.0, -5.0, -5.0]]
PRUNED_CONV1D = [
    [[1.0, 3.0], [5.0, 7.0], [9.0, 11.0]],
    [1.0, 3.0],
    2,
    [[0.0, 1.0, 2.0, 3.0], [8.0, 9.0, 10.0, 11.0]],
    [0.0, 1.0, 2.0, 3.0],
    True,
]
EXPECTED: dict[str, Any] = {
    "g4": 3,
    "m9-expand": [[[[0, 1, 1], [0, 1, 1]]]],
    "m9-causal": [[[[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]]],
    "m5-head": [None, None, None],
    "m5-extended": ["torch.float32", [[[[1, 1, 0]]]]],
    "m6": [["eager", "flash_attention_2", "sdpa"], True],
    "m13-inputs": True,
    "m13-start": True,
    "m13-models": [True, 3],
    "m42": FILTERED,
    "m42-generation": FILTERED,
    "m42-generation-utils": FILTERED,
    "m15": [[0.707687, 1.292308], [-0.208009, 2.148587]],
    "m15-optimization": [[0.707687, 1.292308], [-0.208009, 2.148587]],
    "g8-warper": [2.0, 2.0],
    "g8-warper-module": [2.0, 2.0],
    "g8-get-warper": "LogitsProcessorList",
    "m22-disjunctive": "DisjunctiveConstraint",
    "m22-phrasal": "PhrasalConstraint",
    "m22-constrained": "ConstrainedBeamSearchScorer",
    "m22-beam": "BeamSearchScorer",
    "m18": [[2048, 1, False, False], [20, 1, False], 8],
    "m23": [20, 2, 20],
    "m20": [True, 10.83598],
    "g6": [[[6, 15, 29, 11, 15, 29], [11, 15, 24, 24, 24, 24]], [[6, 15, 29, 11, 15, 29], [11, 15, 24, 24, 24, 24]]],
    "m19": [
        ["plain", 10000.0],
        ["plain", 10000.0],
        ["linear", 2.0, 10000.0],
        ["linear", 2.0, 10000.0],
        ["dynamic", 4.0, 500000.0],
        ["dynamic", 4.0, 500000.0],
    ],
    "g5": [[[[1, 2, 4, 4], 8.0], [[1, 2, 3, 4], -24.0]], 1.0, 2, [1, 2, 4, 4], 3],
    # Where attention is allowed (0 in the additive mask), as the 4.36-5.23 helpers give it.
    "m26": [
        [[[[1, 0, 0], [1, 1, 0], [1, 1, 1]]], [[[0, 0, 0], [0, 1, 0], [0, 1, 1]]]],
        [[[[1, 1, 1, 0], [1, 1, 1, 1]]]],
        None,
        [[[[0, 1, 1], [0, 1, 1]]]],
        None,
        [[[[0, 1, 1, 0], [0, 1, 1, 1]]]],
    ],
    "g14": ["GenerateDecoderOnlyOutput", ["GenerateDecoderOnlyOutput", "GenerateEncoderDecoderOutput"]],
    # transformers 4.34's masks: Bloom's are True where attention is masked, OPT's additive (0 where allowed).
    "m27-bloom-expand": [[[[1, 0, 0], [1, 0, 0]]]],
    "m27-bloom-causal": [[[[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]]],
    "m27-opt-expand": [[[[0, 1, 1], [0, 1, 1]]]],
    "m27-opt-causal": [[[[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]]],
    "m28": [[None, True, False, None], [3, False, False, 1]],
    "m34": [64.0, 64.0, "float", 0.5],
    "m35": [16, True],
    "g15": [True, True, 9],
    "t10": [1, 2],
    "t12": [[1, 21], [1, 21], "<s> hello world"],  # 4.40-4.57 natively
    "m36": [16, [1, 2], [0.2196, -0.3145, 0.3576, -0.3417]],  # 4.45-4.57 natively, 5.25 natively
    "t11": [[1, 69, 63, 75, 49, 37, 55, 47, 65, 70], "a[gMASK]b", [1, 69, 63, 75, 49, 37, 55, 47, 65, 70]],
    "m30": [[1, 3], [2, 3, 6, 7]],
    "m37-chunking": 56.0,
    "m37-prune-linear": [[[0.0, 1.0, 2.0], [6.0, 7.0, 8.0]], [0.0, 2.0]],
    "m37-conv1d": [3, 6],
    "m37-find-heads": [[1, 3], [2, 3, 6, 7]],
    "m37-prune-conv1d": PRUNED_CONV1D,
    "m38": PRUNED_CONV1D,
    "m39": [[[0, [0, 1, 2]], [1, [3, 4]]], "Duplicate attention blocks specified in device_map"],
    "m41": [
        [2, 2],
        "Identity",
        [[1, 10, 16], [1, 4, 16]],
        [0.3192, -1.3483, -0.7444, 0.5751, 0.599, -0.8515, -0.3017, 0.7585],
        [2.9053, -1.1973, 4.6621, 0.1774, 2.0361, 0.5675, 1.1858, -2.8928],
    ],
    "m40": [[2, 1], [-0.6044, 0.9973], [0.7163, 0.9973], [[4.0, 5.0, 6.0, 7.0], [16.0, 17.0, 18.0, 19.0]]],
    "m33": [True],
    "m31": True,
    "m31-import-utils": True,
    "m32": [8, "OnnxConfig"],
    "t7": [["<od>", "</od>"], [96, 97], [1, 69, 96, 70]],
    "legacy_spm_fast": {
        "class": "LegacySPMTokenizerFast",
        "as_sentencepiece": True,
        "decoded": ["hello world", "the quick brown fox jumps over the lazy dog", "code model token"],
    },
    "m10": [
        {"pytorch_model-00001-of-00002.bin": ["a"], "pytorch_model-00002-of-00002.bin": ["b"]},
        {
            "metadata": {"total_size": 80},
            "weight_map": {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"},
        },
    ],
}


def scenario(
    name: str, hotfix: str | None = None, patches: str | None = None, legacy: str | None = None, **env: str
) -> dict[str, Any]:
    command = [sys.executable, str(TESTS / "scenario.py"), name]
    if hotfix:
        command += ["--hotfix", hotfix]
    if legacy:
        command.append(f"--legacy={legacy}")
    if patches:
        command.append(f"--patches={patches}")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update({"HF_HUB_OFFLINE": "1", **env})
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    lines = completed.stdout.strip().splitlines()
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# Patches whose break only auto-gptq meets are reproduced with auto-gptq itself (tests/test_autogptq.py), and
# patches whose break only a fixture package shows with that package (tests/test_packages.py).
REPRODUCED_IN_TEST_AUTOGPTQ = {p.id for p in PATCHES.values() if p.reproducer.startswith("autogptq:")}
REPRODUCED_IN_TEST_PACKAGES = {p.id for p in PATCHES.values() if p.reproducer.startswith("package:")}


# The oldest transformers each scenario is written against: the LegacyLM fixture
# uses DynamicCache (4.36); hotfix repairs removals, it does not backport APIs.
FIXTURE_SCENARIOS = ("legacy_lm", "direct", "fixed_lm", "revert", "follow")
SINCE: dict[str, str] = {
    **dict.fromkeys(FIXTURE_SCENARIOS, "4.36"), "g4": "4.36", "g5": "4.36", "m6": "4.36",
    "m20": "4.35",  # the (enable, gradient_checkpointing_func) override format
    "m36": "4.41",  # transformers' own Phi-3
    "m41": "4.37",  # SigLIP
}  # fmt: skip


def needs(name: str) -> None:
    """Skip where *name* targets a newer transformers than the one installed here."""
    from packaging.version import Version

    since = SINCE.get(name)
    if since is not None and TRANSFORMERS is not None and Version(TRANSFORMERS) < Version(since):
        pytest.skip(f"scenario {name} is written against transformers >= {since}; this is {TRANSFORMERS}")


def affected(patch_id: str) -> bool:
    patch = PATCHES[patch_id]
    return gate(patch.affected, installed_version(patch.distribution))[0]


def test_every_bundled_patch_has_a_reproducer() -> None:
    assert set(REPRODUCERS) | REPRODUCED_IN_TEST_AUTOGPTQ | REPRODUCED_IN_TEST_PACKAGES == set(PATCHES)
    from scenario import SCENARIOS

    unknown = {p: n for p, (n, _) in REPRODUCERS.items() if n not in IMPORTS and n not in SCENARIOS}
    assert not unknown, f"reproducer names no scenario of tests/scenario.py: {unknown}"


IMPORT_SCENARIOS = sorted({name for name, _ in REPRODUCERS.values() if name in IMPORTS})
_BATCHES: dict[tuple[str, str | None], dict[str, Any]] = {}


def batched(name: str, hotfix: str | None = None, patches: str | None = None) -> dict[str, Any]:
    """The outcome of import scenario *name*, from one interpreter that ran all of them the same way.

    Import scenarios are independent, so three interpreters (hotfix off, on,
    on minus every patch an import scenario reproduces) stand for about a
    hundred.
    """
    key = (hotfix or "", patches)
    if key not in _BATCHES:
        _BATCHES[key] = scenario(",".join(IMPORT_SCENARIOS), hotfix=hotfix, patches=patches)
    outcome = dict(_BATCHES[key]["batch"][name])
    outcome["status"] = _BATCHES[key]["status"]
    return outcome


# Patches that also keep another patch's break from showing: denied together with it.
MASKED_BY: dict[str, list[str]] = {}


def run_reproducer(patch_id: str, hotfix: str | None = None, without: bool = False) -> dict[str, Any]:
    name = REPRODUCERS[patch_id][0]
    if name not in IMPORT_SCENARIOS:
        denied = ",".join(f"-{p}" for p in [patch_id, *MASKED_BY.get(patch_id, [])])
        return scenario(name, hotfix=hotfix, patches=denied if without else None)
    if without:
        denied = ",".join(f"-{p}" for p, (n, _) in sorted(REPRODUCERS.items()) if n in IMPORT_SCENARIOS)
        return batched(name, hotfix=hotfix, patches=denied)
    return batched(name, hotfix=hotfix)


def reproducer(patch_id: str, silent: bool) -> Run:
    """The three-way check's runner for one patch: its scenario in a fresh interpreter (batched for imports)."""

    def run(selection: Sequence[str]) -> Outcome:
        without = any(item == f"-{patch_id}" for item in selection)
        outcome = Outcome.from_dict(run_reproducer(patch_id, hotfix="before", without=without))
        if silent and outcome.ok and REPRODUCERS[patch_id][0] not in EXPECTED:
            outcome.result = outcome.result["tokens"]  # a silent break of a model shows in its generated tokens
        return outcome

    return run


def _protobuf_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("google.protobuf") is not None
    except ModuleNotFoundError:
        return False


# Breaks whose form depends on the environment: with protobuf installed, 5.x reads InternLM2's
# tokenizer.model itself without an error and gives other ids (T8 is silent there).
SILENT_WHEN = {"t8-legacy-slow-conversion": _protobuf_installed}


@pytest.mark.parametrize("patch_id", sorted(REPRODUCERS))
def test_patch_repairs_the_break_where_it_exists_and_stays_off_elsewhere(patch_id: str) -> None:
    name, users_saw = REPRODUCERS[patch_id]
    needs(name)
    silent = users_saw.startswith("!") or SILENT_WHEN.get(patch_id, lambda: False)()
    check_patch(
        patch_id,
        reproducer(patch_id, silent),
        error=None if silent else users_saw,
        expected=EXPECTED.get(name, REFERENCE["tokens"] if silent else NOTHING),
    )


@pytest.mark.parametrize("when", ["before", "after"])
def test_legacy_model_matches_its_reference(when: str) -> None:
    needs("legacy_lm")
    outcome = scenario("legacy_lm", hotfix=when)
    assert outcome["ok"], outcome.get("traceback")
    result = outcome["result"]
    assert result["tokens"] == REFERENCE["tokens"]
    assert result["tied"] is True
    for row, expected in zip(result["logits"], REFERENCE["logits"], strict=True):
        assert max(abs(a - b) for a, b in zip(row, expected, strict=True)) <= 1e-5
    # Where nothing is broken every patch is skipped; a patch for a library
    # that is not installed here (peft in a transformers-only environment)
    # waits for it, pending.
    states = {patch_id: state["state"] for patch_id, state in outcome["status"].items()}
    if not any(affected(p) for p in PATCHES):
        for patch_id, state in states.items():
            installed = installed_version(PATCHES[patch_id].distribution) is not None
            assert state == ("skipped" if installed else "pending"), (patch_id, state)


def test_legacy_model_fails_without_hotfix_where_a_break_exists() -> None:
    needs("legacy_lm")
    outcome = scenario("legacy_lm")
    if any(affected(p) for p, (name, _) in REPRODUCERS.items() if name == "legacy_lm"):
        assert not outcome["ok"]
    else:
        assert outcome["ok"] and outcome["result"]["tokens"] == REFERENCE["tokens"]


@pytest.mark.parametrize("when", ["before", "after"])
def test_legacy_tokenizer_matches_its_reference(when: str) -> None:
    """Load, encode, decode, pad, batch, save and reload: the same ids and strings as on 4.33."""
    outcome = scenario("legacy_tok", hotfix=when)
    assert outcome["ok"], outcome.get("traceback")
    assert outcome["result"] == TOKENIZER_REFERENCE["result"]


def test_legacy_tokenizer_fails_without_hotfix_where_a_break_exists() -> None:
    outcome = scenario("legacy_tok")
    if any(affected(p) for p in ("t1-tokenizer-init-order", "t2-pad-padding-side")):
        assert not outcome["ok"]
    else:
        assert outcome["ok"] and outcome["result"] == TOKENIZER_REFERENCE["result"]


def test_env_activation_through_the_pth_file() -> None:
    code = "from transformers.modeling_utils import no_init_weights"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env())
    enabled = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**_clean_env(), "HOTFIX_ENABLE": "1"}
    )
    assert enabled.returncode == 0, enabled.stderr
    if affected("m3-no-init-weights"):
        assert plain.returncode != 0 and "cannot import name 'no_init_weights'" in plain.stderr
    else:
        assert plain.returncode == 0


def test_prefix_patches_follow_remote_code_loaded_outside_the_import_system() -> None:
    needs("follow")
    outcome = scenario("follow", hotfix="before")
    assert outcome["ok"], outcome.get("traceback")
    result = outcome["result"]
    assert result["modeling"] and all(result["marked"])
    assert any(name.endswith(".modeling_legacy_lm") for name in result["seen"])


@pytest.mark.parametrize("patch_id", [patch.id for patch in _framework.PATCHES])
def test_framework_patch_hands_over_what_transformers_loads_outside_the_import_system(patch_id: str) -> None:
    patch = next(p for p in _framework.PATCHES if p.id == patch_id)
    name = patch.reproducer.removeprefix("scenario:")
    needs(name)
    silent = patch.fails_with.startswith("!")

    def run(selection: Sequence[str]) -> Outcome:
        outcome = Outcome.from_dict(scenario(name, hotfix="before", patches=",".join(selection)))
        if silent and outcome.ok:
            outcome.result = bool(outcome.result["modeling"]) and all(outcome.result["marked"])
        return outcome

    check_patch(patch_id, run, error=None if silent else patch.fails_with, expected=True if silent else NOTHING)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}


def test_modern_models_are_identical_with_and_without_hotfix() -> None:
    plain = scenario("modern")
    assert plain["ok"], plain.get("traceback")
    for when in ("before", "after"):
        patched = scenario("modern", hotfix=when)
        assert patched["ok"], patched.get("traceback")
        assert patched["result"] == plain["result"]  # bit-for-bit: logits and greedy tokens


def test_disable_restores_every_patched_object_exactly() -> None:
    needs("revert")
    outcome = scenario("revert")
    assert outcome["ok"], outcome.get("traceback")
    result = outcome["result"]
    assert result["differences"] == []
    # A provided module is gone after disable(); where the module really exists it stays.
    assert result["deepspeed_left"] is not affected("m14-deepspeed-module")
    assert set(result["legacy_tied_keys"]) <= {"list"}
    if any(affected(p) for p in PATCHES):
        assert result["applied"]


def test_enable_imports_neither_transformers_nor_torch() -> None:
    code = (
        "import hotfix, sys; hotfix.enable(); "
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env())
    assert completed.returncode == 0, completed.stderr


def test_importing_transformers_with_hotfix_imports_torch_no_sooner() -> None:
    """Where transformers' top level does not import torch (a process that only tokenizes never loads it), with
    hotfix enabled it still does not: m15 builds the restored AdamW (a torch Optimizer) on its first use."""
    if not affected("m15-adamw"):
        pytest.skip("transformers.AdamW exists here: m15 is out of range")
    code = (
        "import hotfix, sys; hotfix.enable(); import transformers; print('torch' in sys.modules); "
        "print(hotfix.status()['m15-adamw'].state); "
        "from transformers import AdamW; import torch; print(issubclass(AdamW, torch.optim.Optimizer)); "
        "hotfix.disable(); print(hasattr(transformers, 'AdamW'), type(transformers).__name__)"
    )
    plain = subprocess.run([sys.executable, "-c", "import sys, transformers; print('torch' in sys.modules)"],
                           capture_output=True, text=True, env=_clean_env())  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env())
    assert completed.returncode == 0, completed.stderr
    # Some releases (4.57, 5.0) import torch at the top level themselves: then so may hotfix.
    assert completed.stdout.split() == [plain.stdout.strip(), "applied", "True", "False", "_LazyModule"]


def test_remote_code_already_fixed_for_the_new_api_is_left_alone() -> None:
    """The LegacyLM fixed by hand for 5.23+ (get_max_length() == -1 means no maximum) keeps -1 under hotfix."""
    from packaging.version import Version

    if TRANSFORMERS is None or Version(TRANSFORMERS) < Version("5.23"):
        pytest.skip("the hand-fixed copy targets transformers 5.23+, where get_max_length returns -1")
    plain = scenario("fixed_lm")
    patched = scenario("fixed_lm", hotfix="before")
    assert plain["ok"], plain.get("traceback")
    assert patched["ok"], patched.get("traceback")
    assert patched["result"] == plain["result"]
    assert plain["result"]["tokens"] == REFERENCE["tokens"]


CLASS_SCOPED = """
import sys, hotfix
from transformers import cache_utils
upstream = vars(cache_utils.Cache)["get_max_length"]
hotfix.enable(patches=["g1-extract-past-from-model-output", "g2-cache-get-max-length"])
from transformers import GenerationMixin, PreTrainedModel
source = (
    "class Legacy(PreTrainedModel, GenerationMixin):\\n"
    "    def prepare(self, cache):\\n"
    "        maximum = cache.get_max_length()\\n"
    "        return maximum is None\\n"
    "    def update(self, outputs):\\n"
    "        return self._extract_past_from_model_output(outputs, standardize_cache_format=False)\\n"
    "    def update_pair(self, outputs):\\n"
    "        name, past = self._extract_past_from_model_output(outputs)\\n"
    "        return past\\n"
)
namespace = {"__name__": sys.argv[1], "PreTrainedModel": PreTrainedModel, "GenerationMixin": GenerationMixin}
exec(source, namespace)
Legacy = namespace["Legacy"]
class Outputs(dict):
    __getattr__ = dict.__getitem__
import torch
cache = cache_utils.DynamicCache()
cache.update(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), 0)
model = object.__new__(Legacy)
outputs = Outputs(past_key_values=cache)
print(vars(cache_utils.Cache)["get_max_length"] is upstream, cache.get_max_length(), Legacy.prepare(model, cache),
      Legacy.update(model, outputs) is cache, Legacy.update_pair(model, outputs) is cache)
hotfix.disable()
print(Legacy.prepare(model, cache))
"""


@pytest.mark.parametrize("module", ["transformers_modules.repo.modeling_legacy", "my_models.modeling_own"])
def test_g1_g2_answer_legacy_classes_without_touching_upstream(module: str) -> None:
    """5.23+: upstream's get_max_length stays itself (-1 for everyone); a legacy class's None test and bare-cache
    call are pointed at the old contracts when the class is defined, and disable() puts its code back."""
    from packaging.version import Version

    if TRANSFORMERS is None or Version(TRANSFORMERS) < Version("5.23"):
        pytest.skip("transformers' own get_max_length returns -1 from 5.23; before, G2 restores a missing method")
    done = subprocess.run([sys.executable, "-c", CLASS_SCOPED, module], capture_output=True, text=True,
                          env=_clean_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, after = done.stdout.splitlines()
    legacy = module.startswith("transformers_modules.")
    # G2 answers remote code only (is_legacy); G1's bare cache goes to any class that is not transformers' own.
    assert first.split() == ["True", "-1", str(legacy), "True", "True"]
    assert after == "False"


def test_provided_attention_mask_module_equals_transformers_own() -> None:
    """hotfix's modeling_attn_mask_utils gives the masks of transformers' own, where that one still exists."""
    from packaging.version import Version

    if affected("m26-attn-mask-utils-module"):
        pytest.skip("transformers.modeling_attn_mask_utils is gone here; the m26 scenario checks the 4.x masks")
    outcome = scenario("attn_mask_equal")
    assert outcome["ok"], outcome.get("traceback")
    different = outcome["result"]["different"]
    if TRANSFORMERS is not None and Version(TRANSFORMERS) < Version("4.45"):
        # Before 4.45 an all-ones mask of another query length came back expanded, not None: the same
        # attention for the non-causal callers it is for. hotfix gives what 4.45-5.23 give.
        different = [name for name in different if not name.startswith("expand sdpa cross ")]
    assert outcome["result"]["compared"] > 100 and different == []


@pytest.mark.parametrize("declared", ["env", "argument", "no"])
def test_vendored_legacy_code_gets_the_scoped_shims_when_declared(declared: str) -> None:
    """Remote-code files copied into a project's package are legacy code once HOTFIX_LEGACY names them."""
    needs("legacy_lm")
    if declared == "argument":
        outcome = scenario("vendored", hotfix="before", legacy="vendored_models.*")
    else:
        env = {"HOTFIX_LEGACY": "vendored_models"} if declared == "env" else {}
        outcome = scenario("vendored", hotfix="before", **env)
    from packaging.version import Version

    # On 5.x the scoped shims (M25's buffers, G2's None on 5.23+, ...) answer only legacy code: undeclared,
    # the vendored copy fails (5.23+: a shape error) or gives other tokens (5.0-5.22), as users of vendored copies saw.
    if declared == "no" and TRANSFORMERS is not None and Version(TRANSFORMERS) >= Version("5.0"):
        assert not outcome["ok"] or outcome["result"]["tokens"] != REFERENCE["tokens"], outcome.get("result")
        if Version(TRANSFORMERS) >= Version("5.23"):
            assert not outcome["ok"] and "must match the size of tensor" in outcome["error"], outcome.get("error")
        return
    assert outcome["ok"], outcome.get("traceback")
    assert outcome["result"]["legacy"] is (declared != "no")
    assert outcome["result"]["tokens"] == REFERENCE["tokens"]


def test_g7_also_serves_classes_that_inherit_the_generation_hook_from_a_legacy_base() -> None:
    """phi-1.5 MixFormer: prepare_inputs_for_generation on XxxPreTrainedModel, the ForCausalLM built directly."""
    repaired = scenario("g7-base", hotfix="before")
    assert repaired["ok"], repaired.get("traceback")
    assert repaired["result"] == [True, 6]
    if affected("g7-generation-mixin") and repaired["status"]["g7-generation-mixin"]["state"] == "applied":
        without = scenario("g7-base", hotfix="before", patches="-g7-generation-mixin")
        assert not without["ok"] and "object has no attribute 'generate'" in without["error"], without["error"]


VISION_TOWER_SCOPE = """
import sys, types, torch, hotfix
hotfix.enable()
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.models.clip.modeling_clip import CLIPVisionTransformer

config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                          image_size=16, patch_size=8)
tower = CLIPVisionModel(config).eval()
remote = types.ModuleType("transformers_modules.probe.tower")
sys.modules[remote.__name__] = remote
exec("def inner(tower):\\n    return tower.vision_model", vars(remote))
inner = CLIPVisionTransformer(config).eval()
inner.load_state_dict(tower.state_dict())
images = torch.randn(1, 3, 16, 16)
with torch.no_grad():
    same = torch.equal(inner(images).last_hidden_state, tower(images).last_hidden_state)
print(hasattr(tower, "vision_model"), remote.inner(tower) is tower, same,
      sorted({key.split(".")[0] for key in inner.state_dict()}) == ["embeddings", "encoder", "post_layernorm",
                                                                     "pre_layrnorm"])
class Own(CLIPVisionModel):
    def __init__(self, config):
        super().__init__(config)
        self.vision_model = torch.nn.Linear(1, 1)
own = Own(config)
print(remote.inner(own) is own.vision_model, isinstance(own.vision_model, torch.nn.Linear))
hotfix.disable()
clip_module = sys.modules[CLIPVisionModel.__module__]
print(hasattr(CLIPVisionModel, "vision_model"), "CLIPVisionTransformer" in vars(clip_module))
"""


def test_m41_gives_vision_model_to_legacy_code_only() -> None:
    """5.6+: transformers and other modern callers still see no CLIPVisionModel.vision_model (its loading code
    asks hasattr(model, prefix)); remote code gets the tower; a subclass's own vision_model wins; the restored
    inner class has the 4.x state-dict keys and computes what the tower computes; disable() removes both."""
    if not affected("m41-vision-model-attribute"):
        pytest.skip("CLIPVisionModel still holds a CLIPVisionTransformer here")
    done = subprocess.run([sys.executable, "-c", VISION_TOWER_SCOPE], capture_output=True, text=True, env=_clean_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True", "True", "True", "True", "False", "False"]
