"""``hotfix scan``: static, and right about what Python's import would say on the installed versions.

Every kind of finding is shown on code written here; on the bundled fixture
packages every import finding is checked against a real ``from m import n`` in
a clean interpreter, so the scan can only pass by being right on the
installed transformers (the matrix runs this on each version).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hotfix import _scan
from hotfix._errors import RegistryError
from hotfix._registry import load_toml
from hotfix._runtime import RUNTIME
from hotfix._versions import gate, installed_version

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # One cache for the whole module (asking the library costs seconds), never the user's.
    monkeypatch.setenv("HOTFIX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hotfix-scan-cache"))


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_") or k == "HOTFIX_CACHE_DIR"}


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def _findings(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["name"] == name]


def _applies(patch_id: str) -> bool:
    patch = next(p for p in RUNTIME.plugins.collected().patches if p.id == patch_id)
    return gate(patch.affected, installed_version(patch.distribution))[0]


def _imports_fine(keys: list[str]) -> dict[str, bool]:
    """What a real import statement says, in a clean interpreter without hotfix."""
    code = (
        "import json, sys\nanswers = {}\nfor key in json.load(sys.stdin):\n"
        "    module, _, name = key.partition(':')\n"
        "    try:\n        exec(f'from {module} import {name}' if name else f'import {module}', {})\n"
        "        answers[key] = True\n    except ImportError:\n        answers[key] = False\n"
        "print('ANSWERS ' + json.dumps(answers))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(keys), capture_output=True, text=True, env=_clean_env(),
        timeout=600, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("ANSWERS "))
    answers: dict[str, bool] = json.loads(line[len("ANSWERS ") :])
    return answers


LEGACY = """
    import transformers
    from transformers import PreTrainedModel
    from transformers.modeling_utils import no_init_weights
    from transformers import NoSuchNameInAnyTransformers
    import transformers.no_such_module_anywhere

    try:
        from transformers import AlsoNoSuchName
    except ImportError:
        AlsoNoSuchName = None


    class OldModel(PreTrainedModel):
        _tied_weights_keys = ["lm_head.weight"]

        def prepare_inputs_for_generation(self, input_ids, **kwargs):
            return {"input_ids": input_ids}

        def forward(self, input_ids):
            scaling = self.config.rope_scaling["type"]
            mask = transformers.generation.utils.SampleOutput
            return scaling, mask
"""


def test_every_kind_of_finding_on_code_written_in_the_old_style(tmp_path: Path) -> None:
    report = _scan.scan(_folder(tmp_path, {"modeling_old.py": LEGACY}))
    [available] = _findings(report, "transformers:PreTrainedModel")
    assert available["status"] == "available" and available["file"] == "modeling_old.py" and available["line"] == 3
    [moved] = _findings(report, "transformers.modeling_utils:no_init_weights")
    if _applies("m3-no-init-weights"):  # transformers 5: moved; hotfix puts it back
        assert (moved["status"], moved["patch"]) == ("repaired", "m3-no-init-weights")
    else:
        assert moved["status"] == "available"
    [missing] = _findings(report, "transformers:NoSuchNameInAnyTransformers")
    assert missing["status"] == "uncovered" and "no hotfix patch covers it" in missing["detail"]
    [module] = _findings(report, "transformers.no_such_module_anywhere")
    assert module["status"] == "uncovered"
    [guarded] = _findings(report, "transformers:AlsoNoSuchName")
    assert guarded["status"] == "guarded"
    [chain] = _findings(report, "transformers.generation.utils:SampleOutput")  # an attribute chain
    assert chain["status"] == ("repaired" if _applies("g14-generate-output-aliases") else "available")
    shapes = {f["name"]: f for f in report["findings"] if f["kind"] == "shape"}
    if _applies("m1-tied-weights-keys-list"):
        assert shapes["class-list:PreTrainedModel._tied_weights_keys"]["patch"] == "m1-tied-weights-keys-list"
        assert "class OldModel" in shapes["class-list:PreTrainedModel._tied_weights_keys"]["detail"]
    if _applies("m19-legacy-rope-scaling"):
        assert shapes["subscript:rope_scaling[type]"]["line"] == 21
    if _applies("g7-generation-mixin"):
        assert shapes["override:PreTrainedModel.prepare_inputs_for_generation"]["status"] == "repaired"
    for finding in shapes.values():  # a shape is listed only where its break is in the installed version
        assert finding["patch"] is None or _applies(finding["patch"])
    assert report["counts"]["uncovered"] == 2 and _scan.uncovered(report)


def test_a_denied_patch_leaves_its_names_uncovered_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _applies("m3-no-init-weights"):
        pytest.skip("no_init_weights is still in transformers.modeling_utils here")
    monkeypatch.setenv("HOTFIX_PATCHES", "-m3-no-init-weights")
    report = _scan.scan(_folder(tmp_path, {"modeling_old.py": LEGACY}))
    [moved] = _findings(report, "transformers.modeling_utils:no_init_weights")
    assert moved["status"] == "uncovered"
    assert "m3-no-init-weights covers it but is denied by the selection" in moved["detail"]


def test_an_archived_library_is_broken_by_what_it_imports(tmp_path: Path) -> None:
    if importlib.util.find_spec("transformers_stream_generator") is None:  # importing it may fail: that is the point
        pytest.skip("transformers_stream_generator is not installed here")
    folder = _folder(tmp_path, {"modeling_q.py": "from transformers_stream_generator import init_stream_support\n"})
    report = _scan.scan(folder)
    [entry] = _findings(report, "transformers_stream_generator:init_stream_support")
    if _applies("m22-disjunctiveconstraint"):  # transformers 5: its `from transformers import DisjunctiveConstraint`
        assert entry["status"] == "repaired" and "transformers_stream_generator/main.py" in entry["detail"]
        [inner] = _findings(report, "transformers:DisjunctiveConstraint")
        assert (
            inner["file"] == "transformers_stream_generator/main.py" and inner["patch"] == "m22-disjunctiveconstraint"
        )
    truth = _imports_fine(["transformers_stream_generator:init_stream_support"])
    assert truth["transformers_stream_generator:init_stream_support"] is (entry["status"] == "available")


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_every_import_finding_on_the_fixture_packages_agrees_with_python(name: str) -> None:
    report = _scan.scan(FIXTURES / name)
    statuses = {f["name"]: f["status"] for f in report["findings"] if f["kind"] == "import"}
    assert statuses and not {"unknown", "uncovered"} & set(statuses.values()), report["findings"]
    truth = _imports_fine(sorted(statuses))
    wrong = {k: (s, truth[k]) for k, s in statuses.items() if truth[k] is not (s == "available")}
    assert not wrong


def test_scan_reads_and_never_runs_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    folder = _folder(tmp_path, {"modeling_x.py": f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n"})
    assert _scan.scan(folder)["counts"]["uncovered"] == 0
    assert not marker.exists()


def test_a_hugging_face_cache_folder_and_a_single_file_are_scanned(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--org--old" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "modeling_old.py").write_text(textwrap.dedent(LEGACY), encoding="utf-8")
    report = _scan.scan(tmp_path / "models--org--old")
    assert report["files"] == 1 and _findings(report, "transformers:NoSuchNameInAnyTransformers")[0]["file"] == (
        "snapshots/0123abcd/modeling_old.py"
    )
    single = _scan.scan(snapshot / "modeling_old.py")
    assert single["counts"] == report["counts"]


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(_scan.ScanError, match="no such file or folder"):
        _scan.scan(tmp_path / "absent")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(_scan.ScanError, match="no Python file to scan"):
        _scan.scan(tmp_path)
    (tmp_path / "broken.py").write_text("def (:\n")
    [finding] = _scan.scan(tmp_path)["findings"]
    assert finding["status"] == "unknown" and "not parsed" in finding["detail"]


def test_a_second_scan_answers_from_the_cache_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path, {"modeling_old.py": LEGACY})
    first = _scan.scan(folder)

    def no_subprocess(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the library was asked again")

    monkeypatch.setattr(_scan.subprocess, "run", no_subprocess)
    assert _scan.scan(folder) == first


def test_the_command_exits_1_on_uncovered_and_prints_json(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"modeling_old.py": LEGACY})
    done = subprocess.run(
        [sys.executable, "-m", "hotfix", "scan", "--json", str(folder)], capture_output=True, text=True,
        env=_clean_env(), timeout=600,
    )  # fmt: skip
    assert done.returncode == 1 and json.loads(done.stdout)["counts"]["uncovered"] == 2
    clean = _folder(tmp_path, {"modeling_old.py": "from transformers import PreTrainedModel\n"})
    done = subprocess.run(
        [sys.executable, "-m", "hotfix", "scan", str(clean)], capture_output=True, text=True, env=_clean_env(),
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 available" in done.stdout


def test_a_malformed_scan_trigger_names_the_file_and_entry() -> None:
    text = textwrap.dedent(
        """
        [[patch]]
        id = "x-bad-trigger"
        shape = "code"
        summary = "s"
        distribution = "transformers"
        affected = ">=5"
        modules = ["transformers"]
        probe = "patches.caches:probe_get_max_length"
        apply = "patches.caches:apply_get_max_length"
        scan = ["overrides PreTrainedModel.generate"]
        """
    )
    with pytest.raises(RegistryError, match=r"pack\.toml.*'x-bad-trigger'.*invalid scan trigger"):
        load_toml(text, "pack.toml")


def test_every_bundled_scan_trigger_names_a_known_kind() -> None:
    for patch in RUNTIME.plugins.collected().patches:
        for trigger in _scan.patch_triggers(patch):
            assert trigger.partition(":")[0] in _scan.TRIGGER_KINDS, (patch.id, trigger)


OVERRIDES = """
    from transformers import PreTrainedModel, PreTrainedTokenizer


    class OldTokenizer(PreTrainedTokenizer):
        def _pad(self, encoded_inputs, max_length=None, padding_strategy=None, pad_to_multiple_of=None,
                 return_attention_mask=None):
            return encoded_inputs


    class OldModel(PreTrainedModel):
        def resize_token_embeddings(self, new_num_tokens):
            return None

        def set_input_embeddings(self, new_embeddings):  # another name at the same position: fine
            self.embed = new_embeddings

        def get_input_embeddings(self, *args, **kwargs):  # takes anything: fine
            return self.embed
"""


def test_overrides_that_take_fewer_parameters_than_the_library_passes(tmp_path: Path) -> None:
    report = _scan.scan(_folder(tmp_path, {"modeling_old.py": OVERRIDES}))
    overrides = {f["name"]: f for f in report["findings"] if f["kind"] == "override"}
    if _applies("t2-pad-padding-side"):  # 4.45+: pad() passes padding_side= to _pad
        pad = overrides["OldTokenizer._pad"]
        assert (pad["status"], pad["patch"]) == ("repaired", "t2-pad-padding-side") and "padding_side" in pad["detail"]
    else:
        assert "OldTokenizer._pad" not in overrides
    resize = overrides["OldModel.resize_token_embeddings"]
    assert resize["status"] == "review" and "pad_to_multiple_of" in resize["detail"]
    assert "OldModel.set_input_embeddings" not in overrides and "OldModel.get_input_embeddings" not in overrides
    assert report["counts"]["uncovered"] == 0  # a review is not a failure


def test_a_shape_whose_patch_is_denied_is_uncovered_and_one_out_of_range_is_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTFIX_PATCHES", "-m1-tied-weights-keys-list")
    report = _scan.scan(_folder(tmp_path, {"modeling_old.py": LEGACY}))
    shapes = [f for f in report["findings"] if f["name"] == "class-list:PreTrainedModel._tied_weights_keys"]
    if _applies("m1-tied-weights-keys-list"):  # 5.x: the list form breaks, and the patch that covers it is denied
        [shape] = shapes
        assert shape["status"] == "uncovered" and "denied by the selection" in shape["detail"]
        assert _scan.uncovered(report)
    else:  # 4.x takes the list: nothing to report, denied or not
        assert shapes == []
