"""hotfix._introspect: who calls a shim and what the caller does with its result, on this Python's bytecode.

Framework only (no torch): CI runs it on every Python hotfix supports, since
each CPython release compiles the same source to other instructions.
"""

from __future__ import annotations

import gc
import sys
import textwrap
import types
from collections.abc import Callable
from typing import Any

import pytest

import hotfix
from hotfix import _introspect
from hotfix.authoring import called_from_legacy, result_tested_for_none, result_unpacked


def _run(body: str, question: Callable[[types.FrameType], bool], value: Any = -1, module: str = "caller") -> bool:
    """Run *body* inside a function of a module named *module*; ``c.call()`` is a shim asking *question*."""
    answers: list[bool] = []

    class Shimmed:
        def call(self) -> Any:
            answers.append(question(sys._getframe(1)))
            return value

    namespace: dict[str, Any] = {"__name__": module}
    source = "def scenario(c):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    exec(compile(source, f"<{module}>", "exec"), namespace)
    namespace["scenario"](Shimmed())
    assert len(answers) == 1
    return answers[0]


TESTED_FOR_NONE = {
    "direct": "if c.call() is None:\n    pass",
    "stored": "m = c.call()\nif m is None:\n    pass",
    "stored-then-other-load": "m = c.call(); other = c\nif m is None:\n    pass",  # 3.13: STORE_FAST_LOAD_FAST
    "is-not": "ok = c.call() is not None",
    "equality": "m = c.call()\nif m == None:\n    pass",
    "conditional-expression": "m = c.call() if c is not None else None\nif m is None:\n    pass",
    "nested-function": "m = c.call()\ndef inner():\n    return m is None\ninner()",
    "if-else-branches": "if c:\n    m = c.call()\nelse:\n    m = None\nif m is None:\n    pass",  # ChatGLM3-style
    "pair-load": "m = c.call()\nother = 1\nx = (other, m is None)",
}
NOT_TESTED_FOR_NONE = {
    "number": "m = c.call()\nif m < 0:\n    pass",
    "arithmetic": "n = c.call() + 1",
    "returned": "return c.call()",
    "used-before-test": "m = c.call()\nprint_ = [m]\nif m is None:\n    pass",
    "copied-first": "m = c.call(); m2 = m\nif m2 is None:\n    pass",  # the first use decides
    "under-a-pair": "m = c.call()\nother = 1\nx = (m, other is None)",
}


@pytest.mark.parametrize("body", TESTED_FOR_NONE.values(), ids=TESTED_FOR_NONE.keys())
def test_result_tested_for_none(body: str) -> None:
    assert _run(body, result_tested_for_none) is True


@pytest.mark.parametrize("body", NOT_TESTED_FOR_NONE.values(), ids=NOT_TESTED_FOR_NONE.keys())
def test_result_not_tested_for_none(body: str) -> None:
    assert _run(body, result_tested_for_none) is False


def test_result_tested_for_none_at_module_level() -> None:
    answers: list[bool] = []

    class Shimmed:
        def call(self) -> None:
            answers.append(result_tested_for_none(sys._getframe(1)))

    exec(compile("m = c.call()\nif m is None:\n    pass\n", "<module>", "exec"), {"c": Shimmed()})
    assert answers == [True]


@pytest.mark.parametrize(
    ("body", "count", "expected"),
    [
        ("name, cache = c.call()", 2, True),
        ("cache = c.call()", 2, False),
        ("a, b, d = c.call()", 3, True),
        ("a, b, d = c.call()", 2, False),
        ("name, cache = c.call() if c else (None, None)", 2, True),
        ("return c.call()", 2, False),
    ],
)
def test_result_unpacked(body: str, count: int, expected: bool) -> None:
    value = (1,) * (body.split("=")[0].count(",") + 1)
    assert _run(body, lambda frame: result_unpacked(frame, count), value=value) is expected


def test_none_frames_answer_no() -> None:
    assert result_unpacked(None) is False and result_tested_for_none(None) is False


def test_answers_are_cached_per_call_site_bounded_weakly_and_cleared_on_disable() -> None:
    _introspect.clear_caches()
    namespace: dict[str, Any] = {}
    lines = "\n".join(f"    m{i} = c.call()" for i in range(_introspect.PER_CODE + 10))
    exec(compile(f"def many(c):\n{lines}\n", "<many>", "exec"), namespace)

    class Shimmed:
        def call(self) -> None:
            result_tested_for_none(sys._getframe(1))

    namespace["many"](Shimmed())
    code = namespace["many"].__code__
    assert len(_introspect._ANSWERS[code]) == _introspect.PER_CODE
    del namespace, code
    gc.collect()
    assert len(_introspect._ANSWERS) == 0  # a cached answer does not keep the code object alive
    assert _run("m = c.call()\nif m is None:\n    pass", result_tested_for_none)
    assert len(_introspect._ANSWERS) == 1
    hotfix.enable()
    hotfix.disable()
    assert len(_introspect._ANSWERS) == 0


def test_called_from_legacy_sees_the_calling_module() -> None:
    # Frames up from caller_frame: called_from_legacy, the question, the shim, then the calling code.
    def question(frame: types.FrameType) -> bool:
        return called_from_legacy(depth=4)

    assert _run("c.call()", question, module="transformers_modules.m") is True
    assert _run("c.call()", question, module="transformers.models.x") is False


# -- static: redirect_calls, read once when a legacy class is defined ---------------------


def _scenario_code(body: str) -> types.CodeType:
    namespace: dict[str, Any] = {}
    exec(compile("def scenario(c):\n" + textwrap.indent(textwrap.dedent(body), "    "), "<s>", "exec"), namespace)
    code: types.CodeType = namespace["scenario"].__code__
    return code


def _redirected(body: str, when: Callable[[types.CodeType, int], bool]) -> bool:
    code = _scenario_code(body)
    new = _introspect.redirect_calls(code, "call", "legacy_call", when)
    if new is code:
        return False
    assert "legacy_call" in new.co_names and "call" not in new.co_names
    return True


@pytest.mark.parametrize("body", TESTED_FOR_NONE.values(), ids=TESTED_FOR_NONE.keys())
def test_static_reading_agrees_with_the_frame_reading_tested_for_none(body: str) -> None:
    assert _redirected(body, _introspect.result_tested_for_none_at) is True


@pytest.mark.parametrize("body", NOT_TESTED_FOR_NONE.values(), ids=NOT_TESTED_FOR_NONE.keys())
def test_static_reading_agrees_with_the_frame_reading_not_tested_for_none(body: str) -> None:
    assert _redirected(body, _introspect.result_tested_for_none_at) is False


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("name, cache = c.call()", True),
        ("cache = c.call()", False),
        ("name, cache = c.call(x, y=1)", True),
        ("name, cache = c.call(f(x), y=g(1, k=2), *[])", True),
        ("name, cache = c.call(**{'a': 1})", True),
        ("name, cache = c.call() if c else (None, None)", True),
    ],
)
def test_static_reading_of_unpacking(body: str, expected: bool) -> None:
    namespace = "x = y = 1\nf = g = print\n"
    assert _redirected(namespace + body, _introspect.result_unpacked_at) is expected


def test_a_call_with_arguments_is_found() -> None:
    code = _scenario_code("x = 1\nm = c.call(x, key=[c.other(x), 2])\nif m is None:\n    pass")
    sites = _introspect.call_sites(code, "call")
    assert sites is not None and len(sites) == 1
    assert _introspect.result_tested_for_none_at(code, sites[0]) is True


@pytest.mark.parametrize(
    "body",
    [
        "m = c.call()\nif m is None:\n    pass\nn = c.call()\nif n < 0:\n    pass",  # both ways: keep the name
        "f = c.call\nm = f()\nif m is None:\n    pass",  # read and kept, not called
        "c.call = None",  # stored
        "m = c.call(1 if c else 2)\nif m is None:\n    pass",  # a branch among the arguments: not followed
    ],
    ids=["mixed", "kept", "stored", "branch-in-arguments"],
)
def test_other_uses_of_the_name_are_not_rewritten(body: str) -> None:
    assert _redirected(body, _introspect.result_tested_for_none_at) is False


def test_nested_functions_are_rewritten_each_on_its_own() -> None:
    body = (
        "def inner():\n    m = c.call()\n    return m is None\n"
        "def other():\n    return c.call() + 1\n"
        "return inner, other"
    )
    code = _scenario_code(body)
    new = _introspect.redirect_calls(code, "call", "legacy_call", _introspect.result_tested_for_none_at)
    nested = {k.co_name: k for k in new.co_consts if isinstance(k, types.CodeType)}
    assert "legacy_call" in nested["inner"].co_names and "call" in nested["other"].co_names
    assert new.co_names == code.co_names  # the outer function does not call it


def test_the_rewritten_function_runs_and_keeps_its_lines() -> None:
    class Cache:
        def call(self) -> int:
            return -1

        def legacy_call(self) -> None:
            return None

    namespace: dict[str, Any] = {}
    source = "def scenario(c):\n    m = c.call()\n    return 'none' if m is None else m\n"
    exec(compile(source, "<s>", "exec"), namespace)
    function = namespace["scenario"]
    assert function(Cache()) == -1
    when = _introspect.result_tested_for_none_at
    function.__code__ = _introspect.redirect_calls(function.__code__, "call", "legacy_call", when)
    assert function(Cache()) == "none"
    assert function.__code__.co_firstlineno == 1 and function.__code__.co_filename == "<s>"


def test_one_legacy_use_is_enough_with_sites_any() -> None:
    # InternLM2.5: the value is read twice; only the second call is tested against None, and the first runs
    # only when that one found a maximum. Both calls must get the old contract.
    body = "m = torch.tensor(c.call()) if c.call() is not None else None"
    code = _scenario_code("torch = None\n" + body)
    when = _introspect.result_tested_for_none_at
    assert _introspect.redirect_calls(code, "call", "legacy_call", when) is code
    new = _introspect.redirect_calls(code, "call", "legacy_call", when, sites="any")
    assert "legacy_call" in new.co_names and "call" not in new.co_names
    fixed = _scenario_code("m = c.call()\nm = None if m < 0 else m")  # fixed for the new contract: kept
    assert _introspect.redirect_calls(fixed, "call", "legacy_call", when, sites="any") is fixed
