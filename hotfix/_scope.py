"""Who is calling: scope shims to the legacy code that needs them.

Some breaks cannot be repaired by restoring an API for everyone, because the
new API exists and modern code depends on its new meaning (``get_max_length``
returns ``-1`` in transformers 5.23 where 4.x returned ``None``). Such shims
give the legacy answer only when the caller is legacy code: a module loaded
as remote code (``transformers_modules.*``) or a known archived library.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

__all__ = ["LEGACY_PREFIXES", "called_from_legacy", "called_into_from_legacy", "caller_frame"]

LEGACY_PREFIXES: tuple[str, ...] = ("transformers_modules.", "auto_gptq.")
"""Module-name prefixes of code written against old APIs."""

_SKIPPED = ("hotfix.", "hotfix._patches.", "wrapt.")


def caller_frame(depth: int = 2) -> types.FrameType | None:
    """The first frame *depth* levels up that is not hotfix's or wrapt's own code."""
    try:
        frame: types.FrameType | None = sys._getframe(depth)
    except ValueError:
        return None
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_SKIPPED):
        frame = frame.f_back
    return frame


def called_from_legacy(depth: int = 3, through: Callable[[types.FrameType], bool] | None = None) -> bool:
    """Whether the code that called the shim (``depth`` frames up from here) is legacy code.

    The default depth fits a shim that calls this directly: this function, the
    shim, then the caller. *through* names frames to look past on the way up
    (torch's ``Module.__call__`` machinery before a forward hook, a Python
    ``__getattribute__`` before a property).
    """
    frame = caller_frame(depth)
    while frame is not None and through is not None and through(frame):
        frame = frame.f_back
    return frame is not None and frame.f_globals.get("__name__", "").startswith(LEGACY_PREFIXES)


def called_into_from_legacy(library: str, depth: int = 3) -> bool:
    """Whether the code that called into *library* (a top-level package name) is legacy code.

    Walks up past hotfix's, wrapt's and *library*'s own frames: a shim on
    ``PreTrainedModel.from_pretrained`` reached through
    ``AutoModelForCausalLM.from_pretrained`` sees the code that called the
    Auto class. Costs a frame walk; for entry points, not hot paths.
    """
    frame = caller_frame(depth)
    own = (library + ".", "hotfix.", "wrapt.")
    while frame is not None:
        name: str = frame.f_globals.get("__name__", "")
        if name != library and not name.startswith(own):
            return name.startswith(LEGACY_PREFIXES)
        frame = frame.f_back
    return False
