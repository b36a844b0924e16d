"""Who is calling: scope shims to the legacy code that needs them.

Some breaks cannot be repaired by restoring an API for everyone, because the
new API exists and modern code depends on its new meaning (``get_max_length``
returns ``-1`` in transformers 5.23 where 4.x returned ``None``). Such shims
give the legacy answer only when the caller is legacy code: a module loaded
as remote code (``transformers_modules.*``), a known archived library, or a
module the user declared legacy (``HOTFIX_LEGACY``, ``enable(legacy=...)``:
vendored copies of remote-code files, imported under their project's names).
Every place that recognises legacy code asks :func:`is_legacy`; who is
calling a shim is answered by :mod:`hotfix._introspect`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

from ._errors import ConfigurationError

__all__ = ["LEGACY_PREFIXES", "declare_legacy", "declared_legacy", "is_legacy"]

LEGACY_PREFIXES: tuple[str, ...] = ("transformers_modules.", "auto_gptq.")
"""Module-name prefixes of code written against old APIs."""

_GLOB = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")
_declared: tuple[str, ...] = ()
_declared_match: Callable[[str], object] | None = None


def _checked(globs: Iterable[str], source: str) -> tuple[str, ...]:
    if isinstance(globs, str):
        raise ConfigurationError(source, f"expected a list of module-name globs, got the string {globs!r}")
    checked = []
    for glob in globs:
        if not isinstance(glob, str) or not _GLOB.match(glob.strip()):
            raise ConfigurationError(
                source, f"{glob!r} is not a module-name glob (letters, digits, '_', '.', and * ? [ ] only)"
            )
        checked.append(glob.strip())
    return tuple(checked)


def declare_legacy(globs: Iterable[str], source: str = "legacy") -> tuple[str, ...]:
    """Treat the modules matching *globs* (and their submodules) as legacy code, beside the built-in prefixes.

    Replaces the previous declaration; an empty list clears it. Returns the
    globs in force. Raises :class:`hotfix.ConfigurationError` naming *source*
    for a glob that cannot name a module.
    """
    global _declared, _declared_match
    checked = _checked(globs, source)
    if checked:
        regex = "|".join(f"(?:{fnmatch.translate(g)})|(?:{fnmatch.translate(g + '.*')})" for g in checked)
        _declared_match = re.compile(regex).match
    else:
        _declared_match = None
    _declared = checked
    return checked


def declared_legacy() -> tuple[str, ...]:
    """The module-name globs declared legacy now (``HOTFIX_LEGACY`` or ``enable(legacy=...)``)."""
    return _declared


def is_legacy(module_name: str) -> bool:
    """Whether *module_name* is code written against old APIs: remote code, auto-gptq, or declared legacy."""
    if module_name.startswith(LEGACY_PREFIXES):
        return True
    match = _declared_match
    return match is not None and match(module_name) is not None
