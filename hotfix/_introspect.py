"""Who called a shim, and what the calling code does with its result: frames and bytecode.

Shims scoped to legacy code ask who is calling (:func:`called_from_legacy`,
:func:`called_into_from_legacy`); two ask what the calling code does with
the value they return, read from the caller's bytecode at the call:
:func:`result_unpacked` (``name, cache = self._extract_past_from_model_output(...)``)
and :func:`result_tested_for_none` (``if cache.get_max_length() is None``).

The bytecode readers know the instruction shapes of CPython 3.10 to 3.13
(superinstructions such as ``STORE_FAST_LOAD_FAST``, conditional
expressions, a stored value tested in a nested function). Their answers are
cached per call site in a dictionary keyed weakly by the code object, so a
cached answer never keeps code alive, at most :data:`PER_CODE` sites per code
object, and :func:`clear_caches` (called by ``hotfix.disable()``) drops them.

Per-token paths ask nothing at run time: :func:`redirect_calls` reads a
legacy function's bytecode once, when its class is defined, and gives the
calls whose result is used the legacy way (:func:`result_tested_for_none_at`,
:func:`result_unpacked_at`) another attribute name to look up. The function
then runs as written, at the cost of the call it makes, and traces under
``torch.compile`` like any method call.
"""

from __future__ import annotations

import dis
import sys
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Literal

from ._scope import is_legacy

__all__ = [
    "PER_CODE",
    "called_from_legacy",
    "called_into_from_legacy",
    "caller_frame",
    "call_sites",
    "clear_caches",
    "following",
    "redirect_calls",
    "result_tested_for_none",
    "result_tested_for_none_at",
    "result_unpacked",
    "result_unpacked_at",
]

PER_CODE = 64
"""The most call sites of one code object whose answers are cached."""

_ANSWERS: weakref.WeakKeyDictionary[types.CodeType, dict[tuple[str, int], bool]] = weakref.WeakKeyDictionary()

_STORES = ("STORE_FAST", "STORE_NAME", "STORE_DEREF", "STORE_GLOBAL")
_LOADS = ("LOAD_FAST", "LOAD_NAME", "LOAD_DEREF", "LOAD_FAST_CHECK", "LOAD_FAST_BORROW", "LOAD_GLOBAL")
_JUMPS = ("JUMP_FORWARD", "JUMP", "JUMP_NO_INTERRUPT")


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
    return frame is not None and is_legacy(frame.f_globals.get("__name__", ""))


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
            return is_legacy(name)
        frame = frame.f_back
    return False


def clear_caches() -> None:
    """Forget every cached call-site answer."""
    _ANSWERS.clear()


def _cached(question: str, frame: types.FrameType, compute: Callable[[types.CodeType, int], bool]) -> bool:
    code, lasti = frame.f_code, frame.f_lasti
    sites = _ANSWERS.get(code)
    if sites is None:
        sites = _ANSWERS.setdefault(code, {})
    key = (question, lasti)
    answer = sites.get(key)
    if answer is None:
        answer = compute(code, lasti)
        if len(sites) < PER_CODE:
            sites[key] = answer
    return answer


def following(code: types.CodeType, lasti: int) -> list[dis.Instruction]:
    """The instructions after the call at offset *lasti*, unconditional forward jumps followed.

    ``f_lasti`` is the call instruction or, on 3.11+, one of the inline cache
    entries after it (``dis`` does not list those): what the result goes to is
    the first instruction listed after it. A conditional expression jumps over
    its other branch before the value is stored.
    """
    instructions = list(dis.get_instructions(code))
    index = next((i for i, ins in enumerate(instructions) if ins.offset > lasti), len(instructions))
    for _ in range(4):
        if index >= len(instructions) or instructions[index].opname not in _JUMPS:
            break
        target = instructions[index].argval
        index = next((i for i, ins in enumerate(instructions) if ins.offset == target), len(instructions))
    return instructions[index:]


def result_unpacked(frame: types.FrameType | None, count: int = 2) -> bool:
    """Whether the call being executed in *frame* has its result unpacked into exactly *count* names."""
    if frame is None:
        return False

    def compute(code: types.CodeType, lasti: int) -> bool:
        after = following(code, lasti)
        return bool(after) and after[0].opname == "UNPACK_SEQUENCE" and after[0].arg == count

    return _cached(f"unpacked{count}", frame, compute)


def result_tested_for_none(frame: types.FrameType | None) -> bool:
    """Whether the calling code compares the result of the call being executed in *frame* with ``None``.

    The first use decides: the call's value itself, or the variable it is
    stored in at its first load (also a cell variable read by a nested
    function). A ``None`` test is the legacy contract; a comparison with a
    number (``< 0``) is code already written for the new one.
    """
    if frame is None:
        return False
    return _cached("none", frame, _tests_result_for_none)


def _stored_name(instruction: dis.Instruction) -> str | None:
    if instruction.opname in _STORES:
        return str(instruction.argval)
    if instruction.opname in ("STORE_FAST_LOAD_FAST", "STORE_FAST_STORE_FAST"):  # 3.13 superinstructions
        return str(instruction.argval[0])
    return None


_PAIRS = ("LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "STORE_FAST_LOAD_FAST")


def _load(instruction: dis.Instruction, name: str) -> str | None:
    """``"top"`` when *instruction* leaves *name*'s value on top of the stack, ``"under"`` when it loads it
    below another value (the first of a 3.13 pair), ``None`` when it does not load it."""
    if instruction.opname in _LOADS:
        return "top" if instruction.argval == name else None
    if instruction.opname in _PAIRS:
        first, second = instruction.argval
        if second == name:
            return "top"
        if first == name and instruction.opname != "STORE_FAST_LOAD_FAST":
            return "under"
    return None


def _first_use_tests_none(instructions: Sequence[dis.Instruction], name: str) -> bool | None:
    """Whether the first load of *name* in *instructions* is tested against None; None when it is never loaded."""
    for index, instruction in enumerate(instructions):
        where = _load(instruction, name)
        if where is not None and not _builds_closure(instructions[index + 1 : index + 3]):
            return where == "top" and _tests_none(instructions[index + 1 : index + 3])
        # A store of the same name is not an end: bytecode order is not execution order, and the store may be
        # the other branch of an if/else that assigns the variable too.
    return None


def _tests_result_for_none(code: types.CodeType, lasti: int) -> bool:
    after = following(code, lasti)
    name = _stored_name(after[0]) if after else None
    if name is None:
        return _tests_none(after[:3])
    if after[0].opname == "STORE_FAST_LOAD_FAST" and after[0].argval[1] == name:  # 3.13: store, load it again
        return _tests_none(after[1:3])
    answer = _first_use_tests_none(after[1:], name)
    if answer is None and after[0].opname == "STORE_DEREF":  # read by a nested function: its first load decides
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                answer = _first_use_tests_none(list(dis.get_instructions(constant)), name)
                if answer is not None:
                    break
    return bool(answer)


def _builds_closure(window: Sequence[dis.Instruction]) -> bool:
    """A load of a cell that only passes it to a nested function (3.13 loads it with LOAD_FAST)."""
    return (
        len(window) == 2
        and window[0].opname == "BUILD_TUPLE"
        and window[1].opname == "LOAD_CONST"
        and isinstance(window[1].argval, types.CodeType)
    )


def _tests_none(window: Sequence[dis.Instruction]) -> bool:
    if window and "NONE" in window[0].opname:  # POP_JUMP_*_IF_NONE / IF_NOT_NONE
        return True
    return any(w.opname in ("LOAD_CONST", "LOAD_SMALL_INT") and w.argval is None for w in window) and any(
        w.opname in ("IS_OP", "COMPARE_OP") for w in window
    )


# -- static: read once when a legacy class is defined --------------------------------

_CALLS = ("CALL", "CALL_KW", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_METHOD", "CALL_FUNCTION_EX")
_ATTRIBUTE_LOADS = ("LOAD_ATTR", "LOAD_METHOD")
_BRANCHES = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)


def _effect(instruction: dis.Instruction) -> int:
    if instruction.opcode >= dis.HAVE_ARGUMENT:
        return dis.stack_effect(instruction.opcode, instruction.arg or 0, jump=False)
    return dis.stack_effect(instruction.opcode, jump=False)


def _call_of(instructions: Sequence[dis.Instruction], index: int) -> int | None:
    """The offset of the call that calls the attribute loaded at *index*; None when it is not called directly.

    Follows the stack from the owner (depth 1) through the attribute's load
    and the arguments: the first call that leaves the stack no higher than
    the owner is this attribute's call (a call among the arguments leaves
    the callable below it). A branch among the arguments, or the stack falling
    below the owner first, answers None (not a call this reader follows).
    """
    depth = 1
    for instruction in instructions[index:]:
        if instruction.opcode in _BRANCHES:
            return None
        depth += _effect(instruction)
        if instruction.opname in _CALLS and depth <= 1:  # 0: a NULL pushed below the owner went too (3.11+)
            return instruction.offset
        if depth < 1:
            return None
    return None


def call_sites(code: types.CodeType, attribute: str) -> list[int] | None:
    """The offsets of the calls ``x.attribute(...)`` in *code* itself (nested functions not included).

    None when *code* uses the name in any other way (an attribute read and
    kept, a store, a global of that name): such code is not rewritten.
    """
    instructions = list(dis.get_instructions(code))
    sites: list[int] = []
    for index, instruction in enumerate(instructions):
        if instruction.opcode not in dis.hasname or instruction.argval != attribute:
            continue
        call = _call_of(instructions, index) if instruction.opname in _ATTRIBUTE_LOADS else None
        if call is None:
            return None
        sites.append(call)
    return sites


def result_tested_for_none_at(code: types.CodeType, offset: int) -> bool:
    """Whether the result of the call at *offset* is compared with ``None`` (see :func:`result_tested_for_none`)."""
    return _tests_result_for_none(code, offset)


def result_unpacked_at(code: types.CodeType, offset: int, count: int = 2) -> bool:
    """Whether the result of the call at *offset* is unpacked into exactly *count* names."""
    after = following(code, offset)
    return bool(after) and after[0].opname == "UNPACK_SEQUENCE" and after[0].arg == count


def redirect_calls(
    code: types.CodeType,
    attribute: str,
    to: str,
    when: Callable[[types.CodeType, int], bool],
    *,
    sites: Literal["all", "any"] = "all",
) -> types.CodeType:
    """*code* with its calls ``x.attribute(...)`` looking up ``x.to`` instead, where *when* holds for them.

    Applies to *code* and to the functions nested in it, each on its own: a
    code object is rewritten only when every use of *attribute* in it is such
    a call and ``when(code, offset)`` answers True for each of them
    (*sites* ``"all"``: a function that uses the result both ways keeps its
    name) or for one at least (``"any"``: one legacy use marks the function
    as written for the old contract, as in ``torch.tensor(c.m()) if c.m() is
    not None else None``). The name is one per code object, so all its calls
    change together. Returns *code* itself when nothing changes. Only the
    name table changes: line numbers, tracebacks and ``inspect.getsource``
    stay those of the original.
    """
    constants = tuple(
        redirect_calls(constant, attribute, to, when, sites=sites) if isinstance(constant, types.CodeType) else constant
        for constant in code.co_consts
    )
    nested = any(new is not old for new, old in zip(constants, code.co_consts, strict=True))
    if attribute in code.co_names and to not in code.co_names:
        offsets = call_sites(code, attribute)
        decide = all if sites == "all" else any
        if offsets and decide(when(code, offset) for offset in offsets):
            names = tuple(to if name == attribute else name for name in code.co_names)
            return code.replace(co_names=names, co_consts=constants)
    return code.replace(co_consts=constants) if nested else code
