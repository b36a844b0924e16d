"""Shared fixtures: isolation of hotfix state, and fake target libraries.

Every test starts with hotfix disabled, no HOTFIX_* variables, and ends with
hotfix disabled again, its registry reloaded, sys.meta_path as it was and the
fake libraries it imported removed from sys.modules.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hotfix
from hotfix.testing import isolated_runtime, write_library

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))

FAKE_PREFIXES = ("fakelib", "fakeremote", "hotfix_test_")


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    modules_before = set(sys.modules)
    path_before = list(sys.path)
    with isolated_runtime():
        yield
    for name in set(sys.modules) - modules_before:
        if name.startswith(FAKE_PREFIXES):
            del sys.modules[name]
    sys.path[:] = path_before
    importlib.invalidate_caches()


FAKELIB = {
    "fakelib/__init__.py": "",
    "fakelib/new.py": """
        def moved():
            return "moved"
        """,
    "fakelib/core.py": """
        class Base:
            def method(self, a, b=1):
                return ("method", a, b)

            @classmethod
            def build(cls, x):
                return (cls.__name__, x)

            @property
            def size(self):
                return 3

        class Child(Base):
            pass

        def function(x, *, new_name=0):
            return x + new_name

        def compute():
            return [1, 2]
        """,
    "fakelib/replacement.py": """
        X = 1
        Y = 2
        _private = 3
        """,
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def write_distribution(root: Path, name: str, version: str) -> None:
    write_library(root, name, version, {})


@pytest.fixture
def fakelib(tmp_path: Path) -> Callable[..., Path]:
    """Write the fake library ``fakelib`` (distribution version given) and put it on sys.path."""

    def make(version: str = "2.0.0", extra: dict[str, str] | None = None) -> Path:
        root = write_library(tmp_path / "site", "fakelib", version, {**FAKELIB, **(extra or {})})
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        return root

    return make


def always(module: object) -> tuple[bool, str]:
    return True, "always"


def code_patch(
    patch_id: str,
    apply: Callable[..., None],
    probe: Callable[..., tuple[bool, str]] = always,
    modules: tuple[str, ...] = ("fakelib.core",),
    prefixes: tuple[str, ...] = (),
) -> hotfix.Patch:
    """A code patch on the fake library, for tests that need behaviour rather than a declaration."""
    from packaging.specifiers import SpecifierSet

    return hotfix.Patch(
        id=patch_id, summary=patch_id, distribution="fakelib", affected=SpecifierSet(">=1"),
        probe=probe, apply=apply, modules=modules, prefixes=prefixes,
    )  # fmt: skip


class PatchPack:
    """A local plugin that contributes the given declarations."""

    def __init__(self, *patches: object) -> None:
        self.patches = list(patches)

    @hotfix.hookimpl
    def hotfix_patches(self) -> list[object]:
        return self.patches


@pytest.fixture
def register() -> Callable[..., PatchPack]:
    def add(*patches: object) -> PatchPack:
        pack = PatchPack(*patches)
        hotfix.register_plugin(pack, name=f"test-pack-{id(pack)}")
        return pack

    return add
