"""What :func:`hotfix.status` returns: the state of every patch in this process."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, final

from ._errors import UnknownPatchError

__all__ = ["PatchStatus", "State", "Status"]

State = Literal["pending", "applied", "skipped", "failed", "reverted"]


@final
@dataclass(slots=True)
class PatchStatus:
    """The state of one patch in this process."""

    id: str
    summary: str
    distribution: str
    affected: str
    version: str | None
    state: State
    reason: str
    error: str | None = None
    modules: list[str] = field(default_factory=list)
    seconds: float = 0.0
    unsafe: bool = False
    default: bool = True
    source: str = ""
    used: bool = False
    """Whether code in this process used the patch's shims (see :mod:`hotfix._usage`)."""
    used_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@final
@dataclass(slots=True)
class Status:
    """What :func:`hotfix.status` returns: every known patch and the versions seen."""

    enabled: bool
    strict: bool
    patches: list[PatchStatus]
    versions: dict[str, str | None]
    errors: list[str]

    @classmethod
    def of(
        cls, enabled: bool, strict: bool, patches: list[PatchStatus], changes: dict[str, list[Any]],
        known: Iterable[Any], errors: Iterable[str],
    ) -> Status:  # fmt: skip
        """The status of *patches*, each marked with how this process used it (from its *changes*)."""
        from . import _usage
        from ._versions import installed_versions

        for patch in patches:
            patch.used_by = _usage.used_by(patch.id, changes.get(patch.id, ())) or ""
            patch.used = bool(patch.used_by)
        versions = installed_versions(p.distribution for p in known)
        return cls(enabled, strict, patches, versions, list(errors))

    def __getitem__(self, patch_id: str) -> PatchStatus:
        for patch in self.patches:
            if patch.id == patch_id:
                return patch
        raise UnknownPatchError(patch_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "strict": self.strict,
            "versions": dict(self.versions),
            "errors": list(self.errors),
            "patches": [p.as_dict() for p in self.patches],
        }

    def __str__(self) -> str:
        lines = [f"hotfix {'enabled' if self.enabled else 'disabled'}" + (" (strict)" if self.strict else "")]
        lines += [f"  {name} {version or 'not installed'}" for name, version in sorted(self.versions.items())]
        for p in self.patches:
            where = f" on {', '.join(p.modules)}" if p.modules else ""
            used = f", used: {p.used_by}" if p.used else ""
            lines.append(f"  [{p.state}] {p.id}{where}: {p.error or p.reason}{used}")
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)
