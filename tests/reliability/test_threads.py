"""Guarantee: threads and fork never leave hotfix half done, deadlocked, or breaking an import.

* ``enable()`` while another thread is importing a watched module waits for
  that import and then patches the finished module; it never probes the
  half-built one (which used to mark the patch failed for good).
* ``disable()`` while another thread imports a module a patch provides never
  makes that import fail (importlib re-reads ``sys.modules`` at its end).
* ``disable()`` while a legacy model is in ``generate()`` lets that call
  finish: the mixin a patch gave the model's class stays until it returns.
* A fork while another thread holds hotfix's lock gives a child in which
  hotfix works (the lock is taken around the fork).

Each test has a watchdog: a hang fails it instead of hanging the suite.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import code_patch

import hotfix
from hotfix._runtime import RUNTIME

SLOW = """
import time

FIRST = 1
time.sleep(0.5)  # another thread calls hotfix.enable() meanwhile
LAST = 2
"""


def test_enable_during_another_threads_import_patches_the_finished_module(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    fakelib("2.0.0", extra={"fakelib/slow.py": SLOW})

    def probe(module: Any) -> tuple[bool, str]:
        return module.LAST == 2, "read LAST"  # an AttributeError on the half-built module

    def apply(module: Any, shims: hotfix.Shims) -> None:
        shims.set(module, "PATCHED", True)

    register(code_patch("slow-patch", apply, probe=probe, modules=("fakelib.slow",)))
    imported: list[Any] = []
    thread = threading.Thread(target=lambda: imported.append(importlib.import_module("fakelib.slow")), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while "fakelib.slow" not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.005)
    assert "fakelib.slow" in sys.modules, "the import never started"
    hotfix.enable()
    thread.join(timeout=30)
    assert not thread.is_alive(), "deadlock"
    state = hotfix.status()["slow-patch"]
    assert state.state == "applied", (state.state, state.reason, state.error)
    assert imported[0].PATCHED is True


def test_disable_while_a_provided_module_is_imported_never_fails_that_import(
    fakelib: Callable[..., Path], register: Callable[..., Any]
) -> None:
    from packaging.specifiers import SpecifierSet

    fakelib("2.0.0", extra={"fakelib/target.py": "X = 1\n"})
    import types

    def factory() -> types.ModuleType:
        module = types.ModuleType("fakelib.gone")
        module.X = 1  # type: ignore[attr-defined]
        return module

    def apply(module: Any, shims: hotfix.Shims) -> None:
        shims.provide_module("fakelib.gone", factory)

    register(hotfix.Patch(
        id="provides-gone", summary="s", distribution="fakelib", affected=SpecifierSet(">=1"),
        probe=lambda m: (True, "x"), apply=apply, provides=("fakelib.gone",),
    ))  # fmt: skip
    errors: list[BaseException] = []
    stop = threading.Event()

    imports = [0]

    def importer() -> None:
        while not stop.is_set():
            # A pause between imports: a thread importing without one starves the GIL on 3.10, and the
            # first enable() (which reads the registry) took seconds; imports still land mid-enable().
            time.sleep(0.0005)
            imports[0] += 1
            sys.modules.pop("fakelib.gone", None)
            try:
                importlib.import_module("fakelib.gone")
            except ModuleNotFoundError:
                pass  # hotfix was off at that moment: the module does not exist
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
                return

    thread = threading.Thread(target=importer, daemon=True)
    thread.start()
    rounds, budget = 0, time.monotonic() + 5  # a time budget all the same, for slow machines
    try:
        while rounds < 1000 and time.monotonic() < budget and not errors:
            # Only this patch: with transformers imported earlier in the session, every enable() would
            # apply the bundled patches to it again (a second each), which is not what this test races.
            hotfix.enable(patches=["provides-gone"])
            hotfix.disable()
            rounds += 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "deadlock"
    assert errors == []
    assert imports[0] >= 100, f"only {imports[0]} imports during the rounds: the race was hardly tried"
    assert rounds >= 100, f"only {rounds} enable/disable rounds in the time budget: the race was hardly tried"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_fork_while_another_thread_holds_the_lock_gives_a_working_child() -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with RUNTIME.lock:
            holding.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert holding.wait(timeout=10)
    threading.Timer(0.3, release.set).start()  # the fork waits for the lock, then goes on
    pid = os.fork()
    if pid == 0:  # the child: hotfix must answer, not hang on a lock copied held
        try:
            hotfix.status()
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            os._exit(1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hangs on hotfix's lock")
    thread.join(timeout=30)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_undo_of_a_provided_module_leaves_one_that_is_being_imported() -> None:
    # The moment the stress test above aims at, made deterministic: importlib has put the module in
    # sys.modules and not finished (spec._initializing); deleting it then made that import fail with KeyError.
    import importlib.util
    import types

    from hotfix._importer import Finder
    from hotfix._shims import Shims

    def factory() -> types.ModuleType:
        return types.ModuleType("fakelib_half")

    finder = Finder(lambda module: None, lambda name: None)
    shims = Shims("test", finder)
    shims.provide_module("fakelib_half", factory)
    module = factory()
    module.__hotfix_provided__ = factory  # type: ignore[attr-defined]
    module.__spec__ = importlib.util.spec_from_loader("fakelib_half", loader=None)
    module.__spec__._initializing = True  # type: ignore[union-attr]
    sys.modules["fakelib_half"] = module
    try:
        warnings = shims.revert()
        assert sys.modules["fakelib_half"] is module
        assert warnings == ["module fakelib_half is being imported by another thread; it stays in sys.modules"]
    finally:
        sys.modules.pop("fakelib_half", None)


@pytest.mark.parametrize(
    "then", ["", "enable", "rebase"], ids=["disable", "disable-then-enable", "disable-then-rebase"]
)
def test_disable_while_a_legacy_model_generates_lets_that_generate_finish(
    then: str, caplog: pytest.LogCaptureFixture
) -> None:
    # disable() removed GenerationMixin from the bases of a legacy class (g7) while another thread was in
    # its generate(): the next mixin method that generate() called raised AttributeError mid-call.
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from scenario import LEGACY_GENERATIVE_BASE, legacy_module
    from transformers import LogitsProcessor, LogitsProcessorList
    from transformers.generation import GenerationMixin

    hotfix.enable()
    importlib.import_module("transformers.modeling_utils")
    if hotfix.status()["g7-generation-mixin"].state != "applied":
        pytest.skip("g7-generation-mixin is off on this version: PreTrainedModel still inherits GenerationMixin")
    namespace = legacy_module("legacy_mix_disabled", LEGACY_GENERATIVE_BASE)
    cls = namespace["MixForCausalLM"]
    torch.manual_seed(0)
    model = cls(namespace["MixConfig"]()).eval()
    prompt = torch.tensor([[1, 2, 3]])
    reference = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0).tolist()
    inside, release = threading.Event(), threading.Event()

    class Pause(LogitsProcessor):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if input_ids.shape[1] == 5:  # two tokens generated, four to go
                inside.set()
                release.wait(timeout=30)
            return scores

    results: list[Any] = []

    def generate() -> None:
        try:
            pause = LogitsProcessorList([Pause()])
            out = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0, logits_processor=pause)
            results.append(out.tolist())
        except BaseException as error:  # noqa: BLE001 - reported below
            results.append(error)

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    assert inside.wait(timeout=30), "generate() never reached the pause"
    extended = next(c for c in cls.__mro__ if GenerationMixin in c.__bases__)  # the class g7 extended
    hotfix.disable()
    assert issubclass(cls, GenerationMixin), "the bases changed under a running generate()"
    if then == "enable":  # enabled again before that generate() returns: the class keeps the mixin, for good
        hotfix.enable()
    if then == "rebase":  # someone else changes the bases meanwhile: the deferred undo leaves them, and says so

        class Extra:
            pass

        extended.__bases__ = (*extended.__bases__, Extra)
    release.set()
    thread.join(timeout=30)
    assert not thread.is_alive(), "deadlock"
    assert results == [reference]
    if then == "rebase":
        assert issubclass(cls, GenerationMixin) and issubclass(cls, Extra)
        logged = [r.getMessage() for r in caplog.records if r.name == "hotfix" and r.levelno >= logging.WARNING]
        assert any("patch.revert_incomplete" in m and "g7-generation-mixin" in m for m in logged), logged
        assert any("__bases__ changed after hotfix extended it" in m for m in logged), logged
        return
    if then == "enable":
        assert issubclass(cls, GenerationMixin) and model.generate(prompt, max_new_tokens=6).tolist() == reference
        hotfix.disable()
    # The last generate() to return gives the class its own bases back, as disable() promised.
    assert not issubclass(cls, GenerationMixin)
    assert not hasattr(model, "generate")
