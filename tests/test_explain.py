"""Errors that name their fix: notes on errors from legacy code, and ``hotfix explain``.

Each note test runs a real interpreter with ``HOTFIX_ENABLE=1`` on code
written here in the old style and declared legacy, and reads what the user
would see on stderr.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hotfix
from hotfix import _explain
from hotfix._runtime import RUNTIME
from hotfix._versions import gate, installed_version

pytest.importorskip("transformers")


def _applies(patch_id: str) -> bool:
    patch = next(p for p in RUNTIME.plugins.collected().patches if p.id == patch_id)
    return gate(patch.affected, installed_version(patch.distribution))[0]


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "oldpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def _python(root: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update({"HOTFIX_ENABLE": "1", "HOTFIX_LEGACY": "oldpkg.*", "PYTHONPATH": str(root), **env})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=root, timeout=300
    )


def test_an_uncovered_import_in_legacy_code_says_so_and_how_to_find_the_rest(tmp_path: Path) -> None:
    root = _package(tmp_path, {"modeling.py": "from transformers import NoSuchThingInTransformers\n"})
    done = _python(root, "import oldpkg.modeling")
    assert done.returncode == 1
    assert "ImportError: cannot import name 'NoSuchThingInTransformers'" in done.stderr
    assert "hotfix: raised in legacy code (oldpkg.modeling)." in done.stderr
    assert "hotfix: no hotfix patch covers this error" in done.stderr and "hotfix scan" in done.stderr


def test_a_covered_import_that_still_fails_names_its_patch_and_why(tmp_path: Path) -> None:
    if not _applies("m3-no-init-weights"):
        pytest.skip("no_init_weights is still in transformers.modeling_utils here")
    root = _package(tmp_path, {"modeling.py": "from transformers.modeling_utils import no_init_weights\n"})
    denied = _python(root, "import oldpkg.modeling", HOTFIX_PATCHES="-m3-no-init-weights")
    assert "ImportError: cannot import name 'no_init_weights'" in denied.stderr
    assert "patch m3-no-init-weights (break M3) covers this" in denied.stderr
    assert "denied by the selection" in denied.stderr
    assert _python(root, "import oldpkg.modeling").returncode == 0  # and with it, the import works


def test_remote_code_that_fails_to_import_carries_the_note_even_when_caught(tmp_path: Path) -> None:
    folder = tmp_path / "old-model"
    folder.mkdir()
    (folder / "config.json").write_text(
        '{"model_type": "old", "auto_map": {"AutoConfig": "configuration_old.OldConfig"}}', encoding="utf-8"
    )
    (folder / "configuration_old.py").write_text(
        "from transformers import PretrainedConfig, NoSuchThingInTransformers\n\n\n"
        "class OldConfig(PretrainedConfig):\n    model_type = 'old'\n",
        encoding="utf-8",
    )
    code = (
        "import sys\nfrom transformers import AutoConfig\n"
        "try:\n    AutoConfig.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "except ImportError as error:\n    print('NOTES', getattr(error, '__notes__', []))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update(HOTFIX_ENABLE="1", HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=environment, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    notes = done.stdout.partition("NOTES ")[2]
    assert "hotfix: raised in legacy code (transformers_modules." in notes
    assert "no hotfix patch covers this error" in notes


def test_a_call_time_error_in_legacy_code_gets_the_note_through_the_excepthook(tmp_path: Path) -> None:
    root = _package(tmp_path, {"calltime.py": "def run(cache):\n    return cache.get_max_length()\n"})
    code = "import oldpkg.calltime\nclass C: pass\noldpkg.calltime.run(C())\n"
    done = _python(root, code, HOTFIX_PATCHES="-g2-cache-get-max-length")
    assert "AttributeError: 'C' object has no attribute 'get_max_length'" in done.stderr
    assert "hotfix: raised in legacy code (oldpkg.calltime)." in done.stderr
    assert "patch g2-cache-get-max-length (break G2) covers this" in done.stderr


def test_errors_from_modern_code_get_no_note(tmp_path: Path) -> None:
    root = _package(tmp_path, {})
    (root / "modern.py").write_text("def run(x):\n    return x.get_max_length()\n")
    done = _python(root, "import modern\nmodern.run(object())\n")
    assert "AttributeError" in done.stderr and "hotfix:" not in done.stderr


def test_annotate_marks_an_error_once_and_only_from_legacy_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, object] = {"__name__": "transformers_modules.old.modeling_old"}
    exec("def run():\n    from transformers import NoSuchThingInTransformers\n", namespace)
    with pytest.raises(ImportError) as caught:
        namespace["run"]()  # type: ignore[operator]
    assert _explain.annotate(caught.value)
    assert not _explain.annotate(caught.value)  # once
    assert len(caught.value.__notes__) == 1 and "transformers_modules.old.modeling_old" in caught.value.__notes__[0]
    try:
        raise AttributeError("'X' object has no attribute 'get_max_length'")
    except AttributeError as modern:
        assert not _explain.annotate(modern)  # this test module is not legacy
    assert not _explain.annotate(RuntimeError("other kinds are left alone"))


def test_the_excepthooks_are_chained_and_removed_on_disable() -> None:
    before_sys, before_thread = sys.excepthook, threading.excepthook
    hotfix.enable()
    try:
        assert sys.excepthook is not before_sys and threading.excepthook is not before_thread
    finally:
        hotfix.disable()
    assert sys.excepthook is before_sys and threading.excepthook is before_thread


@pytest.mark.parametrize(
    ("text", "patch"),
    [
        ("ImportError: cannot import name 'SampleOutput' from 'transformers.generation.utils' (/x.py)",
         "g14-generate-output-aliases"),
        ("ModuleNotFoundError: No module named 'transformers.modeling_attn_mask_utils'", "m26-attn-mask-utils-module"),
        ("AttributeError: 'DynamicCache' object has no attribute 'seen_tokens'", "g3-cache-seen-tokens"),
        ("TypeError: QWenTokenizer._pad() got an unexpected keyword argument 'padding_side'", "t2-pad-padding-side"),
        ("AttributeError: 'MyConfig' object has no attribute 'max_length'", "m18-config-generation-defaults"),
    ],
)  # fmt: skip
def test_explain_finds_the_patch_from_the_message_alone(text: str, patch: str) -> None:
    explanation = _explain.explain_text(text)
    assert f"patch {patch} " in explanation
    assert not explanation.startswith(_explain.UNCOVERED)


def test_the_explain_command(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    run = [sys.executable, "-m", "hotfix", "explain"]
    covered = subprocess.run(
        [*run, "ImportError: cannot import name 'AdamW' from 'transformers'"], capture_output=True, text=True,
        env=environment, timeout=120,
    )  # fmt: skip
    assert covered.returncode == 0 and "patch m15-adamw (break M15) covers this" in covered.stdout
    if _applies("m15-adamw"):
        assert "with hotfix enabled" in covered.stdout
    else:
        assert "it is skipped here" in covered.stdout
    unknown = subprocess.run(
        [*run, "-"], input="AttributeError: 'Foo' object has no attribute 'bar_baz_qux'", capture_output=True,
        text=True, env=environment, timeout=120,
    )  # fmt: skip
    assert unknown.returncode == 1 and unknown.stdout.startswith(_explain.UNCOVERED)
    assert "hotfix scan" in unknown.stdout
    empty = subprocess.run([*run, " "], capture_output=True, text=True, env=environment, timeout=120)
    assert empty.returncode == 2 and "give the error text" in empty.stderr


def test_a_type_error_and_a_thread_get_the_note_too(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {"loading.py": "def target():\n    return 1\n\n\ndef load(**kwargs):\n    return target(**kwargs)\n"},
    )
    code = (
        "import threading, oldpkg.loading\n"
        "worker = threading.Thread(target=oldpkg.loading.load, kwargs={'resume_download': True})\n"
        "worker.start(); worker.join()\n"
    )
    done = _python(root, code)
    assert "TypeError: target() got an unexpected keyword argument 'resume_download'" in done.stderr
    assert "hotfix: raised in legacy code (oldpkg.loading)." in done.stderr  # through threading.excepthook
    assert "patch m24-from-pretrained-hub-keywords (break M24) covers this" in done.stderr


def test_the_note_says_when_the_covering_patch_failed_or_is_out_of_range(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    from conftest import code_patch
    from packaging.specifiers import SpecifierSet

    fakelib("2.0.0")

    def broken(module: types.ModuleType, shims: hotfix.Shims) -> None:
        raise RuntimeError("cannot apply here")

    failing = dataclasses.replace(
        code_patch("fake-failing", broken), error="AttributeError: 'Core' object has no attribute 'old_api'"
    )
    old = dataclasses.replace(
        code_patch("fake-old", broken),
        affected=SpecifierSet("<1"),
        error="AttributeError: 'Core' object has no attribute 'older_api'",
    )
    register(failing, old)
    hotfix.enable()
    importlib.import_module("fakelib.core")
    assert hotfix.status()["fake-failing"].state == "failed"
    failed = _explain.explain_text("AttributeError: 'Engine' object has no attribute 'old_api'")
    assert "patch fake-failing covers this" in failed and "it failed here: " in failed and "cannot apply here" in failed
    ranged = _explain.explain_text("AttributeError: 'Engine' object has no attribute 'older_api'")
    assert "patch fake-old covers this" in ranged and "it was skipped: fakelib 2.0.0 is outside <1" in ranged
