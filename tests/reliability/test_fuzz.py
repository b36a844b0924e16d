"""Guarantee, fuzzed: no input makes hotfix raise anything but a ``HotfixError`` that names its source, and no
input breaks an import.

hypothesis feeds hotfix what third parties and users control: the fields of
a ``Patch`` that a pack contributes, the selection (``enable(patches=...)``
and ``HOTFIX_PATCHES``), and every ``HOTFIX_*`` variable, at ``enable()`` and
at interpreter start-up through ``hotfix.pth``. For each input, in lenient
and in strict mode:

* ``enable()`` returns, or (strict mode only) raises a ``HotfixError`` whose
  message names where the problem is (the pack and its entry, or the
  setting);
* the fake library imports and works afterwards, and ``status()`` answers;
* a process started with ``HOTFIX_ENABLE=1`` runs its program (or, strict,
  exits with code 1 and says why).

The registry file itself (``registry.toml`` and its entries) is fuzzed in
``tests/test_registry.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PatchPack, code_patch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hotfix
from hotfix._runtime import RUNTIME
from hotfix.testing import isolated_runtime

ROOT = Path(__file__).resolve().parents[2]
FIELDS = sorted(field.name for field in dataclasses.fields(hotfix.Patch))
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# What can be put in os.environ: no NUL, no lone surrogates.
_env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
_names = st.sampled_from(["fakelib.core", "fakelib", "fakelib.new", "fakelib.gone", "fakelib core", "", ".x", "m:t"])
_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), st.binary(max_size=4),
    _names, st.sampled_from([">=1", "<0", "version five", "==2.*", "m3-no-init-weights", "code", "moved-name"]),
    st.lists(st.one_of(_names, st.text(max_size=6), st.integers()), max_size=3).map(tuple),
    st.lists(_names, max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(object()), st.just(lambda *args: None), st.just(lambda *args: (True, "x")),
)  # fmt: skip


def _mark(module: Any, shims: hotfix.Shims) -> None:
    shims.set(module, "MARKED", True)


@contextlib.contextmanager
def _fresh(strict: bool) -> Iterator[None]:
    """One example: hotfix reset, the fake library unimported, and the libraries of the bundled patches hidden.

    With transformers imported by an earlier test, every ``enable()`` would
    apply the bundled patches to it again (about a second each); hidden from
    ``sys.modules`` for the example (and put back, the same objects), they are
    only watched, and the fuzzed input meets the fake library alone.
    """
    roots = {
        name.partition(".")[0]
        for patch in RUNTIME.plugins.collected().patches
        for name in (*patch.modules, *patch.prefixes, *patch.provides)
    } - {"fakelib"}
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if name.partition(".")[0] in roots}
    try:
        with isolated_runtime():
            for name in [name for name in sys.modules if name.startswith("fakelib")]:
                del sys.modules[name]
            if strict:
                os.environ["HOTFIX_STRICT"] = "1"
            yield
    finally:
        sys.modules.update(hidden)


def _imports_work(strict: bool = False) -> None:
    """The fake library imports and works; in strict mode a patch failing on it raises, naming the patch."""
    for name in [name for name in sys.modules if name.startswith("fakelib")]:
        del sys.modules[name]
    try:
        core = importlib.import_module("fakelib.core")
    except hotfix.PatchFailedError as error:
        assert strict and str(error).startswith("patch 'fuzzed' failed on fakelib.core: "), error
        return
    assert core.function(1) == 1 and core.Base().method(2) == ("method", 2, 1)
    importlib.import_module("fakelib.new")


def _enable(strict: bool, where: tuple[str, ...], **kwargs: Any) -> None:
    """``enable()``: returns, or in strict mode raises a HotfixError naming one of *where*."""
    try:
        hotfix.enable(**kwargs)
    except hotfix.HotfixError as error:
        assert strict, f"a lenient enable() raised {error!r}"
        assert any(place in str(error) for place in where), f"{error!r} names none of {where}"
        assert not hotfix.status().enabled, "a strict enable() that raised left hotfix on"


@pytest.fixture
def fake(fakelib: Callable[..., Path]) -> None:
    fakelib()


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(FIELDS), _values, max_size=4), strict=st.booleans())
def test_a_fuzzed_patch_from_a_pack_is_either_used_or_named_and_breaks_nothing(
    fake: None, changes: dict[str, Any], strict: bool
) -> None:
    try:
        fuzzed = dataclasses.replace(code_patch("fuzzed", _mark), **changes)
    except (TypeError, ValueError):
        return  # not a Patch at all: the dataclass refused it, hotfix never sees it
    with _fresh(strict):
        hotfix.register_plugin(PatchPack(fuzzed, code_patch("steady", _mark)), name="fuzz-pack")
        _enable(strict, ("plugin 'fuzz-pack'", "patch 'fuzzed'", "fakelib"))
        _imports_work(strict)
        status = hotfix.status()
        for error in status.errors:
            if "fuzz-pack" in error:
                assert "entry " in error, error  # names the entry, not only the pack
        if status.enabled and (not strict or status["steady"].state != "pending"):  # pending: a strict failure
            assert status["steady"].state == "applied", status["steady"]  # came first and stopped the import
            assert importlib.import_module("fakelib.core").MARKED is True


_items = st.one_of(
    st.sampled_from(
        ["steady", "Steady", "stead", "-steady", "st*", "*", "-*", "m3-no-init-weights", "g7-*", "", "\x00", "\ud800x"]
    ),
    st.text(max_size=10),
)


@SETTINGS
@given(items=st.lists(_items, max_size=4), separator=st.sampled_from([",", ";", " ", ", ", "\t"]), strict=st.booleans())
def test_a_fuzzed_selection_is_applied_or_reported_and_breaks_nothing(
    fake: None, items: list[str], separator: str, strict: bool
) -> None:
    with _fresh(strict):
        hotfix.register_plugin(PatchPack(code_patch("steady", _mark)), name="fuzz-pack")
        _enable(strict, ("hotfix.enable(patches=...)",), patches=items)
        _imports_work()
        hotfix.status()
    text = separator.join(items)
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return
    with _fresh(strict):
        hotfix.register_plugin(PatchPack(code_patch("steady", _mark)), name="fuzz-pack")
        os.environ["HOTFIX_PATCHES"] = text
        _enable(strict, ("HOTFIX_PATCHES",))
        _imports_work()
        hotfix.status()


VARIABLES = {
    "HOTFIX_PATCHES": ["steady", "-steady", "nothing-like-it", "*,;"],
    "HOTFIX_STRICT": ["1", "0", "true", "yes please", ""],
    "HOTFIX_LEGACY": ["fakelib.*", "[", "**", "a,,b", "fakelib core"],
    "HOTFIX_LOG_LEVEL": ["debug", "INFO", "10", "verbose", "-5", "99999999999999999999"],
    "HOTFIX_LOG_FORMAT": ["json", "console", "xml", ""],
    "HOTFIX_CACHE_DIR": ["/nonexistent/hotfix-cache", ""],
    "HOTFIX_ENABLE": ["1", "0", "on", "maybe"],
}
_environments = st.dictionaries(
    st.sampled_from(sorted(VARIABLES)),
    st.one_of(*(st.sampled_from(values) for values in VARIABLES.values()), _env_text),
    max_size=len(VARIABLES),
)


@SETTINGS
@given(environment=_environments)
def test_fuzzed_environment_variables_at_enable_are_used_or_reported_and_break_nothing(
    fake: None, environment: dict[str, str]
) -> None:
    strict = environment.get("HOTFIX_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
    with _fresh(False):
        os.environ.update(environment)
        hotfix.register_plugin(PatchPack(code_patch("steady", _mark)), name="fuzz-pack")
        _enable(strict, tuple(environment))
        _imports_work()
        hotfix.status()


PROGRAM = "import fakelib.core; assert fakelib.core.function(1) == 1; print('ran')"
# The environments of the other Pythons have hotfix installed editable, without hotfix.pth: there the
# program first processes the repository's copy of it, as site.py does at start-up.
if not (Path(sysconfig.get_paths()["purelib"]) / "hotfix.pth").exists():
    PROGRAM = f"import site; site.addsitedir({str(ROOT)!r}); " + PROGRAM


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    environment=_environments, status_file=st.sampled_from(["", "status-{pid}.json", "/nonexistent/dir/s.json", "."])
)
def test_fuzzed_environment_variables_at_start_up_never_stop_the_program_unless_strict(
    fakelib: Callable[..., Path], tmp_path: Path, environment: dict[str, str], status_file: str
) -> None:
    site = fakelib()
    variables = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    variables.update(environment, HOTFIX_ENABLE="1", PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    if status_file:
        variables["HOTFIX_STATUS_FILE"] = status_file
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=variables, cwd=tmp_path, timeout=120
    )
    strict = environment.get("HOTFIX_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
    if done.returncode == 1 and strict:
        assert "hotfix: not enabled: " in done.stderr and "HOTFIX_STRICT is set" in done.stderr, done.stderr
        return
    assert done.returncode == 0 and done.stdout == "ran\n", (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
