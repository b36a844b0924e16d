"""The built wheel in a fresh virtual environment: CLI, .pth activation, plugins, spawn workers.

Slow (builds two wheels and a venv): about half a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _run(
    command: list[str], env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HOTFIX_", "PYTEST_"))}
    environment.update(env or {})
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600, cwd=cwd)
    if check and completed.returncode != 0:
        raise AssertionError(f"{command} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    for source in (ROOT, ROOT / "tests" / "plugin_example"):
        _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)])
    return {
        "hotfix": next(out.glob("hotfix_ml-*.whl")),
        "example": next(out.glob("hotfix_example_pack-*.whl")),
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Iterator[Path]:
    """A fresh venv with only the wheels (and their dependencies) installed."""
    root = tmp_path_factory.mktemp("venv") / "v"
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(wheels["hotfix"]), str(wheels["example"])])
    yield root


def test_the_wheel_ships_registry_patches_and_pth_but_no_top_level_patches(wheels: dict[str, Path]) -> None:
    names = zipfile.ZipFile(wheels["hotfix"]).namelist()
    assert "hotfix/registry.toml" in names and "hotfix.pth" in names and "hotfix/py.typed" in names
    assert "hotfix/_patches/__init__.py" in names and "hotfix/_patches/caches.py" in names
    assert not any(name.startswith("patches/") for name in names)


def test_hotfix_list_in_a_fresh_venv(env: Path) -> None:
    listing = _run([str(env / "bin" / "hotfix"), "list"]).stdout
    assert "m3-no-init-weights" in listing and "transformers not installed" in listing
    assert "example-moved-thing" in listing  # the third-party pack, through its entry point


def test_pth_activation_only_with_the_variable(env: Path) -> None:
    code = "import sys; print('hotfix' in sys.modules)"
    assert _run([str(env / "bin" / "python"), "-c", code]).stdout.strip() == "False"
    assert _run([str(env / "bin" / "python"), "-c", code], {"HOTFIX_ENABLE": "1"}).stdout.strip() == "True"


def test_plugin_patch_applied_and_disabled_by_env(env: Path) -> None:
    python = str(env / "bin" / "python")
    code = "from hotfix_example_target.old import thing; print(thing())"
    without = _run([python, "-c", code], check=False)
    assert "cannot import name 'thing'" in without.stderr
    assert _run([python, "-c", code], {"HOTFIX_ENABLE": "1"}).stdout.strip() == "thing"
    denied = _run([python, "-c", code], {"HOTFIX_ENABLE": "1", "HOTFIX_PATCHES": "-example-*"}, check=False)
    assert "cannot import name 'thing'" in denied.stderr
    status = "import hotfix; print(hotfix.status()['example-moved-thing'].state)"
    assert _run([python, "-c", status], {"HOTFIX_ENABLE": "1", "HOTFIX_PATCHES": "-example-*"}).stdout.strip() == (
        "skipped"
    )


def _with_dev_libraries(env: Path) -> None:
    """Let the fresh venv see transformers and torch from the development environment, after its own packages."""
    site = next((env / "lib").glob("python*/site-packages"))
    (site / "zz_dev_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")


def test_env_activation_repairs_transformers(env: Path) -> None:
    pytest.importorskip("transformers")
    _with_dev_libraries(env)
    python = str(env / "bin" / "python")
    code = "from transformers.modeling_utils import no_init_weights; import hotfix; print(hotfix.__file__)"
    enabled = _run([python, "-c", code], {"HOTFIX_ENABLE": "1"}, check=False)
    plain = _run([python, "-c", code], check=False)
    from hotfix._versions import installed_version

    if (installed_version("transformers") or "0").startswith("5"):
        assert enabled.returncode == 0, enabled.stderr
        assert str(env) in enabled.stdout  # hotfix came from the wheel, not the checkout
        assert "cannot import name 'no_init_weights'" in plain.stderr
    run = _run([str(env / "bin" / "hotfix"), "run", "--", python, "-c", code], check=False)
    assert run.returncode == 0, run.stderr


def test_spawn_workers_inherit_activation(env: Path, tmp_path: Path) -> None:
    script = tmp_path / "spawn_check.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing as mp
            import sys

            def child(queue):
                import hotfix
                from hotfix_example_target.old import thing
                queue.put((hotfix.is_enabled(), thing()))

            if __name__ == "__main__":
                import hotfix
                hotfix.enable()
                context = mp.get_context("spawn")
                queue = context.Queue()
                process = context.Process(target=child, args=(queue,))
                process.start()
                print(queue.get(timeout=120))
                process.join()
                sys.exit(process.exitcode)
            """
        ),
        encoding="utf-8",
    )
    assert _run([str(env / "bin" / "python"), str(script)]).stdout.strip() == "(True, 'thing')"


def test_hotfix_new_output_installs_and_passes_its_own_tests(env: Path, tmp_path: Path) -> None:
    # Last in this module: the pack installed here stays in the shared venv.
    hotfix = str(env / "bin" / "hotfix")
    python = str(env / "bin" / "python")
    _run([hotfix, "new", "acme-fixes", "--directory", str(tmp_path)])
    pack = tmp_path / "acme-fixes"
    _run([python, "-m", "pip", "install", "-q", "-e", f"{pack}[test]"])
    tests = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], check=False, cwd=pack)
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout + tests.stderr
    listed = _run([hotfix, "list"]).stdout
    assert "acme-fixes-moved-helper" in listed and "acme-fixes-forward-state" in listed
