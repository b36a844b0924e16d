"""The wheel's build hook: generates ``hotfix/_index.py``, the watch index that ``hotfix.enable()`` reads.

The index lists the top-level packages that the bundled patches watch
(from ``registry.toml`` and the framework's own patches); ``enable()``
waits for the first import of one of them before it loads the registry.
It is regenerated here, so that a wheel always ships the index of the
registry it ships; the committed copy serves source checkouts and editable
installs, and a test fails when it is stale (``scripts/gen_index.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class IndexHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        sys.path.insert(0, str(root))
        try:
            from hotfix._plugins import index_text

            text = index_text()
        except Exception as error:
            raise RuntimeError(
                f"hotfix build: cannot generate hotfix/_index.py from registry.toml: {type(error).__name__}: {error}"
            ) from error
        finally:
            sys.path.remove(str(root))
        target = root / "hotfix" / "_index.py"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            self.app.display_info("hotfix build: hotfix/_index.py was stale; regenerated from registry.toml")
