"""Version gates read from distribution metadata, without importing the target."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = ["clear_cache", "describe", "gate", "installed_version", "installed_versions", "normalize"]


_FOUND: dict[str, str] = {}


def installed_version(distribution: str) -> str | None:
    """The installed version string of *distribution*, or ``None`` if absent.

    A found version is cached: metadata does not change while a process runs
    and the gate is read for every patch. An absent one is not: the
    distribution may become visible later (a ``.pth`` processed after
    hotfix's own, a script that extends ``sys.path``).
    """
    version = _FOUND.get(distribution)
    if version is None:
        try:
            version = _FOUND[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None
    return version


def installed_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """:func:`installed_version` of each of *distributions*, each looked up once.

    An absent distribution costs a search of every ``sys.path`` entry's metadata; ``enable()`` reads the
    gate of every patch, and a hundred patches of an absent library would search a hundred times.
    """
    return {name: installed_version(name) for name in dict.fromkeys(distributions)}


def clear_cache() -> None:
    """Forget the versions found (tests that install distributions)."""
    _FOUND.clear()


def normalize(version: str) -> Version | None:
    """The version to test against a patch range.

    Dev builds and pre-releases of a release already carry that release's
    changes (``5.0.0.dev0`` installed from a source checkout has the 5.0
    removals), so the release part alone is compared; local labels
    (``+cu121``) are dropped and post releases (``4.57.1.post1``) compare as
    their release. ``None`` for a string that is not PEP 440.
    """
    try:
        return Version(Version(version).base_version)
    except InvalidVersion:
        return None


def describe(specifier: SpecifierSet | str) -> str:
    """A version range in words: an empty specifier (the framework's own patches) is every version."""
    return str(specifier) or "every version"


def gate(specifier: SpecifierSet, version: str | None) -> tuple[bool, str]:
    """Whether *version* is inside *specifier*, and why, in words."""
    if version is None:
        return False, "not installed"
    parsed = normalize(version)
    if parsed is None:
        return False, f"version {version!r} is not PEP 440"
    if specifier.contains(parsed, prereleases=True):
        return True, f"{version} is in {describe(specifier)}"
    return False, f"{version} is outside {specifier}"
