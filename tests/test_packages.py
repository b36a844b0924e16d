"""The remote-code fixture packages, stage by stage, against their references.

Each package under tests/fixtures/ is loaded the way users load such models
(``from_pretrained(dir, trust_remote_code=True)`` of a directory whose
config.json has ``auto_map``). On every transformers version from the one a
part (model or tokenizer) is written against: with hotfix, enabled before or
after transformers is imported, every stage passes and the logits and token
ids equal the reference made on the oldest matrix version where the package
works natively (tests/data/fixtures/<name>/reference.json, made by
scripts/make_fixture_references.py); without hotfix the part fails where one
of the patches its code needs is in range, with the error users saw (or, for
a silent break, with other numbers); where none is in range it passes without
hotfix and those patches report themselves skipped. Runs in every environment
of the version matrix (scripts/test).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from legacy_models import PACKAGE_DATA, PACKAGES, derived_expected, package_parts, package_spec
from packaging.version import Version
from test_transformers import PATCHES, REPRODUCED_IN_TEST_PACKAGES, REPRODUCERS, TRANSFORMERS, affected, scenario

from hotfix._registry import load_toml
from hotfix._resources import registry_text
from hotfix.testing import Outcome, Run, check_patch

pytestmark = pytest.mark.transformers

CATALOG = {row.id for row in load_toml(registry_text(), "registry.toml")[1]}
_OUTCOMES: dict[str, dict[str, Any]] = {}


def outcome(hotfix: str) -> dict[str, Any]:
    """The packages scenario run once per mode ("", "before", "after") in a fresh interpreter."""
    if hotfix not in _OUTCOMES:
        _OUTCOMES[hotfix] = scenario("packages", hotfix=hotfix or None)
        assert _OUTCOMES[hotfix]["ok"], _OUTCOMES[hotfix].get("traceback")
    return _OUTCOMES[hotfix]


def patches_of(name: str, part: str | None = None) -> list[str]:
    """The patches the code of *part* of package *name* needs on newer transformers (both parts: None)."""
    if part is None:
        return sorted({p for each in package_parts(name) for p in patches_of(name, each)})
    patches: list[str] = package_spec(name)["patches"].get(part, [])
    return patches


def reference(name: str, part: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PACKAGE_DATA / name / "reference.json").read_text(encoding="utf-8"))
    return data[part]


# patch id -> (package, part, what it fails with; "!" for a silent break: other numbers), from each patch's
# `reproducer = "package:NAME/PART"` and `fails_with` in registry.toml.
PACKAGE_REPRODUCERS: dict[str, tuple[str, str, str]] = {
    p.id: (*p.reproducer.removeprefix("package:").split("/"), p.fails_with or p.error)  # type: ignore[misc]
    for p in PATCHES.values()
    if p.reproducer.startswith("package:")
}


def users_saw(patch: str, name: str | None = None) -> str:
    """What package *name* fails with without *patch*: the registry's error or its reproducer's, or what the
    package's fixture.json "errors" says where its code fails another way than both."""
    errors: dict[str, str] = package_spec(name).get("errors", {}) if name is not None else {}
    if patch in errors:
        return errors[patch]
    if patch in PACKAGE_REPRODUCERS:
        return PACKAGE_REPRODUCERS[patch][2]
    declared, reproduced = PATCHES[patch].error, REPRODUCERS[patch][1]
    return reproduced if reproduced.startswith("!") or not declared else f"{reproduced}|{declared}"


def breaks_here(name: str, patch: str) -> bool:
    """Whether the code of package *name* meets *patch*'s break on this transformers.

    Usually that is the patch's range; a package may name a later first version
    (fixture.json "breaks_from"), e.g. code written for 4.42's return convention
    of _extract_past_from_model_output only breaks when the method goes (4.49).
    """
    first = package_spec(name).get("breaks_from", {}).get(patch)
    if first is not None:
        return TRANSFORMERS is not None and Version(TRANSFORMERS) >= Version(first)
    return affected(patch)


CASES = [(name, part) for name in PACKAGES for part in package_parts(name)]


def needs(name: str, part: str) -> None:
    since = package_parts(name)[part]
    if TRANSFORMERS is None or Version(TRANSFORMERS) < Version(since):
        pytest.skip(f"{name} {part} is written against transformers >= {since}; this is {TRANSFORMERS}")


def matches(result: dict[str, Any], expected: dict[str, Any], name: str) -> bool:
    """Equal, except logits, which may differ by float rounding (1e-5).

    The derived generate calls of a model (one prompt, from embeddings) must
    give what the reference's batch tokens say (legacy_models.derived_expected).
    """
    result = dict(result)
    derived = result.pop("derived", None)
    if derived is not None and derived != derived_expected(expected["tokens"], package_spec(name)):
        return False
    if result.keys() != expected.keys():
        return False
    for key, value in expected.items():
        if key == "logits":
            rows = list(zip(result[key], value, strict=True))
            if any(max(abs(a - b) for a, b in zip(r, e, strict=True)) > 1e-5 for r, e in rows):
                return False
        elif result[key] != value:
            return False
    return True


def test_there_are_six_packages_each_with_its_reference_and_known_patches() -> None:
    assert len(PACKAGES) >= 6
    for name in PACKAGES:
        assert (Path(__file__).parent / "fixtures" / name).is_dir()
        for part in package_parts(name):
            assert "result" in reference(name, part), (name, part)
        assert set(patches_of(name)) <= set(PATCHES), name
    # The LegacyLM scenarios of test_transformers.py use the legacy_lm package: its list names their patches.
    for patch, (used_by, _) in REPRODUCERS.items():
        if used_by in ("legacy_lm", "legacy_tok"):
            assert patch in patches_of("legacy_lm", "model" if used_by == "legacy_lm" else "tokenizer"), patch


def test_the_packages_exercise_the_catalog_rows_the_issue_names() -> None:
    """Between them the packages need a patch for each of these rows (the legacy habits of 2023-2024 code)."""
    needed = {"T1", "T2", "T3", "G1", "G2", "G3", "G4", "G5", "G6", "G7", "G8", "G9", "M1", "M2", "M3", "M4", "M5",
              "M6", "M9", "M13", "M14", "M16", "M18", "M19", "M21", "M22", "M23"}  # fmt: skip
    covered = {row for name in PACKAGES for patch in patches_of(name) for row in PATCHES[patch].catalog}
    assert needed <= CATALOG
    assert needed <= covered, sorted(needed - covered)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(("name", "part"), CASES)
def test_package_passes_every_stage_with_hotfix_and_equals_its_reference(name: str, part: str, when: str) -> None:
    needs(name, part)
    result = outcome(when)["result"][name][part]
    assert result["ok"], result.get("traceback")
    assert matches(result["result"], reference(name, part)["result"], name)
    if part == "model":
        assert result["result"]["reloaded_equal"] is True
        assert result["result"]["tokens"]["cache"] == result["result"]["tokens"]["no_cache"]


def test_packages_load_with_device_map_and_disk_offload_as_on_4x() -> None:
    """Large legacy models load as 4.x loaded them (issue 14, item 1): under a device_map their parameters are
    built on the meta device and their buffers and computed tensors are real; with a memory budget below the
    model's size the rest is offloaded to disk; the logits and greedy tokens equal the package's reference;
    quantized (optimum-quanto, in the latest stack) the buffers equal the unquantized model's; and weights the
    checkpoint lacks are initialised by the model's _init_weights (not left as empty memory)."""
    if not affected("m25-legacy-meta-init"):
        pytest.skip("transformers builds models itself here (m25 is out of range)")
    outcome = scenario("big_loads", hotfix="before")
    assert outcome["ok"], outcome.get("traceback")
    loads = outcome["result"]
    quanto = importlib.util.find_spec("optimum") is not None and importlib.util.find_spec("optimum.quanto") is not None
    for name in PACKAGES:
        expected = reference(name, "model")["result"]
        for how in ("auto", "offload"):
            load = loads[f"{name} {how}"]
            assert "error" not in load, (name, how, load)
            assert load["built"]["parameters"] == ["meta"], (name, how, load["built"])
            assert set(load["built"]["buffers"]) <= {"cpu"}, (name, how, load["built"])
            assert load["tokens"] == expected["tokens"]["cache"], (name, how)
            rows = zip(load["logits"], expected["logits"], strict=True)
            assert all(max(abs(a - b) for a, b in zip(r, e, strict=True)) <= 1e-5 for r, e in rows), (name, how)
        assert loads[f"{name} offload"]["placed"] == ["cpu", "disk"], name
        if quanto:  # installed in the latest stack
            quantized = loads[f"{name} quantized"]
            assert quantized["quantized"] == ["QLinear"], (name, quantized)
            assert quantized["buffers_equal"], name
            assert quantized["logits_error"] < 0.1, (name, quantized)  # int8 weights: close, not equal
    # Buffers computed in __init__ exist in these packages (RoPE tables): they were real, and kept their values.
    assert any(loads[f"{name} auto"]["built"]["buffers"] == ["cpu"] for name in PACKAGES)
    assert loads["missing"] == {"transformer.ln_f.bias": [0.0], "transformer.ln_f.weight": [1.0]}


def test_only_the_thread_building_a_legacy_model_puts_parameters_on_meta() -> None:
    import threading

    import torch

    from patches.modeling import _ParametersOnMeta

    original = torch.nn.Module.register_parameter
    inside, built = threading.Event(), threading.Event()
    elsewhere: dict[str, str] = {}

    def build_elsewhere() -> None:
        inside.wait(5)
        elsewhere["device"] = torch.nn.Linear(2, 2).weight.device.type
        built.set()

    thread = threading.Thread(target=build_elsewhere)
    thread.start()
    with _ParametersOnMeta():
        with _ParametersOnMeta():  # nested, as a composite model builds its parts
            layer = torch.nn.Linear(2, 2)
        second = torch.nn.Linear(2, 2)
        layer.register_buffer("table", torch.arange(3.0))
        inside.set()
        assert built.wait(5)
    thread.join()
    assert layer.weight.device.type == second.bias.device.type == "meta"
    assert layer.table.tolist() == [0.0, 1.0, 2.0]
    assert elsewhere["device"] == "cpu"
    assert torch.nn.Module.register_parameter is original
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"


@pytest.mark.parametrize(("name", "part"), CASES)
def test_package_fails_without_hotfix_where_its_patches_are_in_range(name: str, part: str) -> None:
    needs(name, part)
    plain = outcome("")["result"][name][part]
    in_range = [p for p in patches_of(name, part) if breaks_here(name, p)]
    expected = reference(name, part)["result"]
    if not in_range:
        assert plain["ok"], plain.get("traceback")
        assert matches(plain["result"], expected, name)
        statuses = outcome("before")["status"]
        for patch in patches_of(name, part):
            if not affected(patch):  # in range, the patch may be on for other legacy code than this package's
                assert statuses[patch]["state"] == "skipped", (patch, statuses[patch])
        return
    if plain["ok"]:
        # Only a silent break can leave the part running: then its numbers differ.
        assert any(users_saw(p, name).startswith("!") for p in in_range), (in_range, plain["result"])
        assert not matches(plain["result"], expected, name)
        return
    errors = [part for p in in_range for part in users_saw(p, name).split("|") if not part.startswith("!")]
    assert any(error in plain["error"] for error in errors), (in_range, plain["error"])


def test_every_patch_the_packages_reproduce_is_listed() -> None:
    assert set(PACKAGE_REPRODUCERS) == REPRODUCED_IN_TEST_PACKAGES
    for patch, (name, part, _) in PACKAGE_REPRODUCERS.items():
        assert patch in patches_of(name, part), (patch, name, part)


def package_run(name: str, part: str) -> Run:
    """The three-way check's runner: the packages scenario (cached with every patch), one package's part."""

    def run(selection: Sequence[str]) -> Outcome:
        denied = ",".join(item for item in selection if item.startswith("-"))
        whole = scenario("packages", hotfix="before", patches=denied) if denied else outcome("before")
        if not whole["ok"]:
            raise AssertionError(whole.get("traceback"))
        piece = whole["result"][name][part]
        return Outcome(piece["ok"], piece.get("error"), piece.get("traceback"), piece.get("result"), whole["status"])

    return run


@pytest.mark.parametrize("patch_id", sorted(PACKAGE_REPRODUCERS))
def test_package_fails_with_hotfix_minus_the_patch_and_passes_with_it(patch_id: str) -> None:
    name, part, saw = PACKAGE_REPRODUCERS[patch_id]
    needs(name, part)
    check_patch(
        patch_id,
        package_run(name, part),
        error=None if saw.startswith("!") else saw,
        expected=reference(name, part)["result"],
        same=lambda result, expected: matches(result, expected, name),
    )
