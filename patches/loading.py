"""``from_pretrained`` keywords that transformers 5 no longer consumes.

Until 4.57, ``PreTrainedModel.from_pretrained`` popped ``resume_download``
(deprecated: downloads always resume) and ``use_auth_token`` (renamed
``token``) from its ``**kwargs``. transformers 5 dropped both, so they fall
through to the model's ``__init__``. auto-gptq 0.7.1 passes both on its
quantize path (``BaseGPTQForCausalLM.from_pretrained``) and fails with::

    TypeError: LlamaForCausalLM.__init__() got an unexpected keyword argument 'resume_download'

The shim drops ``resume_download`` and renames ``use_auth_token`` to
``token`` (unless ``token`` is given too), and only for calls that come into
transformers from legacy code (``auto_gptq.*``, ``transformers_modules.*``,
also through ``AutoModel*.from_pretrained``): anyone else passing these
keywords to transformers 5 keeps its ``TypeError``.

The probe reads the live ``from_pretrained``'s code constants: transformers
versions that still pop ``"resume_download"`` have the string there.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from hotfix.authoring import Finding, Shims, called_into_from_legacy

KEYWORDS = ("resume_download", "use_auth_token")


def _constants(function: Any) -> set[str]:
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    if code is None:
        return set()
    found: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        for const in current.co_consts:
            if isinstance(const, str):
                found.add(const)
            elif isinstance(const, types.CodeType):
                stack.append(const)
    return found


def probe_hub_keywords(module: types.ModuleType) -> Finding:
    function = module.PreTrainedModel.from_pretrained
    consumed = [k for k in KEYWORDS if k in _constants(function)]
    if consumed:
        return False, f"PreTrainedModel.from_pretrained consumes {', '.join(consumed)}"
    return True, "PreTrainedModel.from_pretrained passes resume_download and use_auth_token on to the model's __init__"


def apply_hub_keywords(module: types.ModuleType, shims: Shims) -> None:
    def make(function: Callable[..., Any]) -> Callable[..., Any]:
        def from_pretrained(*args: Any, **kwargs: Any) -> Any:
            if ("resume_download" in kwargs or "use_auth_token" in kwargs) and called_into_from_legacy("transformers"):
                shims.mark_used("legacy code passed resume_download/use_auth_token to from_pretrained")
                kwargs.pop("resume_download", None)
                token = kwargs.pop("use_auth_token", None)
                if token is not None and kwargs.get("token") is None:
                    kwargs["token"] = token
            return function(*args, **kwargs)

        return from_pretrained

    shims.replace(module.PreTrainedModel, "from_pretrained", make)
