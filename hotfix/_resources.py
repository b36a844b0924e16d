"""Where the bundled registry and patch modules are, installed or in a checkout.

In the wheel, ``registry.toml`` is ``hotfix/registry.toml`` and the patch
modules are the package ``hotfix._patches``; both are read through
importlib resources. In a source checkout (editable install, tests) they sit
at the repository root as ``registry.toml`` and ``patches/``; the package
``hotfix._patches`` is then made from that folder, so that patch code is
always imported under one name and a top-level ``patches`` is never needed.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import resources
from pathlib import Path

from ._errors import HotfixError

__all__ = ["ensure_patches_package", "registry_path", "registry_text"]

_CHECKOUT = Path(__file__).resolve().parent.parent


class MissingPatchesError(HotfixError, ImportError):
    """hotfix is installed without its bundled patch modules (a broken wheel or checkout)."""


def registry_path() -> str:
    """A readable name of the bundled registry file, for error messages."""
    packaged = resources.files("hotfix").joinpath("registry.toml")
    if packaged.is_file():
        return str(packaged)
    return str(_CHECKOUT / "registry.toml")


def registry_text() -> str:
    """The text of the bundled ``registry.toml``."""
    packaged = resources.files("hotfix").joinpath("registry.toml")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (_CHECKOUT / "registry.toml").read_text(encoding="utf-8")


def ensure_patches_package() -> None:
    """Make ``hotfix._patches`` importable, from the wheel or from the checkout."""
    name = "hotfix._patches"
    if name in sys.modules:
        return
    if importlib.util.find_spec(name) is not None:
        return
    folder = _CHECKOUT / "patches"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None or not (folder / "__init__.py").is_file():
        raise MissingPatchesError(f"the bundled patches are missing: neither hotfix._patches nor {folder} exists")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
