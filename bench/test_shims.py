"""Per-call cost of each shim shape against the replacement a user would write by hand (item 4)."""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from typing import Any

import wrapt
from _harness import figure, interleave

import hotfix
from hotfix.authoring import redirect_legacy_calls, result_tested_for_none_at

CALLS = 20_000


def _loop(call: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - started) / calls


class Proxy(wrapt.ObjectProxy):  # type: ignore[misc]
    def legacy(self) -> str:
        return "legacy"


def _target() -> types.ModuleType:
    module = types.ModuleType("bench_target")

    class Cache:
        def __init__(self) -> None:
            self.length = 7

        def get_seq_length(self) -> int:
            return self.length

    def new_function(x: int, *, value: int = 0) -> int:
        return x + value

    def compute() -> list[int]:
        return [1, 2]

    module.Cache, module.new_function, module.compute = Cache, new_function, compute  # type: ignore[attr-defined]
    return module


def _cases() -> dict[str, tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any]]]:
    """shape -> (bare call of the new API, hand-written legacy replacement, hotfix shim)."""
    hand, shimmed = _target(), _target()
    shims = hotfix.Shims("bench")
    cases = {}

    # moved name: an alias at the old place
    hand.old_function = hand.new_function  # type: ignore[attr-defined]
    shims.alias(shimmed, "old_function", shimmed.new_function)
    cases["alias (moved name)"] = (
        lambda: hand.new_function(1), lambda: hand.old_function(1), lambda: shimmed.old_function(1)
    )  # fmt: skip

    # removed property restored on the class, forwarding to the new method
    hand.Cache.seen_tokens = property(lambda self: self.get_seq_length())
    shims.restore(shimmed.Cache, "seen_tokens", lambda self: self.get_seq_length(), "property")
    h, s = hand.Cache(), shimmed.Cache()
    cases["restored property"] = (lambda: h.get_seq_length(), lambda: h.seen_tokens, lambda: s.seen_tokens)

    # removed keyword: accept and drop it
    new_function = hand.new_function

    def legacy_function(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("legacy_flag", None)
        return new_function(*args, **kwargs)

    hand.legacy_function = legacy_function  # type: ignore[attr-defined]
    shims.adapt_arguments(shimmed, "new_function", drop=["legacy_flag"])
    cases["keyword adapter"] = (
        lambda: hand.new_function(1, value=2),
        lambda: hand.legacy_function(1, value=2, legacy_flag=True),
        lambda: shimmed.new_function(1, value=2, legacy_flag=True),
    )

    # changed return: proxy the value so that it also behaves as the legacy one
    compute = hand.compute

    def legacy_compute(*args: Any, **kwargs: Any) -> Any:
        return Proxy(compute(*args, **kwargs))

    hand.legacy_compute = legacy_compute  # type: ignore[attr-defined]
    shims.proxy_return(shimmed, "compute", Proxy)
    cases["proxy-wrapped return"] = (lambda: hand.compute(), lambda: hand.legacy_compute(), lambda: shimmed.compute())

    # a legacy method's call redirected, once when its class is defined, to the old contract (G1, G2): the
    # legacy code tests get_max_length() for None; the hand fix tests the new -1 itself
    namespace: dict[str, Any] = {}
    exec(LEGACY_SOURCE, namespace)  # fresh classes per call: the redirect changes their functions in place
    legacy, fixed, cache = namespace["Legacy"](), namespace["Fixed"](), namespace["NewCache"]()
    shims.restore(namespace["NewCache"], "_hotfix_get_max_length", _legacy_max, "method")
    redirect_legacy_calls(shims, namespace["Legacy"], "get_max_length", "_hotfix_get_max_length",
                          when=result_tested_for_none_at)  # fmt: skip
    cases["redirected call (per token)"] = (
        lambda: cache.get_max_length(), lambda: fixed.prepare(cache), lambda: legacy.prepare(cache)
    )  # fmt: skip
    return cases


LEGACY_SOURCE = """
class NewCache:
    def get_max_length(self):
        return -1

class Legacy:
    def prepare(self, cache):
        maximum = cache.get_max_length()
        return maximum is not None

class Fixed:
    def prepare(self, cache):
        maximum = cache.get_max_length()
        maximum = None if maximum < 0 else maximum
        return maximum is not None
"""


def _legacy_max(self: Any) -> int | None:
    value: int = self.get_max_length()
    return None if value < 0 else value


def test_shim_call_costs(benchmark: Any, smoke: bool) -> None:
    rounds, calls = (2, 2_000) if smoke else (21, CALLS)
    cases = _cases()

    def measure() -> dict[str, dict[str, Any]]:
        results = {}
        for name, (bare, hand, shim) in cases.items():
            _loop(hand, calls)
            _loop(shim, calls)  # warm up both
            series = interleave(lambda hand=hand: _loop(hand, calls), lambda shim=shim: _loop(shim, calls), rounds)
            series["bare"] = [_loop(bare, calls) for _ in range(3)]
            results[name] = series
        return results

    results = benchmark.pedantic(measure, rounds=1, iterations=1)
    for name, series in results.items():
        figure(benchmark, f"per call: {name}", series["ratio"], unit="ratio", target=1.1, direction="le", item=4,
               bare_ns=min(series["bare"]), hand_written_ns=sorted(series["baseline"])[len(series["baseline"]) // 2],
               shim_ns=sorted(series["candidate"])[len(series["candidate"]) // 2])  # fmt: skip
