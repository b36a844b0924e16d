"""Make the stored weights and the reference outputs of the remote-code fixture packages.

    python scripts/make_fixture_references.py NAME weights     # once: tests/data/fixtures/NAME/model.safetensors
    python scripts/make_fixture_references.py NAME model       # reference["model"]
    python scripts/make_fixture_references.py NAME tokenizer   # reference["tokenizer"]

Run each with the interpreter of the oldest matrix environment where that part
of the package works natively, without hotfix: the version in the package's
fixture.json "since" (legacy_lm: model 4.36, tokenizer 4.33), rounded up to the
matrix. ``bash scripts/setup matrix`` makes the environments; the LegacyLM
tokenizer breaks on every matrix version (T1), so its reference comes from
.venv-tf4.33, made by ``bash scripts/setup reference``. For example

    .venv-tf4.34/bin/python scripts/make_fixture_references.py legacy_qwen model

The weights are made by the package's own code (from_config, seeded values,
save_pretrained), so the stored checkpoint is what that transformers wrote.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from legacy_models import (  # noqa: E402
    PACKAGE_DATA,
    PACKAGES,
    randomize,
    run_package,
    write_package,
)


def make_weights(name: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        source = write_package(name, Path(tmp) / "source", weights=False)
        config = AutoConfig.from_pretrained(str(source), trust_remote_code=True)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
        randomize(model)
        model.save_pretrained(Path(tmp) / "saved", safe_serialization=True)
        (PACKAGE_DATA / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(tmp) / "saved" / "model.safetensors", PACKAGE_DATA / name / "model.safetensors")
    print(f"wrote {PACKAGE_DATA / name / 'model.safetensors'}")


def make_reference(name: str, part: str) -> None:
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        result = run_package(name, Path(tmp) / name, part)
        result.pop("derived", None)  # checked against the batch tokens, not stored
    target = PACKAGE_DATA / name / "reference.json"
    reference = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
    reference[part] = {"transformers": transformers.__version__, "result": result}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {target} [{part}] from transformers {transformers.__version__}")


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in PACKAGES or sys.argv[2] not in ("weights", "model", "tokenizer"):
        raise SystemExit(f"usage: make_fixture_references.py {{{','.join(PACKAGES)}}} {{weights,model,tokenizer}}")
    name, what = sys.argv[1], sys.argv[2]
    if what == "weights":
        if name == "legacy_lm":
            raise SystemExit("legacy_lm writes its weights itself (tests/legacy_models.py write_legacy_lm)")
        make_weights(name)
    else:
        make_reference(name, what)


if __name__ == "__main__":
    main()
