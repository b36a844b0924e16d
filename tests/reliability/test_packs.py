"""Guarantee: one malformed patch pack never turns hotfix off, and strict mode means all or nothing.

A pack's ``Patch`` with a field of the wrong type (a string range, ``id=None``,
``modules`` as one string, ``distribution=None``, ...) is left out and named
(plugin, entry, problem) in ``hotfix.status().errors`` and the log; every
other patch, of that pack and of the others, still works, and ``hotfix
list``, ``doctor`` and ``status()`` keep working. In strict mode
(``HOTFIX_STRICT=1``, for CI) the same problems raise, and an ``enable()``
that raises leaves hotfix off; a strict activation at start-up that fails
stops the program with exit code 1.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import code_patch
from packaging.specifiers import SpecifierSet

import hotfix
from hotfix._runtime import RUNTIME


def _good(module: Any, shims: hotfix.Shims) -> None:
    shims.set(module, "GOOD", True)


MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "id None": ({"id": None}, "id is not a valid"),
    "modules a string": ({"modules": "fakelib.core"}, "modules must be a tuple of strings, not str"),
    "distribution None": ({"distribution": None}, "distribution must be a string, not NoneType"),
    "distribution empty": ({"distribution": ""}, "distribution must name the distribution"),
    "affected invalid": ({"affected": "version five"}, "affected: Invalid specifier"),
    "affected a number": ({"affected": 5}, "affected must be a SpecifierSet, not int"),
    "summary None": ({"summary": None}, "summary must be a string"),
    "default a string": ({"default": "yes"}, "default must be True or False"),
    "bad module name": ({"modules": ("fakelib core",)}, "'fakelib core' is not a module name"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_patch_is_left_out_and_named_and_the_rest_works(
    case: str, fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    change, problem = MALFORMED[case]
    fakelib()
    bad = dataclasses.replace(code_patch("bad-one", _good), **change)
    register(bad, code_patch("good-one", _good))
    hotfix.enable()
    import fakelib.core  # type: ignore[import-not-found]

    assert fakelib.core.GOOD is True and hotfix.status()["good-one"].state == "applied"
    errors = hotfix.status().errors
    assert any("plugin 'test-pack-" in e and problem in e for e in errors), errors
    assert "bad-one" not in [p.id for p in hotfix.status().patches]


def test_a_string_range_is_accepted_as_a_specifier(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib()
    register(dataclasses.replace(code_patch("string-range", _good), affected=">=1"))
    hotfix.enable()
    import fakelib.core

    assert fakelib.core.GOOD is True and hotfix.status()["string-range"].state == "applied"


def test_list_and_doctor_keep_working_beside_a_malformed_pack(tmp_path: Path) -> None:
    # A pack installed through the entry point, contributing a Patch with a string as its modules.
    site = tmp_path / "site"
    (site / "bad_pack").mkdir(parents=True)
    (site / "bad_pack" / "__init__.py").write_text(
        "import hotfix\nfrom packaging.specifiers import SpecifierSet\n"
        "@hotfix.hookimpl\ndef hotfix_patches():\n"
        "    return [hotfix.Patch(id='bad-pack-patch', summary='s', distribution='fakelib', affected=SpecifierSet(),"
        " probe=lambda m: (True, ''), apply=lambda m, s: None, modules='fakelib.core')]\n",
        encoding="utf-8",
    )
    info = site / "bad_pack-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-pack\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[hotfix.patches]\nbad = bad_pack\n", encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment["PYTHONPATH"] = str(site)
    for command in (["list"], ["doctor", "--json"]):
        done = subprocess.run([sys.executable, "-m", "hotfix", *command], capture_output=True, text=True,
                              env=environment, timeout=300, cwd=tmp_path)  # fmt: skip
        assert "Traceback" not in done.stderr, done.stderr
        assert "modules must be a tuple of strings" in done.stdout + done.stderr, (command, done.stdout, done.stderr)
    enabled = subprocess.run(
        [sys.executable, "-c", "import hotfix; hotfix.enable(); print(len(hotfix.status().patches))"],
        capture_output=True, text=True, env=environment, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert enabled.returncode == 0 and int(enabled.stdout) > 50, enabled.stderr


def test_strict_mode_raises_on_a_malformed_pack_and_stays_off(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()
    register(dataclasses.replace(code_patch("bad-one", _good), modules="fakelib.core"))
    with pytest.raises(hotfix.ConfigurationError, match=r"installed patch packs: .*modules must be a tuple"):
        hotfix.enable(strict=True)
    assert not hotfix.status().enabled


def test_a_strict_enable_that_raises_leaves_hotfix_off_and_nothing_applied(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib()
    import fakelib.core  # imported before enable(): applied from inside enable()

    def broken(module: Any, shims: hotfix.Shims) -> None:
        raise RuntimeError("broken on purpose")

    register(code_patch("a-good-one", _good), code_patch("z-broken", broken))
    with pytest.raises(hotfix.PatchFailedError, match="z-broken"):
        hotfix.enable(strict=True)
    assert not hotfix.status().enabled
    assert not hasattr(fakelib.core, "GOOD")  # the patch applied before the failure is reverted too
    assert RUNTIME.finder not in sys.meta_path


def test_a_strict_activation_that_fails_stops_the_program_with_exit_code_1() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update({"HOTFIX_ENABLE": "1", "HOTFIX_STRICT": "1", "HOTFIX_PATCHES": "no-such-patch"})
    done = subprocess.run([sys.executable, "-c", "print('ran')"], capture_output=True, text=True, env=environment)
    if "hotfix: not enabled" not in done.stderr:
        pytest.skip("hotfix.pth is not installed in this environment (an editable install without it)")
    assert done.returncode == 1 and "ran" not in done.stdout
    assert "HOTFIX_PATCHES: 'no-such-patch' names no patch" in done.stderr and "Traceback" not in done.stderr
    environment.pop("HOTFIX_STRICT")
    relaxed = subprocess.run([sys.executable, "-c", "print('ran')"], capture_output=True, text=True, env=environment)
    assert relaxed.returncode == 0 and "ran" in relaxed.stdout


def test_a_patch_with_no_range_applies_everywhere(fakelib: Callable[..., Path], register: Callable[..., Any]) -> None:
    fakelib()
    register(dataclasses.replace(code_patch("everywhere", _good), affected=SpecifierSet()))
    hotfix.enable()
    import fakelib.core

    assert fakelib.core.GOOD is True


def _installed_pack(site: Path, name: str = "cwd_pack") -> None:
    """A pack, installed (a dist-info with the entry point) in *site*, that says when its code runs."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(
        "import hotfix, sys\nprint('PACK CODE RAN', file=sys.stderr)\n"
        "@hotfix.hookimpl\ndef hotfix_patches():\n    return []\n",
        encoding="utf-8",
    )
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[hotfix.patches]\n{name} = {name}\n", encoding="utf-8")


def test_at_start_up_no_pack_is_loaded_from_the_working_directory(tmp_path: Path) -> None:
    _installed_pack(tmp_path)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment.update({"HOTFIX_ENABLE": "1", "PYTHONPATH": "."})  # the working directory is on sys.path
    code = "import hotfix; print([e for e in hotfix.status().errors if 'cwd_pack' in e])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    if "[" not in done.stdout or not hotfix_pth_installed(environment):
        pytest.skip("hotfix.pth is not installed in this environment")
    assert done.returncode == 0, done.stderr
    assert "PACK CODE RAN" not in done.stderr
    assert "not loaded at start-up from the working directory" in done.stdout
    # Asked for explicitly (hotfix.enable() in the program), the same pack loads, as an import from there would
    # (when the registry loads: status() here, or the first import of a watched package).
    environment.pop("HOTFIX_ENABLE")
    code = "import hotfix; hotfix.enable(); hotfix.status()"
    explicit = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                              cwd=tmp_path, timeout=300)  # fmt: skip
    assert "PACK CODE RAN" in explicit.stderr


def hotfix_pth_installed(environment: dict[str, str]) -> bool:
    probe = {**environment, "HOTFIX_ENABLE": "1"}
    done = subprocess.run([sys.executable, "-c", "import sys; print('hotfix' in sys.modules)"], capture_output=True,
                          text=True, env=probe, timeout=300)  # fmt: skip
    return done.stdout.strip() == "True"


def test_doctor_lists_every_installed_pack_and_where_it_comes_from(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _installed_pack(site, "listed_pack")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-m", "hotfix", "doctor"], capture_output=True, text=True,
                          env=environment, timeout=300, cwd=tmp_path)  # fmt: skip
    assert f"listed_pack = listed_pack (listed_pack 1.0 in {site.resolve()}): loaded" in done.stdout, done.stdout
