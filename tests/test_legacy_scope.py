"""Which code is legacy: remote code, auto-gptq, and the modules users declare (HOTFIX_LEGACY, enable(legacy=...))."""

from __future__ import annotations

import logging
import os

import pytest

import hotfix
from hotfix import _scope


def test_remote_code_and_auto_gptq_are_legacy_and_nothing_else_by_default() -> None:
    assert hotfix.is_legacy("transformers_modules.THUDM.chatglm3.modeling_chatglm")
    assert hotfix.is_legacy("auto_gptq.modeling._base")
    assert not hotfix.is_legacy("llava.model.language_model.mpt.modeling_mpt")
    assert not hotfix.is_legacy("transformers.models.llama.modeling_llama")


def test_enable_declares_globs_that_cover_submodules_and_disable_forgets_them() -> None:
    hotfix.enable(legacy=["llava.model.*", "rc_*", "my_service.models"])
    try:
        assert hotfix.is_legacy("llava.model.language_model.mpt.modeling_mpt")
        assert hotfix.is_legacy("rc_internlm2.modeling_internlm2")
        assert hotfix.is_legacy("my_service.models")
        assert hotfix.is_legacy("my_service.models.glm.modeling_chatglm")
        assert not hotfix.is_legacy("llava.train")
        assert not hotfix.is_legacy("my_service.models_old")  # a glob names whole module names
        assert os.environ["HOTFIX_LEGACY"] == "llava.model.*,rc_*,my_service.models"  # workers inherit it
    finally:
        hotfix.disable()
    assert not hotfix.is_legacy("llava.model.language_model.mpt.modeling_mpt")
    assert "HOTFIX_LEGACY" not in os.environ


def test_the_environment_variable_declares_them_when_enable_is_not_given_any(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTFIX_LEGACY", " llava.model.* , vendored ")
    hotfix.enable()
    assert _scope.declared_legacy() == ("llava.model.*", "vendored")
    assert hotfix.is_legacy("vendored.modeling_baichuan")


@pytest.mark.parametrize("bad", ["llava model", "a/b", "", "x;y"])
def test_a_bad_glob_argument_raises_a_configuration_error_and_enables_nothing(bad: str) -> None:
    expected = r"hotfix\.enable\(legacy=\.\.\.\): .* is not a module-name glob"
    with pytest.raises(hotfix.ConfigurationError, match=expected):
        hotfix.enable(legacy=["ok.module", bad])
    assert not hotfix.is_enabled()
    assert _scope.declared_legacy() == ()


def test_a_string_instead_of_a_list_is_refused_by_name() -> None:
    with pytest.raises(hotfix.ConfigurationError, match="expected a list of module-name globs"):
        hotfix.enable(legacy="llava.model.*")  # type: ignore[arg-type]
    assert not hotfix.is_enabled()


def test_a_bad_glob_in_the_environment_is_logged_and_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOTFIX_LEGACY", "good.models,bad glob")
    with caplog.at_level(logging.ERROR, logger="hotfix"):
        hotfix.enable()
    assert hotfix.is_enabled()  # a typo must not turn hotfix off for the process
    assert _scope.declared_legacy() == ("good.models",)
    assert "bad glob" in caplog.text and "HOTFIX_LEGACY" in caplog.text


def test_a_bad_glob_in_the_environment_raises_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTFIX_LEGACY", "bad glob")
    with pytest.raises(hotfix.ConfigurationError, match="HOTFIX_LEGACY"):
        hotfix.enable(strict=True)
    assert not hotfix.is_enabled()
