"""``hotfix check PATH``: run a model folder's own code, stage by stage, on a tiny model built from its config.

The model's code runs in a subprocess (``python -m hotfix._check``), so that
a crash, a hang or a leaked patch never reaches the caller. The worker

1. copies the folder's code, config and tokenizer files (never weights) to a
   temporary folder, with ``config.json`` shrunk by the rules in
   ``hotfix/shrink.toml`` (or refuses, saying which keys it cannot shrink);
2. runs the stages a user meets: construct from the config, save and reload
   through ``from_pretrained(..., trust_remote_code=True)``, forward, greedy
   generate with and without cache (the two must agree), and the tokenizer
   and the processor (an image processor run on a blank picture) where the
   folder has them;
3. prints one JSON object: each stage's outcome, and for a failure the error
   and the deepest line of the model's own files in the traceback; logits and
   tokens, for comparison with another stack; the patches hotfix applied, and
   those this model's code used.

Parameters are seeded by name, so two stacks build the same numbers.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._env import legacy_modules
from ._errors import HotfixError

__all__ = ["CheckError", "check", "format_report", "shrink_config"]

_CODE_SUFFIXES = (".py", ".json", ".model", ".tiktoken", ".txt", ".vocab")
_WEIGHT_NAMES = ("pytorch_model", "model-0", "model.safetensors", "adapter_model")
PROMPT = [3, 17, 29, 41, 53, 67, 79, 97]
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
_PASSED_ON = ("HOTFIX_PATCHES", "HOTFIX_LEGACY", "HOTFIX_STRICT", "HOTFIX_CACHE_DIR")
MAX_NEW_TOKENS = 6


class CheckError(HotfixError):
    """A model folder cannot be checked (no config.json, a config the shrink rules cannot shrink)."""


@functools.cache
def _rules() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib

    text = (Path(__file__).parent / "shrink.toml").read_text(encoding="utf-8")
    rules: dict[str, Any] = tomllib.loads(text)
    return rules


def shrink_config(config: dict[str, Any], rules: dict[str, Any] | None = None) -> dict[str, Any]:
    """*config* (a config.json's content) with its sizes shrunk; :class:`CheckError` naming what cannot be."""
    rules = rules or _rules()
    settings: dict[str, int] = rules["set"]
    keep = set(rules["keep"]["keys"])
    refuse: dict[str, str] = rules["refuse"]
    full_precision: dict[str, list[Any]] = rules.get("full_precision", {})
    drop: dict[str, dict[str, Any]] = rules.get("drop", {})
    replace: dict[str, Any] = rules.get("replace", {})
    words: list[str] = rules["size_words"]
    left: list[str] = []
    notes: list[str] = []

    def shrink(node: dict[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            where = f"{path}{key}"
            when = drop.get(key)
            if when and isinstance(value, dict) and all(value.get(k) == v for k, v in when.items() if k != "note"):
                notes.append(f"dropped {where}: {when['note']}")
                continue
            if key in refuse and value and value not in full_precision.get(key, ()):
                raise CheckError(f"cannot shrink {where}: {refuse[key]}")
            if key in replace and value is not None:
                out[key] = replace[key]
            elif isinstance(value, dict):
                out[key] = shrink(value, where + ".")
            elif isinstance(value, bool) or not isinstance(value, int):
                out[key] = value
            elif key in settings:
                out[key] = min(value, settings[key])
            else:
                out[key] = value
                if key not in keep and value > rules["max_left"] and any(w in key.lower() for w in words):
                    left.append(f"{where}={value}")
        return out

    shrunk = shrink(config, "")
    if left:
        raise CheckError(f"no shrink rule for {', '.join(left)} (add one to hotfix/shrink.toml)")
    if notes:
        shrunk["_hotfix_check_notes"] = notes
    return shrunk


def _takes_pixels(model: Any) -> bool:
    """Whether the model's forward takes an image first (``pixel_values``), not token ids."""
    import inspect

    try:
        names = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return False
    return bool(names) and names[0] in ("pixel_values", "images", "x") and "input_ids" not in names


def _image_size(config: Any) -> int:
    for name in ("img_size", "image_size"):
        value = getattr(config, name, None)
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        if isinstance(value, int) and value > 0:
            return value
    return 224


def prompt_for(config: dict[str, Any], vocab: int, rules: dict[str, Any] | None = None) -> list[int]:
    """The prompt's token ids: fixed ids below *vocab*, then the ids the model's code requires (shrink.toml)."""
    rules = rules or _rules()
    prompt = [i % vocab for i in PROMPT]
    spec = rules.get("prompt", {})
    if spec.get("suffix_when") in config:
        prompt += [int(config[key]) for key in spec.get("suffix_keys", []) if isinstance(config.get(key), int)]
    return prompt


def _copy_folder(source: Path, target: Path) -> None:
    for path in source.iterdir():
        weights = path.name.startswith(_WEIGHT_NAMES) or path.name.endswith(".index.json")
        if path.is_file() and path.suffix in _CODE_SUFFIXES and not weights and path.name != "config.json":
            shutil.copy(path, target / path.name)


# -- the worker (runs the model's code) -------------------------------------------


def _randomize(model: Any) -> None:
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            noise = torch.randn(parameter.shape, generator=generator)
            norm = parameter.dim() == 1 and ("norm" in name or "ln" in name) and "bias" not in name
            parameter.copy_(1.0 + 0.1 * noise if norm else 0.1 * noise)


def _where(error: BaseException, folder: Path, work: Path | None = None) -> str | None:
    """The deepest line of the model's own files in the traceback (the copies transformers or the check made)."""
    names = {p.name for p in folder.glob("*.py")}
    roots = [folder.resolve(), *([work.resolve()] if work is not None else [])]
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename)
        if path.name not in names:
            continue
        resolved = path.resolve()
        if "transformers_modules" in path.parts or any(resolved.is_relative_to(root) for root in roots):
            found = f"{path.name}:{frame.lineno}: {(frame.line or '').strip()}"
    return found


def _model_class_key(config: dict[str, Any]) -> str:
    auto_map = config.get("auto_map", {})
    for key in ("AutoModelForCausalLM", "AutoModel"):
        if key in auto_map:
            return key
    raise CheckError("config.json has no auto_map entry for AutoModelForCausalLM or AutoModel")


VENDORED_PACKAGE = "hotfix_check_vendored"


class _Vendored:
    """The folder's files imported as a plain package, as projects that vendor model code do.

    Classes come from the package (``hotfix_check_vendored.modeling_x``), not
    from transformers' dynamic module loader, so only ``HOTFIX_LEGACY`` can
    tell hotfix that this is legacy code.
    """

    def __init__(self, work: Path) -> None:
        import importlib

        package = work / "vendored" / VENDORED_PACKAGE
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("", encoding="utf-8")
        for path in work.glob("*.py"):
            shutil.copy(path, package / path.name)
        sys.path.insert(0, str(package.parent))
        importlib.invalidate_caches()
        self._import = importlib.import_module

    def resolve(self, reference: str) -> Any:
        module, _, name = reference.rpartition(".")
        return getattr(self._import(f"{VENDORED_PACKAGE}.{module}"), name)


def _stages(folder: Path, work: Path, report: dict[str, Any], vendored: bool = False) -> None:
    import torch
    import transformers

    stages: list[dict[str, Any]] = report["stages"]
    state: dict[str, Any] = {}

    def stage(name: str, action: Any) -> bool:
        try:
            action()
        except Exception as error:  # noqa: BLE001 - the model's own code: every failure is a finding
            from ._explain import explain_text

            text = f"{type(error).__name__}: {error}"
            stages.append(
                {"stage": name, "ok": False, "error": text[:2000], "where": _where(error, folder, work),
                 "fix": explain_text(text)}
            )  # fmt: skip
            return False
        stages.append({"stage": name, "ok": True})
        return True

    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    key = _model_class_key(raw)
    auto = getattr(transformers, "AutoModelForCausalLM" if key == "AutoModelForCausalLM" else "AutoModel")
    report["class"] = raw.get("auto_map", {}).get(key)

    package = _Vendored(work) if vendored else None

    def construct() -> None:
        torch.manual_seed(0)
        if package is not None:
            config = package.resolve(raw["auto_map"]["AutoConfig"]).from_pretrained(str(work))
            model = package.resolve(raw["auto_map"][key])(config)
            state["class"] = type(model)
        else:
            config = transformers.AutoConfig.from_pretrained(str(work), trust_remote_code=True)
            model = auto.from_config(config, trust_remote_code=True)
            type(model).register_for_auto_class(key)
        _randomize(model)
        state["built"] = model

    def reload() -> None:
        saved = work / "saved"
        state["built"].save_pretrained(str(saved))
        if package is not None:
            model = state["class"].from_pretrained(str(saved)).eval()
        else:
            model = auto.from_pretrained(str(saved), trust_remote_code=True).eval()
        before, after = state["built"].state_dict(), model.state_dict()
        differ = [k for k in before if k not in after or not torch.equal(before[k], after[k])]
        if differ:
            raise AssertionError(f"reloaded weights differ from the saved ones: {differ[:5]}")
        state["model"] = model

    def forward() -> None:
        model = state["model"]
        if _takes_pixels(model):  # a vision encoder (nomic-embed-vision): a fixed picture
            size = _image_size(model.config)
            channels = int(getattr(model.config, "num_channels", 3) or 3)
            inputs = torch.linspace(-1, 1, channels * size * size).reshape(1, channels, size, size)
        else:
            inputs = torch.tensor([prompt_for(raw, model.get_input_embeddings().weight.shape[0])])
            state["ids"] = inputs
        with torch.no_grad():
            output = model(inputs)
        if isinstance(output, torch.Tensor):
            logits = output
        else:
            logits = output[0] if isinstance(output, tuple) else getattr(output, "logits", None)
        if logits is None:
            logits = output.last_hidden_state
        last = logits.reshape(logits.shape[0], -1, logits.shape[-1])[0, -1]  # the last position (or the pooled row)
        report["logits"] = [round(float(x), 5) for x in last[:8]]

    def generate(use_cache: bool) -> Any:
        def run() -> None:
            with torch.no_grad():
                out = state["model"].generate(
                    state["ids"], max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                    use_cache=use_cache, pad_token_id=0,
                )  # fmt: skip
            report["tokens" if use_cache else "tokens_no_cache"] = out[0, state["ids"].shape[1] :].tolist()

        return run

    def agree() -> None:
        if report["tokens"] != report["tokens_no_cache"]:
            raise AssertionError(f"with cache {report['tokens']}, without {report['tokens_no_cache']}")

    def tokenizer() -> None:
        if package is not None:
            settings = json.loads((work / "tokenizer_config.json").read_text(encoding="utf-8"))
            named = settings.get("auto_map", {}).get("AutoTokenizer") or raw.get("auto_map", {}).get("AutoTokenizer")
            if named:
                candidates = [named] if isinstance(named, str) else [n for n in named if n]
                loaded = package.resolve(str(candidates[0])).from_pretrained(str(work))
            else:  # a tokenizer of transformers' own: nothing to vendor, and no remote code to run for it
                loaded = transformers.AutoTokenizer.from_pretrained(str(work), trust_remote_code=False)
        else:
            loaded = transformers.AutoTokenizer.from_pretrained(str(work), trust_remote_code=True)
        ids = loaded("Hello world, 2024")["input_ids"]
        report["tokenizer"] = {"ids": list(ids), "decoded": loaded.decode(ids, skip_special_tokens=True)}

    def processor() -> None:
        settings = {}
        for name in PROCESSOR_FILES:
            if (work / name).is_file():
                settings = json.loads((work / name).read_text(encoding="utf-8"))
                break
        named = settings.get("auto_map", {})
        if "AutoProcessor" in named or (work / PROCESSOR_FILES[0]).is_file():
            kind = "AutoProcessor"
        elif "AutoImageProcessor" in named or "image_processor_type" in settings:
            kind = "AutoImageProcessor"
        elif "AutoFeatureExtractor" in named or "feature_extractor_type" in settings:
            kind = "AutoFeatureExtractor"
        else:
            kind = "AutoProcessor"
        if package is not None and named.get(kind):
            loaded = package.resolve(str(named[kind])).from_pretrained(str(work))
        else:
            loaded = getattr(transformers, kind).from_pretrained(str(work), trust_remote_code=package is None)
        images = getattr(loaded, "image_processor", None) or (loaded if kind == "AutoImageProcessor" else None)
        result: dict[str, Any] = {"class": type(loaded).__name__}
        if images is not None:
            import numpy as np

            picture = np.full((32, 32, 3), 127, dtype=np.uint8)
            output = images(images=[picture], return_tensors="pt")
            result["shapes"] = {k: list(v.shape) for k, v in output.items() if hasattr(v, "shape")}
        report["processor"] = result

    built = stage("construct", construct) and stage("save and reload", reload) and stage("forward", forward)
    if built and key == "AutoModelForCausalLM":
        cached = stage("generate with cache", generate(True))
        plain = stage("generate without cache", generate(False))
        if cached and plain:
            stage("cache agrees", agree)
    if (folder / "tokenizer_config.json").exists():
        stage("tokenizer", tokenizer)
    if any((folder / name).exists() for name in PROCESSOR_FILES):
        stage("processor", processor)


def _worker(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m hotfix._check")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--hotfix", action="store_true")
    parser.add_argument("--after", action="store_true", help="enable hotfix after importing transformers")
    parser.add_argument("--vendored", action="store_true", help="import the files as a plain package")
    args = parser.parse_args(argv)
    declared = list(dict.fromkeys([VENDORED_PACKAGE, *legacy_modules()]))
    if args.hotfix:
        import hotfix

        if args.after:
            # the point: transformers and its model classes are imported before hotfix is enabled
            from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer  # noqa: F401
        # Vendored: the copied package is declared legacy, beside what the user declared (HOTFIX_LEGACY), which an
        # explicit legacy= would otherwise replace (a vendored copy may import other packages of the same code).
        hotfix.enable(legacy=declared if args.vendored else None)
    report: dict[str, Any] = {"folder": str(args.folder), "hotfix": args.hotfix, "stages": []}
    if args.hotfix:
        report["enabled"] = "after import" if args.after else "before import"
    if args.vendored:
        report["vendored"] = VENDORED_PACKAGE
        report["legacy"] = declared
    with tempfile.TemporaryDirectory(prefix="hotfix-check-") as tmp:
        work = Path(tmp)
        try:
            raw = json.loads((args.folder / "config.json").read_text(encoding="utf-8"))
            shrunk = shrink_config(raw)
            report["notes"] = shrunk.pop("_hotfix_check_notes", [])
            (work / "config.json").write_text(json.dumps(shrunk, indent=1), encoding="utf-8")
            _copy_folder(args.folder, work)
            _stages(args.folder, work, report, vendored=args.vendored)
        except CheckError as error:
            report["refused"] = str(error)
    import transformers

    report["transformers"] = transformers.__version__
    if args.hotfix:
        import hotfix

        states = hotfix.status().patches
        report["patches"] = sorted(p.id for p in states if p.state == "applied")
        report["used"] = {p.id: p.used_by for p in sorted(states, key=lambda p: p.id) if p.used}
    # On a line of its own: the model's code (or transformers asking "Do you wish to run the custom code? [y/N]")
    # may have left a line unterminated.
    print("\n" + json.dumps(report))
    return 0


# -- the command ---------------------------------------------------------------------


def check(
    folder: Path,
    use_hotfix: bool = True,
    timeout: float = 600,
    python: str | None = None,
    after: bool = False,
    vendored: bool = False,
) -> dict[str, Any]:
    """Run the worker on *folder* in a subprocess and return its report.

    *after* enables hotfix only once transformers is imported (as an
    application that imports transformers before calling ``hotfix.enable()``).
    *vendored* imports the folder's files as a plain package, declared legacy
    with ``enable(legacy=...)``, instead of through ``trust_remote_code``.
    """
    if not (folder / "config.json").is_file():
        raise CheckError(f"{folder} has no config.json: hotfix check needs a model folder")
    command = [python or sys.executable, "-m", "hotfix._check", str(folder)] + (["--hotfix"] if use_hotfix else [])
    if use_hotfix and after:
        command.append("--after")
    if vendored:
        command.append("--vendored")
    # The selection and the declared legacy modules are the user's; activation is the worker's to decide.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_") or k in _PASSED_ON}
    environment.setdefault("HF_HUB_OFFLINE", "1")
    environment["TRANSFORMERS_VERBOSITY"] = "error"
    with tempfile.TemporaryDirectory(prefix="hotfix-check-modules-") as modules:
        environment["HF_MODULES_CACHE"] = modules  # remote code is copied here, not into the user's cache
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, env=environment, timeout=timeout, stdin=subprocess.DEVNULL
            )  # no stdin: transformers asks "Do you wish to run the custom code?" when it is unsure
        except subprocess.TimeoutExpired:
            return {"folder": str(folder), "hotfix": use_hotfix, "stages": [], "crashed": f"timed out after {timeout}s"}
    # The model's own code may print to stdout too: the report is the last line that is a JSON object.
    for line in reversed(completed.stdout.strip().splitlines() if completed.returncode == 0 else []):
        try:
            report = json.loads(line[line.find("{") :])
        except ValueError:
            continue
        if isinstance(report, dict) and "stages" in report:
            return report
    tail = completed.stderr.strip().splitlines()[-3:]
    return {"folder": str(folder), "hotfix": use_hotfix, "stages": [], "crashed": " | ".join(tail)}


def format_report(report: dict[str, Any]) -> str:
    """The report as a few lines for a terminal."""
    head = f"{report['folder']} ({'with' if report.get('hotfix') else 'without'} hotfix"
    head += f", transformers {report.get('transformers', '?')})"
    lines = [head]
    for note in report.get("notes", []):
        lines.append(f"  note: {note}")
    for problem in ("refused", "crashed"):
        if problem in report:
            lines.append(f"  {problem}: {report[problem]}")
    for stage in report["stages"]:
        if stage["ok"]:
            lines.append(f"  ok    {stage['stage']}")
        else:
            lines.append(f"  FAIL  {stage['stage']}: {stage['error'][:300]}")
            if stage.get("where"):
                lines.append(f"        at {stage['where']}")
            for line in (stage.get("fix") or "").splitlines():
                lines.append(f"        {line}")
    if report.get("used"):
        lines.append(f"  patches this model used ({len(report['used'])}): {', '.join(report['used'])}")
    elif report.get("patches"):
        lines.append(f"  {len(report['patches'])} patches applied in the process, none used by this model")
    return "\n".join(lines)


def passed(report: dict[str, Any]) -> bool:
    stages = report.get("stages", [])
    return bool(stages) and all(s["ok"] for s in stages) and "refused" not in report and "crashed" not in report


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
