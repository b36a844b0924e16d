"""registry.toml and plugin declarations: valid ones load, malformed ones say where and what."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hotfix
from hotfix import RegistryError
from hotfix._registry import load_toml, patch_from_mapping
from hotfix._resources import registry_text

VALID: dict[str, Any] = {
    "id": "x-moved",
    "shape": "moved-name",
    "summary": "moved",
    "distribution": "fakelib",
    "affected": ">=2.0",
    "owner": "fakelib.core",
    "name": "moved",
    "target": "fakelib.new:moved",
}


def test_the_bundled_registry_is_valid_and_every_reference_resolves() -> None:
    patches, breaks = load_toml(registry_text(), "registry.toml")
    assert len({p.id for p in patches}) == len(patches) >= 6
    assert {"M1", "M3", "G1", "G2"} <= {b.id for b in breaks}
    for patch in patches:
        for ref in (patch.probe, patch.apply):
            resolve = getattr(ref, "resolve", None)
            if resolve is not None:
                assert callable(resolve())
        assert patch.catalog, f"{patch.id} names no break of the catalog"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Bad Id"}, "'id' is not a valid id"),
        ({"id": 3}, "'id' must be a non-empty string, got 3"),
        ({"shape": "teleport"}, "unknown shape 'teleport'; expected one of"),
        ({"affected": ">=banana"}, "'affected' is not a PEP 440 version range: '>=banana'"),
        ({"owner": "not a module"}, "'owner' is not a valid owner"),
        ({"target": "nocolon"}, "'target' is not a valid reference 'module:attribute'"),
        ({"default": "yes"}, "'default' must be true or false, got 'yes'"),
        ({"unsafe": True, "default": True}, "an unsafe patch cannot be on by default"),
        ({"colour": "red"}, "unknown key(s) 'colour' for shape 'moved-name'"),
        ({"links": [1, 2]}, "'links' must be a string or a list of strings"),
    ],
)
def test_malformed_entries_name_the_source_the_entry_and_the_problem(change: dict[str, Any], message: str) -> None:
    raw = {**VALID, **change}
    with pytest.raises(RegistryError) as caught:
        patch_from_mapping(raw, "registry.toml", 4)
    text = str(caught.value)
    assert text.startswith("registry.toml: entry ")
    assert message in text
    expected_label = repr(raw["id"]) if isinstance(raw["id"], str) else "#4"
    assert caught.value.entry == expected_label


@pytest.mark.parametrize("missing", ["id", "summary", "distribution", "affected", "shape"])
def test_missing_keys_are_named(missing: str) -> None:
    raw = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(RegistryError, match=f"missing required key '{missing}'|needs"):
        patch_from_mapping(raw, "f.toml", 1)


def test_shape_specific_requirements() -> None:
    with pytest.raises(RegistryError, match="shape 'moved-name' needs 'target'"):
        patch_from_mapping({k: v for k, v in VALID.items() if k != "target"}, "f.toml", 1)
    restored = {**VALID, "shape": "restored-attribute"}
    del restored["target"]
    with pytest.raises(RegistryError, match="exactly one of 'via'"):
        patch_from_mapping(restored, "f.toml", 1)
    with pytest.raises(RegistryError, match="'kind' must be one of"):
        patch_from_mapping({**restored, "via": "x", "kind": "slot"}, "f.toml", 1)
    keyword = {**restored, "shape": "removed-keyword"}
    with pytest.raises(RegistryError, match="needs 'drop' or 'rename'"):
        patch_from_mapping(keyword, "f.toml", 1)
    with pytest.raises(RegistryError, match="'rename' must be a table"):
        patch_from_mapping({**keyword, "rename": ["a"]}, "f.toml", 1)
    code = {k: v for k, v in VALID.items() if k not in ("owner", "name", "target")}
    code.update(shape="code", probe="patches.x:probe", apply="patches.x:apply")
    with pytest.raises(RegistryError, match="needs at least one of 'modules', 'prefixes' or 'provides'"):
        patch_from_mapping(code, "f.toml", 1)


def test_file_level_errors() -> None:
    with pytest.raises(RegistryError, match=r"^r.toml: entry \(file\): not valid TOML"):
        load_toml("[[patch]\n", "r.toml")
    with pytest.raises(RegistryError, match="unknown top-level key"):
        load_toml("[other]\na = 1\n", "r.toml")
    with pytest.raises(RegistryError, match="'catalog' names unknown break 'Z9'"):
        load_toml('[[patch]]\nid = "a"\nshape = "moved-name"\nsummary = "s"\ndistribution = "d"\naffected = ">=1"\n'
                  'owner = "m"\nname = "n"\ntarget = "m:t"\ncatalog = ["Z9"]\n', "r.toml")  # fmt: skip
    duplicate = '[[patch]]\nid = "a"\nshape = "moved-name"\nsummary = "s"\ndistribution = "d"\naffected = ">=1"\n'
    duplicate += 'owner = "m"\nname = "n"\ntarget = "m:t"\n'
    with pytest.raises(RegistryError, match="id already declared"):
        load_toml(duplicate * 2, "r.toml")


_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=12), st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    drop=st.sets(st.sampled_from(sorted(VALID))),
    replace=st.dictionaries(st.sampled_from([*sorted(VALID), "kind", "via", "drop", "rename", "extra"]), _values),
)
def test_fuzzed_entries_either_load_or_raise_a_registry_error(drop: set[str], replace: dict[str, Any]) -> None:
    raw = {k: copy.deepcopy(v) for k, v in VALID.items() if k not in drop}
    raw.update(replace)
    try:
        patch_from_mapping(raw, "fuzz.toml", 7)
    except RegistryError as error:
        assert str(error).startswith("fuzz.toml: entry ")
        assert error.problem


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_fuzzed_files_either_load_or_raise_a_registry_error(text: str) -> None:
    try:
        load_toml(text, "fuzz.toml")
    except RegistryError as error:
        assert str(error).startswith("fuzz.toml: entry ")


def test_a_plugin_with_bad_entries_loses_only_those(register: Any) -> None:
    register({**VALID, "id": "good-one"}, {**VALID, "id": "bad-one", "affected": "nonsense"}, "not a table")
    status = hotfix.status()
    ids = {p.id for p in status.patches}
    assert "good-one" in ids and "bad-one" not in ids
    assert any("plugin 'test-pack-" in e and "entry 'bad-one': 'affected'" in e for e in status.errors)
    assert any("entry #3: must be a table of keys, got str" in e for e in status.errors)


def test_a_plugin_cannot_take_a_bundled_id(register: Any) -> None:
    register({**VALID, "id": "m3-no-init-weights"})
    errors = hotfix.status().errors
    assert any("entry 'm3-no-init-weights': id already declared by" in e for e in errors)


def test_a_plugin_whose_hook_raises_is_reported(register: Any) -> None:
    class Broken:
        @hotfix.hookimpl
        def hotfix_patches(self) -> list[Any]:
            raise ValueError("no patches today")

    hotfix.register_plugin(Broken(), name="broken")
    assert "plugin 'broken': hotfix_patches() raised ValueError: no patches today" in hotfix.status().errors


BREAK = '[[break]]\nid = "B1"\ndistribution = "fakelib"\naffected = ">=2.0"\nsummary = "moved went to new"\n'
BREAK += "error = \"ImportError: cannot import name 'moved'\"\n"
PATCH = '[[patch]]\nid = "x-moved"\nshape = "moved-name"\nowner = "fakelib.core"\nname = "moved"\n'
PATCH += 'target = "fakelib.new:moved"\ncatalog = ["B1"]\n'


def test_a_patch_inherits_its_breaks_summary_range_and_error() -> None:
    patch = load_toml(BREAK + PATCH, "r.toml")[0][0]
    assert (patch.summary, patch.distribution, str(patch.affected)) == ("moved went to new", "fakelib", ">=2.0")
    assert patch.error == "ImportError: cannot import name 'moved'"
    narrowed = load_toml(BREAK + PATCH + 'affected = ">=2.1,<3"\nsummary = "own words"\n', "r.toml")[0][0]
    assert str(narrowed.affected) == "<3,>=2.1" and narrowed.summary == "own words"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('affected = ">=1.9"\n', r"'affected' >=1.9 includes 1.9, outside break B1's range >=2.0"),
        ('affected = "<3"\n', r"outside break B1's range >=2.0"),
        ('affected = "!=2.5.*"\n', r"outside break B1's range"),
        ('distribution = "otherlib"\n', r"'distribution' 'otherlib' differs from break B1's 'fakelib'"),
    ],
)
def test_a_patch_may_only_narrow_its_break(extra: str, message: str) -> None:
    with pytest.raises(RegistryError, match=rf"^r.toml: entry 'x-moved': .*{message}"):
        load_toml(BREAK + PATCH + extra, "r.toml")


def test_every_bundled_patch_names_its_reproducer_and_states_only_what_narrows_its_break() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    raw = tomllib.loads(registry_text())
    breaks = {b["id"]: b for b in raw["break"]}
    for entry in raw["patch"]:
        assert entry.get("reproducer"), entry["id"]
        known = breaks[entry["catalog"][0]]
        for key in ("distribution", "affected", "error"):
            assert entry.get(key) != known.get(key), f"{entry['id']}: {key} repeats break {known['id']}'s; omit it"


def test_reproducer_grammar() -> None:
    for bad in ("m3", "scenario:", "package:legacy_lm", "package:legacy_lm/weights", "pytest:x"):
        with pytest.raises(RegistryError, match="'reproducer' is not a valid reproducer"):
            patch_from_mapping({**VALID, "reproducer": bad}, "f.toml", 1)
    assert patch_from_mapping({**VALID, "reproducer": "package:legacy_qwen/tokenizer"}, "f.toml", 1).reproducer
