"""``hotfix new NAME``: write a patch pack that installs, registers itself and passes its own tests.

The pack repairs two breaks of a stand-in library its tests write
(``<package>_examplelib``: in 2.0 ``helper`` moved and ``Model.forward``
takes ``state=`` where 1.x passed ``cache``), one with a data patch and one
with a code patch, so that every piece a real pack needs is there and works
before the author edits anything: the entry point, a declaration of each
kind, a code patch on :mod:`hotfix.authoring`, and tests that run the
three-way check of :mod:`hotfix.testing`.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from ._errors import ConfigurationError

__all__ = ["write_pack"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$|^[A-Za-z]$")

_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "$dist"
version = "0.1.0"
description = "hotfix patches for $lib (written by hotfix new; replace the examples with your breaks)."
requires-python = ">=3.10"
dependencies = ["hotfix-ml>=$hotfix_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points."hotfix.patches"]
$package = "$package"

[tool.hatch.build.targets.wheel]
packages = ["$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_INIT = '''\
"""$dist: hotfix patches, registered through the ``hotfix.patches`` entry point.

Each declaration takes the keys of a ``[[patch]]`` entry of hotfix's
registry (docs/patch-authors.md of hotfix). ``distribution`` and
``affected`` gate the patch on the installed version of the library it
repairs; ``error`` is what users saw, and what the tests check.
"""

from __future__ import annotations

from typing import Any

import hotfix

LIBRARY = "$lib"

PATCHES: list[dict[str, Any]] = [
    {
        # A data patch: no code, one of hotfix's shapes.
        "id": "$prefix-moved-helper",
        "shape": "moved-name",
        "summary": f"{LIBRARY} 2.0 moved helper from {LIBRARY}.utils to {LIBRARY}.helpers",
        "distribution": LIBRARY,
        "affected": ">=2.0",
        "owner": f"{LIBRARY}.utils",
        "name": "helper",
        "target": f"{LIBRARY}.helpers:helper",
        "error": f"ImportError: cannot import name 'helper' from '{LIBRARY}.utils'",
    },
    {
        # A code patch: probe and apply live in $package/shims.py.
        "id": "$prefix-forward-state",
        "shape": "code",
        "summary": f"{LIBRARY} 2.0 calls Model.forward(x, state=...); 1.x overrides take cache",
        "distribution": LIBRARY,
        "affected": ">=2.0",
        "modules": [f"{LIBRARY}.core"],
        "probe": "$package.shims:probe_forward_state",
        "apply": "$package.shims:apply_forward_state",
        "error": "forward() got an unexpected keyword argument 'state'",  # TypeError: <class>.forward() ...
        "scan": ["override:Model.forward"],
    },
]


@hotfix.hookimpl
def hotfix_patches() -> list[dict[str, Any]]:
    return PATCHES
'''

_SHIMS = '''\
"""The code patches of $dist, written on hotfix's public authoring API.

``$prefix-forward-state``: in $lib 2.0, ``Model.__call__`` passes the
running state as ``forward(x, state=...)``. Subclasses written for 1.x
override ``forward(self, x, cache=None)`` and fail with::

    TypeError: LegacyModel.forward() got an unexpected keyword argument 'state'

The shim adapts those overrides only (the library's own classes and
overrides that take ``state`` stay as they are): ``state=`` is passed on
as ``cache``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from hotfix.authoring import Finding, Shims, on_legacy_subclass, takes


def probe_forward_state(module: types.ModuleType) -> Finding:
    """Whether the break is there: runs on the live module, after it executed."""
    if takes(module.Model.forward, "state"):
        return True, "Model.forward takes state=; overrides written for 1.x take cache"
    return False, "Model.forward takes no state= (1.x)"


def _adapt(cls: type, shims: Shims) -> None:
    own = vars(cls).get("forward")
    if own is None or takes(own, "state", var_keyword=True):
        return

    def make(function: Callable[..., Any]) -> Callable[..., Any]:
        def forward(self: Any, *args: Any, state: Any = None, **kwargs: Any) -> Any:
            if state is not None:
                kwargs["cache"] = state
            return function(self, *args, **kwargs)

        return forward

    shims.replace(cls, "forward", make)


def apply_forward_state(module: types.ModuleType, shims: Shims) -> None:
    """Every change through *shims*: recorded, counted as a use, reverted by hotfix.disable()."""
    on_legacy_subclass(shims, module.Model, _adapt)
'''

_TESTS = '''\
"""The three-way check of each patch (hotfix.testing): without it the legacy code fails with the error users
saw, with it the code works and gives the 1.x result, and outside its range the patch reports itself skipped.

The library here is a stand-in written by the tests (hotfix_library); test a real pack against the real
library in each version of your matrix, with ``in_subprocess`` where it cannot be imported twice.
"""

from __future__ import annotations

from typing import Any

from hotfix.testing import check_patch, inline

from $package import PATCHES

LIBRARY = "$lib"
ERRORS = {patch["id"]: patch["error"] for patch in PATCHES}

VERSION_1 = {
    f"{LIBRARY}/__init__.py": "",
    f"{LIBRARY}/utils.py": "def helper():\\n    return 'helped'\\n",
    f"{LIBRARY}/core.py": """
        class Model:
            def forward(self, x, cache=None):
                return x if cache is None else x + cache

            def __call__(self, x, cache=None):
                return self.forward(x, cache)
        """,
}
VERSION_2 = {
    f"{LIBRARY}/__init__.py": "",
    f"{LIBRARY}/utils.py": "",
    f"{LIBRARY}/helpers.py": "def helper():\\n    return 'helped'\\n",
    f"{LIBRARY}/core.py": """
        class Model:
            def forward(self, x, *, state=None):
                return x if state is None else x + state

            def __call__(self, x, state=None):
                return self.forward(x, state=state)
        """,
}


def uses_helper() -> Any:
    """Legacy code: imports helper where 1.x had it."""
    from $lib.utils import helper

    return helper()


def overrides_forward() -> Any:
    """Legacy code: a 1.x subclass overriding forward(x, cache), called the 2.0 way."""
    from $lib.core import Model

    class LegacyModel(Model):
        def forward(self, x, cache=None):
            return 2 * x + (cache or 0)

    return LegacyModel()(1, 3)


SCENARIOS = {"$prefix-moved-helper": (uses_helper, "helped"), "$prefix-forward-state": (overrides_forward, 5)}


def test_each_patch_repairs_its_break_in_2_0(hotfix_isolated: None, hotfix_library: Any) -> None:
    hotfix_library(LIBRARY, "2.0", VERSION_2)
    for patch_id, (scenario, expected) in SCENARIOS.items():
        outcome = check_patch(patch_id, inline(scenario, fresh=[LIBRARY]), error=ERRORS[patch_id], expected=expected)
        assert outcome.status[patch_id]["state"] == "applied"


def test_each_patch_reports_itself_skipped_on_1_x(hotfix_isolated: None, hotfix_library: Any) -> None:
    hotfix_library(LIBRARY, "1.4", VERSION_1)
    for patch_id, (scenario, expected) in SCENARIOS.items():
        outcome = check_patch(patch_id, inline(scenario, fresh=[LIBRARY]), error=ERRORS[patch_id], expected=expected)
        assert outcome.status[patch_id]["state"] == "skipped"
'''

_README = """\
# $dist

hotfix patches for `$lib`, written by `hotfix new $dist`. Installed next to
hotfix, the pack registers itself through the `hotfix.patches` entry point:
`hotfix list` shows its patches and `hotfix.enable()` (or `HOTFIX_ENABLE=1`)
applies them where their break exists.

```bash
pip install -e '.[test]'   # in the environment where hotfix is installed
pytest                     # the three-way check of each patch
hotfix list                # its patches, with their state here
```

## What is here

- `$package/__init__.py`: the declarations (`PATCHES`) and the hook that
  contributes them. `$prefix-moved-helper` is a data patch (shape
  `moved-name`); `$prefix-forward-state` is a code patch.
- `$package/shims.py`: the code patch's `probe` and `apply`, on
  `hotfix.authoring` (the change set, legacy scope, `on_legacy_subclass`,
  `takes`).
- `tests/test_patches.py`: each patch's three-way check with
  `hotfix.testing` (fixtures `hotfix_isolated`, `hotfix_library`;
  `check_patch`, `inline`).

## Make it yours

The examples repair a stand-in library (`$lib`) that the tests write. For
each real break: set `distribution` and `affected` to the library and the
versions where it exists, `error` to what users saw, replace the scenario
with the smallest legacy code that fails that way, and keep one
`check_patch` per patch. See hotfix's `docs/patch-authors.md`.
"""

_GITIGNORE = "__pycache__/\n*.egg-info/\nbuild/\ndist/\n"


def _names(name: str) -> dict[str, str]:
    if not _NAME.match(name):
        raise ConfigurationError(
            "hotfix new", f"{name!r} is not a distribution name (letters, digits, '.', '_', '-'; start with a letter)"
        )
    package = re.sub(r"[.-]+", "_", name).lower()
    if keyword.iskeyword(package) or package in {"hotfix", "test", "tests"}:
        raise ConfigurationError("hotfix new", f"{name!r} would make the package {package!r}; choose another name")
    from . import __version__

    return {
        "dist": name,
        "package": package,
        "prefix": re.sub(r"[._]+", "-", name).lower(),
        "lib": f"{package}_examplelib",
        "hotfix_version": __version__,
    }


def write_pack(name: str, parent: Path) -> Path:
    """Write the pack *name* into ``parent/name``; raises ConfigurationError if the name is bad or it exists."""
    names = _names(name)
    root = parent / name
    if root.exists():
        raise ConfigurationError("hotfix new", f"{root} exists already; choose another name or remove it")
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        ".gitignore": _GITIGNORE,
        f"{names['package']}/__init__.py": _INIT,
        f"{names['package']}/shims.py": _SHIMS,
        f"{names['package']}/py.typed": "",
        "tests/test_patches.py": _TESTS,
    }
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(text).substitute(names), encoding="utf-8")
    return root
