"""Activation at interpreter start, from ``hotfix.pth``.

The ``.pth`` line only checks ``HOTFIX_ENABLE`` and imports this module when
it is set, so a process without the variable pays one dictionary lookup.
Nothing here may stop the interpreter from starting: errors are reported on
stderr (and raised only in strict mode).
"""

from __future__ import annotations

import sys

from . import _env


def activate() -> None:
    if not _env.enabled():
        return
    try:
        from . import enable

        enable()
    except Exception as error:
        if _env.strict():
            raise
        print(f"hotfix: not enabled: {type(error).__name__}: {error}", file=sys.stderr)
