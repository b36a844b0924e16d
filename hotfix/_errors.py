"""The exceptions hotfix raises. Every one derives from :class:`HotfixError`."""

from __future__ import annotations

__all__ = [
    "ConfigurationError", "DependencyError", "HotfixError", "PatchError", "PatchFailedError", "RegistryError",
    "UnknownPatchError",
]  # fmt: skip


class HotfixError(Exception):
    """Base class of every error hotfix raises."""


class RegistryError(HotfixError):
    """A patch declaration is malformed.

    The message names the source (a file or a plugin), the entry and the problem,
    so that one log line is enough to find and fix it.
    """

    def __init__(self, source: str, entry: str, problem: str) -> None:
        self.source = source
        self.entry = entry
        self.problem = problem
        super().__init__(f"{source}: entry {entry}: {problem}")


class ConfigurationError(HotfixError, ValueError):
    """A setting (an environment variable or an argument of :func:`hotfix.enable`) has a value hotfix cannot use.

    The message names the setting, the value and what was expected.
    """

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class PatchError(HotfixError, AttributeError):
    """A patch used the change set wrongly: an attribute to adapt that does not exist, a primitive called outside
    ``hotfix.enable()``. Raised inside the patch's ``apply``; hotfix reports it as that patch's failure and
    undoes its changes. (An ``AttributeError`` too, for code that caught what these raised before.)
    """

    def __init__(self, patch_id: str | None, problem: str) -> None:
        self.patch_id = patch_id
        self.problem = problem
        super().__init__(f"patch {patch_id!r}: {problem}" if patch_id else problem)


class UnknownPatchError(HotfixError, KeyError):
    """No patch with that id is known (``hotfix.status()[patch_id]``)."""

    def __init__(self, patch_id: str) -> None:
        self.patch_id = patch_id
        super().__init__(patch_id)

    def __str__(self) -> str:
        return f"no patch {self.patch_id!r} is known (hotfix list shows every registered patch)"


class PatchFailedError(HotfixError):
    """A patch raised while it was applied (raised only in strict mode)."""

    def __init__(self, patch_id: str, target: str, error: BaseException) -> None:
        self.patch_id = patch_id
        self.target = target
        self.error = error
        super().__init__(
            f"patch {patch_id!r} failed on {target}: {type(error).__name__}: {error}. "
            f"Its partial changes were undone. Deny it with HOTFIX_PATCHES=-{patch_id} "
            "or report the failure with the output of `hotfix doctor`."
        )


class DependencyError(HotfixError, ImportError):
    """A library hotfix itself needs (wrapt, structlog, pluggy, packaging) is missing or does not import.

    Raised by :func:`hotfix.enable` before it changes anything, so that hotfix
    is either fully on or off; at start-up (``HOTFIX_ENABLE``) it is printed
    and the program runs without hotfix.
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name_ = name
        self.problem = problem
        super().__init__(f"hotfix needs {name}: {problem} (pip install {name})")
