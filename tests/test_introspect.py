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
