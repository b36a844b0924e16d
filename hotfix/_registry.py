"""Reading and validating patch declarations: ``registry.toml`` and plugins.

Every problem is a :class:`RegistryError` naming the source (file or
plugin), the entry (its id, or its position when the id itself is bad) and
what is wrong, so that a log line is enough to fix the declaration.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, final

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ._errors import RegistryError
from ._patch import Patch, Ref
from ._shapes import BUILDERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Break", "load_toml", "patch_from_mapping", "check_patch"]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$")
_OWNER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)?$")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_BASES = rf"{_NAME}(\|{_NAME})*"
_SCAN = re.compile(
    rf"^(import:{_NAME}(\.{_NAME})*(:{_NAME})?"
    rf"|uses:{_NAME}(\.{_NAME})*"
    rf"|attr:({_NAME}\.)?{_NAME}"
    rf"|subscript:{_NAME}\[[^\]]+\]"
    rf"|keyword:{_NAME}\({_NAME}\)"
    rf"|subclass:{_BASES}"
    rf"|(override|class-list|lacks|nocall):{_BASES}\.{_NAME})$"
)
_KINDS = ("value", "function", "method", "property", "classmethod", "staticmethod")

_COMMON = {
    "id", "summary", "distribution", "affected", "shape", "links", "default", "unsafe",
    "catalog", "error", "limits", "probe", "scan", "reproducer", "fails_with",
}  # fmt: skip
_REPRODUCER = re.compile(r"^(scenario:[a-z0-9_,-]+|package:[a-z0-9_]+/(model|tokenizer|processor)|autogptq:[a-z_]+)$")
_INHERITED = ("summary", "distribution", "affected", "error")
_SHAPE_KEYS: dict[str, tuple[set[str], set[str]]] = {
    # shape: (required keys, optional keys)
    "moved-name": ({"owner", "name", "target"}, set()),
    "removed-module": ({"module", "target"}, set()),
    "restored-attribute": ({"owner", "name"}, {"kind", "via", "impl"}),
    "removed-keyword": ({"owner", "name"}, {"drop", "rename"}),
    "code": ({"apply", "probe"}, {"modules", "prefixes", "provides"}),
}


@final
@dataclass(frozen=True, slots=True)
class Break:
    """A row of the break catalog: a known bad version range, with or without a patch."""

    id: str
    summary: str
    distribution: str
    affected: SpecifierSet
    error: str = ""
    refused: str = ""
    """Why hotfix deliberately does not shim this break ("" when it does or may)."""


class _Entry:
    """Typed access to one raw entry, raising errors that name it."""

    def __init__(self, source: str, label: str, raw: Mapping[str, Any]) -> None:
        self.source, self.label, self.raw = source, label, raw

    def fail(self, problem: str) -> RegistryError:
        return RegistryError(self.source, self.label, problem)

    def string(self, key: str, *, required: bool = True, pattern: re.Pattern[str] | None = None) -> str | None:
        if key not in self.raw:
            if required:
                raise self.fail(f"missing required key {key!r}")
            return None
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key!r} must be a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(f"{key!r} is not a valid {_describe(pattern)}: {value!r}")
        return value

    def strings(self, key: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{key!r} must be a string or a list of strings, got {value!r}")
        for item in value:
            if pattern is not None and not pattern.match(item):
                raise self.fail(f"{key!r} has an invalid {_describe(pattern)}: {item!r}")
        return tuple(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key!r} must be true or false, got {value!r}")
        return value

    def specifier(self, key: str) -> SpecifierSet:
        text = self.string(key)
        assert text is not None
        try:
            specifier = SpecifierSet(text)
        except InvalidSpecifier:
            raise self.fail(f"{key!r} is not a PEP 440 version range: {text!r}") from None
        if not str(specifier):
            raise self.fail(f"{key!r} must not be empty")
        return specifier


def _describe(pattern: re.Pattern[str]) -> str:
    return {
        _ID: "id (lower-case letters, digits, '.', '_', '-')",
        _MODULE: "module name",
        _REF: "reference 'module:attribute'",
        _OWNER: "owner 'module' or 'module:Class'",
        _REPRODUCER: "reproducer ('scenario:NAME', 'package:NAME/PART' or 'autogptq:STAGE')",
        _SCAN: "scan trigger (import:, uses:, attr:, subscript:, keyword:, subclass:, override:, class-list:, "
        "lacks:, nocall:; see docs/patch-authors.md)",
    }.get(pattern, "value")


def patch_from_mapping(raw: Any, source: str, position: int) -> Patch:
    """Validate one declaration (a TOML table or a plugin's dict) and build its :class:`Patch`."""
    label = f"#{position}"
    if not isinstance(raw, Mapping):
        raise RegistryError(source, label, f"must be a table of keys, got {type(raw).__name__}")
    if isinstance(raw.get("id"), str) and raw["id"]:
        label = repr(raw["id"])
    entry = _Entry(source, label, raw)
    patch_id = entry.string("id", pattern=_ID)
    shape = entry.string("shape")
    if shape not in _SHAPE_KEYS:
        raise entry.fail(f"unknown shape {shape!r}; expected one of {', '.join(sorted(_SHAPE_KEYS))}")
    required, optional = _SHAPE_KEYS[shape]
    missing = sorted(required - raw.keys())
    if missing:
        raise entry.fail(f"shape {shape!r} needs {', '.join(map(repr, missing))}")
    unknown = sorted(set(raw) - _COMMON - required - optional)
    if unknown:
        raise entry.fail(f"unknown key(s) {', '.join(map(repr, unknown))} for shape {shape!r}")
    summary = entry.string("summary")
    distribution = entry.string("distribution")
    affected = entry.specifier("affected")
    unsafe = entry.flag("unsafe", False)
    default = entry.flag("default", not unsafe)
    if unsafe and default:
        raise entry.fail("an unsafe patch cannot be on by default; set default = false")
    common: dict[str, Any] = {
        "id": patch_id,
        "summary": summary,
        "distribution": distribution,
        "affected": affected,
        "links": entry.strings("links"),
        "default": default,
        "unsafe": unsafe,
        "shape": shape,
        "catalog": entry.strings("catalog"),
        "error": entry.string("error", required=False) or "",
        "limits": entry.string("limits", required=False) or "",
        "scan": entry.strings("scan", _SCAN),
        "reproducer": entry.string("reproducer", required=False, pattern=_REPRODUCER) or "",
        "fails_with": entry.string("fails_with", required=False) or "",
        "source": source,
    }
    probe_ref = entry.string("probe", required=shape == "code", pattern=_REF)
    if shape == "code":
        apply_ref = entry.string("apply", pattern=_REF)
        assert probe_ref is not None and apply_ref is not None
        modules = entry.strings("modules", _MODULE)
        prefixes = entry.strings("prefixes")
        provides = entry.strings("provides", _MODULE)
        for prefix in prefixes:
            if not _MODULE.match(prefix.rstrip(".")):
                raise entry.fail(f"'prefixes' has an invalid module prefix: {prefix!r}")
        if not (modules or prefixes or provides):
            raise entry.fail("a code patch needs at least one of 'modules', 'prefixes' or 'provides'")
        return Patch(
            probe=Ref(probe_ref), apply=Ref(apply_ref), modules=modules,
            prefixes=prefixes, provides=provides, details={}, **common,
        )  # fmt: skip
    details = _shape_details(entry, shape)
    probe, apply, triggers = BUILDERS[shape](details)
    if probe_ref is not None:
        probe = Ref(probe_ref)
    return Patch(
        probe=probe, apply=apply, details=details, modules=triggers.get("modules", ()),
        provides=triggers.get("provides", ()), **common,
    )  # fmt: skip


def _shape_details(entry: _Entry, shape: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    raw = entry.raw
    if shape == "removed-module":
        details["module"] = entry.string("module", pattern=_MODULE)
        details["target"] = entry.string("target", pattern=_MODULE)
        return details
    details["owner"] = entry.string("owner", pattern=_OWNER)
    details["name"] = entry.string("name", pattern=re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"))
    if shape == "moved-name":
        details["target"] = entry.string("target", pattern=_REF)
    elif shape == "restored-attribute":
        kind = entry.string("kind", required=False) or "method"
        if kind not in _KINDS:
            raise entry.fail(f"'kind' must be one of {', '.join(_KINDS)}, got {kind!r}")
        details["kind"] = kind
        via = entry.string("via", required=False)
        impl = entry.string("impl", required=False, pattern=_REF)
        if (via is None) == (impl is None):
            raise entry.fail("restored-attribute needs exactly one of 'via' (an attribute to forward to) or 'impl'")
        if via is not None and kind not in ("method", "property"):
            raise entry.fail(f"'via' works for kind 'method' or 'property', not {kind!r}; use 'impl'")
        details["via"], details["impl"] = via, impl
    elif shape == "removed-keyword":
        drop = list(entry.strings("drop"))
        rename = raw.get("rename", {})
        if not isinstance(rename, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in rename.items()
        ):
            raise entry.fail(f"'rename' must be a table of old = \"new\" keyword names, got {rename!r}")
        if not drop and not rename:
            raise entry.fail("removed-keyword needs 'drop' or 'rename'")
        details["drop"], details["rename"] = drop, dict(rename)
    return details


def break_from_mapping(raw: Any, source: str, position: int) -> Break:
    label = f"break #{position}"
    if not isinstance(raw, Mapping):
        raise RegistryError(source, label, f"must be a table of keys, got {type(raw).__name__}")
    if isinstance(raw.get("id"), str) and raw["id"]:
        label = f"break {raw['id']!r}"
    entry = _Entry(source, label, raw)
    unknown = sorted(set(raw) - {"id", "summary", "distribution", "affected", "error", "refused"})
    if unknown:
        raise entry.fail(f"unknown key(s) {', '.join(map(repr, unknown))}")
    break_id = entry.string("id", pattern=re.compile(r"^[A-Z][A-Z0-9]*$"))
    summary = entry.string("summary")
    distribution = entry.string("distribution")
    assert break_id is not None and summary is not None and distribution is not None
    return Break(
        break_id, summary, distribution, entry.specifier("affected"),
        entry.string("error", required=False) or "", entry.string("refused", required=False) or "",
    )  # fmt: skip


def load_toml(text: str, source: str) -> tuple[list[Patch], list[Break]]:
    """Parse and validate a registry file's text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(source, "(file)", f"not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"patch", "break"})
    if unknown:
        raise RegistryError(source, "(file)", f"unknown top-level key(s) {', '.join(map(repr, unknown))}")
    raw_patches, raw_breaks = data.get("patch", []), data.get("break", [])
    if not isinstance(raw_patches, list) or not isinstance(raw_breaks, list):
        raise RegistryError(source, "(file)", "'patch' and 'break' must be arrays of tables ([[patch]], [[break]])")
    breaks = [break_from_mapping(raw, source, i + 1) for i, raw in enumerate(raw_breaks)]
    known = {b.id for b in breaks}
    if len(known) != len(breaks):
        raise RegistryError(source, "(file)", "break ids must be unique")
    by_id = {b.id: b for b in breaks}
    patches = [
        patch_from_mapping(_inherit(raw, by_id, source, i + 1), source, i + 1) for i, raw in enumerate(raw_patches)
    ]
    for patch in patches:
        for catalog_id in patch.catalog:
            if catalog_id not in known:
                raise RegistryError(source, repr(patch.id), f"'catalog' names unknown break {catalog_id!r}")
            _check_narrows(patch, by_id[catalog_id], source)
    check_unique(patches)
    return patches, breaks


def _inherit(raw: Any, breaks: Mapping[str, Break], source: str, position: int) -> Any:
    """A patch entry with the facts it leaves out taken from the one break its ``catalog`` names.

    ``summary``, ``distribution``, ``affected`` and ``error`` live on the
    ``[[break]]`` row; a patch states them only to narrow them (a smaller
    range, the message of its own shape of the break).
    """
    if not isinstance(raw, Mapping):
        return raw
    catalog = raw.get("catalog")
    names = [catalog] if isinstance(catalog, str) else catalog
    if not isinstance(names, list) or len(names) != 1 or names[0] not in breaks:
        return raw
    known = breaks[names[0]]
    values = {"summary": known.summary, "distribution": known.distribution, "affected": str(known.affected),
              "error": known.error}  # fmt: skip
    merged = dict(raw)
    for key in _INHERITED:
        if key not in merged and values[key]:
            merged[key] = values[key]
    return merged


def _boundaries(*specifiers: SpecifierSet) -> list[Version]:
    """Versions at and next to every bound of the specifiers: where two ranges can differ."""
    found = {Version("0.1"), Version("999.0")}
    for specifier in specifiers:
        for item in specifier:
            text = item.version.removesuffix(".*")
            try:
                bound = Version(text)
            except InvalidVersion:
                continue
            major, minor, micro = (*bound.release, 0, 0)[:3]
            found.update({bound, Version(f"{major}.{minor}.{micro + 1}"), Version(f"{major}.{minor + 1}")})
            found.add(Version(f"{major}.{minor - 1}.99") if minor else Version(f"{max(major - 1, 0)}.99"))
            found.add(Version(f"{major}.{minor}.{micro}.post1"))
    return sorted(found)


def _check_narrows(patch: Patch, known: Break, source: str) -> None:
    """A patch's distribution is its break's, and its range lies inside the break's."""
    if patch.distribution != known.distribution:
        raise RegistryError(
            source, repr(patch.id), f"'distribution' {patch.distribution!r} differs from break {known.id}'s "
            f"{known.distribution!r}; a patch may only narrow its break",
        )  # fmt: skip
    for version in _boundaries(patch.affected, known.affected):
        if patch.affected.contains(version, prereleases=True) and not known.affected.contains(
            version, prereleases=True
        ):
            raise RegistryError(
                source, repr(patch.id), f"'affected' {patch.affected} includes {version}, outside break "
                f"{known.id}'s range {known.affected}; a patch may only narrow its break (widen the break row)",
            )  # fmt: skip


def check_patch(obj: Any, source: str, position: int) -> Patch:
    """Accept a plugin's contribution: a :class:`Patch` or a declaration mapping."""
    if isinstance(obj, Patch):
        patch = _checked_fields(obj, source, position)
        if not callable(patch.probe) or not callable(patch.apply):
            raise RegistryError(source, repr(patch.id), "probe and apply must be callable")
        if not (patch.modules or patch.prefixes or patch.provides):
            raise RegistryError(source, repr(patch.id), "needs at least one of modules, prefixes or provides")
        if patch.unsafe and patch.default:
            raise RegistryError(source, repr(patch.id), "an unsafe patch cannot be on by default")
        return patch
    return patch_from_mapping(obj, source, position)


_TEXT_FIELDS = ("summary", "distribution", "shape", "error", "limits", "reproducer", "fails_with", "source")
_NAME_FIELDS = ("modules", "prefixes", "provides", "scan", "links", "catalog")


def _checked_fields(patch: Patch, source: str, position: int) -> Patch:
    """Every field of a plugin's ``Patch`` has its declared type (a string range becomes a SpecifierSet).

    A pack built against another hotfix, or by hand, must fail here with a
    message naming it, never later inside ``enable()`` with an AttributeError.
    """
    if not isinstance(patch.id, str) or not _ID.match(patch.id):
        raise RegistryError(source, f"#{position} (id={patch.id!r})", f"id is not a valid {_describe(_ID)}")
    entry = repr(patch.id)
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(patch, name), str):
            raise RegistryError(source, entry, f"{name} must be a string, not {type(getattr(patch, name)).__name__}")
    if not patch.distribution:
        raise RegistryError(source, entry, "distribution must name the distribution whose version gates the patch")
    for name in _NAME_FIELDS:
        value = getattr(patch, name)
        if isinstance(value, str) or not isinstance(value, (tuple, list)):
            raise RegistryError(source, entry, f"{name} must be a tuple of strings, not {type(value).__name__}")
        if not all(isinstance(item, str) and item for item in value):
            raise RegistryError(source, entry, f"{name} must hold non-empty strings: {value!r}")
        if isinstance(value, list):
            changes[name] = tuple(value)
    for name in ("modules", "provides"):
        bad = [item for item in getattr(patch, name) if not _MODULE.match(item)]
        if bad:
            raise RegistryError(source, entry, f"{name}: {bad[0]!r} is not a module name")
    if isinstance(patch.affected, str):
        try:
            changes["affected"] = SpecifierSet(patch.affected)
        except InvalidSpecifier as error:
            raise RegistryError(source, entry, f"affected: {error}") from error
    elif not isinstance(patch.affected, SpecifierSet):
        raise RegistryError(source, entry, f"affected must be a SpecifierSet, not {type(patch.affected).__name__}")
    for name in ("default", "unsafe"):
        if not isinstance(getattr(patch, name), bool):
            raise RegistryError(source, entry, f"{name} must be True or False, not {getattr(patch, name)!r}")
    if not isinstance(patch.details, dict):
        raise RegistryError(source, entry, f"details must be a dict, not {type(patch.details).__name__}")
    checked: Patch = dataclasses.replace(patch, **changes) if changes else patch
    return checked


def check_unique(patches: Iterable[Patch]) -> None:
    seen: dict[str, Patch] = {}
    for patch in patches:
        if patch.id in seen:
            first = seen[patch.id]
            raise RegistryError(patch.source, repr(patch.id), f"id already declared by {first.source}")
        seen[patch.id] = patch
