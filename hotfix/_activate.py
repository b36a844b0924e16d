"""Activation at interpreter start, from ``hotfix.pth``.

The ``.pth`` line only checks ``HOTFIX_ENABLE`` and imports this module when
it is set, so a process without the variable pays one dictionary lookup.
Nothing here may stop the interpreter from starting: errors are reported on
stderr; in strict mode the process then exits with code 1.
"""

from __future__ import annotations

import atexit
import os
import sys

from . import _env


def _write_status(path: str) -> None:
    """Write this process's status where ``HOTFIX_STATUS_FILE`` says, at exit. Never raises."""
    try:
        import json  # here: start-up without a status file needs no json

        from . import status

        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "argv": sys.argv, **status().as_dict()}, handle, indent=2)
        os.replace(temporary, path)
    except Exception as error:  # noqa: BLE001 - the process is exiting: report, never raise
        print(f"hotfix: status not written to {path}: {type(error).__name__}: {error}", file=sys.stderr)


def activate() -> None:
    if not _env.enabled():
        return
    try:
        from . import _boot, enable

        _boot.START_UP[0] = True  # packs are not loaded from the working directory at start-up
        try:
            enable()
        finally:
            _boot.START_UP[0] = False
        path = _env.status_file()
        if path:
            atexit.register(_write_status, path)
    except Exception as error:  # noqa: BLE001 - reported; strict mode stops the program below
        print(f"hotfix: not enabled: {type(error).__name__}: {error}", file=sys.stderr)
        if _env.strict():
            # site.py reports an exception from a .pth line and starts the program anyway (exit code 0), and
            # SystemExit there ends in "Fatal Python error": leave at once, with the reason said above.
            print("hotfix: HOTFIX_STRICT is set: the program does not run without hotfix", file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)
