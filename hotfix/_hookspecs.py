"""The extension points of hotfix: one pluggy hook each."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from ._patch import Patch

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "hotfix"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def hotfix_patches() -> Iterable[Patch | Mapping[str, Any]]:
    """Contribute patches: :class:`hotfix.Patch` objects or declarations shaped like a registry.toml entry."""
    raise NotImplementedError


@hookspec
def hotfix_patch_applied(patch: Patch, module: types.ModuleType, seconds: float) -> None:
    """A patch installed its shims on *module*."""


@hookspec
def hotfix_patch_skipped(patch: Patch, reason: str) -> None:
    """A patch was not installed: out of its version range, deselected, or its probe found the API working."""


@hookspec
def hotfix_patch_failed(patch: Patch, error: BaseException) -> None:
    """A patch raised while it was applied; its partial changes were undone."""


@hookspec
def hotfix_patch_reverted(patch: Patch) -> None:
    """A patch's shims were removed by :func:`hotfix.disable`."""
