"""An example patch pack: contributes one declaration through the hotfix.patches entry point."""

from __future__ import annotations

from typing import Any

import hotfix


@hotfix.hookimpl
def hotfix_patches() -> list[dict[str, Any]]:
    return [
        {
            "id": "example-moved-thing",
            "shape": "moved-name",
            "summary": "hotfix_example_target.old.thing moved to hotfix_example_target.new",
            "distribution": "hotfix-example-pack",
            "affected": ">=1.0",
            "owner": "hotfix_example_target.old",
            "name": "thing",
            "target": "hotfix_example_target.new:thing",
        }
    ]
