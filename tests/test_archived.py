"""Archived libraries that remote code imports, installed from PyPI, on today's transformers.

``transformers_stream_generator`` 0.0.5 (2023, archived) is required by every
Qwen v1 checkpoint's code: transformers' ``check_imports`` imports it when the
model is loaded, and it imports names transformers 5 removed. Without hotfix
the import fails with the error users saw; with hotfix it imports; with hotfix
minus the patch for the name it needs, it fails at that name. Where the
library is not installed (the older matrix environments) the tests skip.
"""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("transformers")
if importlib.util.find_spec("transformers_stream_generator") is None:  # importing it is what fails
    pytest.skip("transformers-stream-generator is not installed here", allow_module_level=True)

from test_transformers import affected, scenario

pytestmark = pytest.mark.transformers


def test_stream_generator_fails_without_hotfix_and_imports_with_it() -> None:
    plain = scenario("stream_generator")
    repaired = scenario("stream_generator", hotfix="before")
    assert repaired["ok"], repaired.get("traceback")
    assert repaired["result"] == ["NewGenerationMixin", True]
    if affected("g14-generate-output-aliases"):
        assert not plain["ok"]
        assert "cannot import name 'DisjunctiveConstraint'" in plain["error"] or "SampleOutput" in plain["error"]
        without = scenario("stream_generator", hotfix="before", patches="-g14-generate-output-aliases")
        assert not without["ok"] and "cannot import name 'SampleOutput'" in without["error"], without["error"]
    else:
        assert plain["ok"] and plain["result"] == repaired["result"]
