"""``hotfix scan PATH``: what model code takes from the ML libraries, resolved against the installed versions.

Static: the model's files are parsed with :mod:`ast` and never imported or
run. What the code references is

- every name it takes from a target library (``from transformers.x import
  y``, ``import transformers.x``, attribute chains such as
  ``transformers.generation.utils.SampleOutput``);
- the code shapes that patches declare in their ``scan`` list (a list
  ``_tied_weights_keys``, ``rope_scaling["type"]``, an override of
  ``prepare_inputs_for_generation``, ...).

Names are resolved against the installed libraries by reading their source
files (a module file, its top-level bindings, star imports); where that is
not conclusive (transformers' lazy modules, extension modules, module
``__getattr__``) a subprocess imports the library module, with hotfix off,
and asks it. Those answers are cached per environment (Python, prefix and
library versions) in hotfix's cache folder, so that a second scan of any
folder on the same environment never imports anything.

Each finding is ``available``, ``repaired`` (a selected patch in range covers
it), ``uncovered`` (missing and no selected patch in range covers it),
``guarded`` (missing, but imported inside ``try/except ImportError``),
``not-installed`` (the library is not installed) or ``unknown``.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import gc
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, final

from ._errors import HotfixError
from ._patch import Patch

__all__ = ["ScanError", "Finding", "scan", "format_report", "TARGETS", "TRIGGER_KINDS"]

TRIGGER_KINDS = (
    "import",
    "uses",
    "attr",
    "subscript",
    "keyword",
    "subclass",
    "override",
    "class-list",
    "lacks",
    "nocall",
)

TARGETS = (
    "transformers", "tokenizers", "accelerate", "peft", "huggingface_hub", "torch", "auto_gptq",
    "transformers_stream_generator",
)  # fmt: skip
DISTRIBUTIONS = {"auto_gptq": "auto-gptq", "transformers_stream_generator": "transformers-stream-generator"}
Status = Literal["available", "repaired", "uncovered", "review", "guarded", "not-installed", "unknown"]
_CATCHES_IMPORT = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
_SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules"}
_MAX_FILES = 20000


class ScanError(HotfixError):
    """A path cannot be scanned (it does not exist, or holds no Python file)."""


@final
@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the code uses, where, and what the installed libraries say about it."""

    file: str
    line: int
    kind: str  # "import" (a name or module) or "shape" (a patch's declared trigger)
    name: str  # "module" or "module:name" for imports; the trigger for shapes
    status: Status
    patch: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


# -- reading the model's code ------------------------------------------------------


@dataclass(slots=True)
class _Class:
    name: str
    file: str
    line: int
    bases: list[str]  # dotted for library names, bare for local ones
    methods: set[str] = field(default_factory=set)
    list_attributes: set[str] = field(default_factory=set)
    assigned: set[str] = field(default_factory=set)
    signatures: dict[str, ast.arguments] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Code:
    """What one file uses: library references and the raw material for shape triggers."""

    file: str
    # line, "module[:name]", guarded by try/except ImportError, run at import (not inside a function)
    references: list[tuple[int, str, bool, bool]] = field(default_factory=list)
    classes: list[_Class] = field(default_factory=list)
    attributes: dict[str, int] = field(default_factory=dict)  # "attr" and "owner.attr" -> first line
    subscripts: dict[str, int] = field(default_factory=dict)  # "name[key]" -> first line
    keywords: dict[str, int] = field(default_factory=dict)  # "function(keyword)" -> first line
    internal: list[str] = field(default_factory=list)  # for library files: its own modules it imports at import


def _root(name: str) -> str:
    return name.partition(":")[0].partition(".")[0]


class _Reader(ast.NodeVisitor):
    def __init__(self, code: _Code, package: str | None = None) -> None:
        self.code = code
        self.package = package  # set when reading a library's own files
        self.aliases: dict[str, str] = {}  # local name -> dotted library name
        self.objects: set[str] = set()  # local names bound by from-imports (objects, or modules)
        self.guarded = 0
        self.functions = 0
        self.classes: list[_Class] = []
        self.seen: set[str] = set()

    def _reference(self, line: int, name: str) -> None:
        key = f"{name}|{bool(self.guarded)}|{not self.functions}"
        if key not in self.seen:
            self.seen.add(key)
            self.code.references.append((line, name, bool(self.guarded), not self.functions))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        self.visit(node.args)
        self.functions += 1
        for child in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(child)
        self.functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _root(alias.name) in TARGETS:
                self._reference(node.lineno, alias.name)
                local = alias.asname or _root(alias.name)
                self.aliases[local] = alias.name if alias.asname else local
                self.objects.discard(local)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if self.package is not None and not self.functions and not self.guarded:
            module = node.module or ""
            if node.level:
                base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if _root(module) == _root(self.package):
                self.code.internal += [module] + [f"{module}.{a.name}" for a in node.names if a.name != "*"]
        if node.level or not node.module or _root(node.module) not in TARGETS:
            return
        for alias in node.names:
            if alias.name == "*":
                self._reference(node.lineno, node.module)
                continue
            self._reference(node.lineno, f"{node.module}:{alias.name}")
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            self.objects.add(alias.asname or alias.name)

    def visit_Try(self, node: ast.Try) -> None:
        catches = False
        for handler in node.handlers:
            names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            for item in names:
                if item is None or (isinstance(item, ast.Name) and item.id in _CATCHES_IMPORT):
                    catches = True
        self.guarded += catches
        for statement in node.body:
            self.visit(statement)
        self.guarded -= catches
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def _chain(self, node: ast.expr) -> list[str] | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(node.id)
        return parts[::-1]

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.code.attributes.setdefault(node.attr, node.lineno)
        owner = node.value
        owner_name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
        if owner_name:
            self.code.attributes.setdefault(f"{owner_name}.{node.attr}", node.lineno)
        chain = self._chain(node)
        if chain and chain[0] in self.aliases:
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                chain = chain[:-1]  # assigning an attribute needs only its owner
            # "?": an attribute chain, resolved later; after it, how many parts a from-import bound
            bound = len(self.aliases[chain[0]].split(".")) if chain[0] in self.objects else 0
            if len(chain) > 1:
                dotted = ".".join([self.aliases[chain[0]], *chain[1:]])
                self._reference(node.lineno, f"{dotted}?{bound}")
            return  # the inner parts of the chain are the same reference
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice
        target = node.value
        name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
        if name and isinstance(key, ast.Constant) and isinstance(key.value, str):
            self.code.subscripts.setdefault(f"{name}[{key.value}]", node.lineno)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = (
            function.attr
            if isinstance(function, ast.Attribute)
            else function.id
            if isinstance(function, ast.Name)
            else ""
        )
        if name:
            for keyword in node.keywords:
                if keyword.arg:
                    self.code.keywords.setdefault(f"{name}({keyword.arg})", node.lineno)
            if self.classes:
                self.classes[-1].calls.add(name)
            if name == "get" and isinstance(function, ast.Attribute) and node.args:
                first = node.args[0]
                owner = function.value
                owner_name = (
                    owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
                )
                if owner_name and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    self.code.subscripts.setdefault(f"{owner_name}[{first.value}]", node.lineno)
            if name == "getattr" and len(node.args) >= 2:
                second = node.args[1]
                if isinstance(second, ast.Constant) and isinstance(second.value, str):
                    self.code.attributes.setdefault(second.value, node.lineno)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = []
        for base in node.bases:
            chain = self._chain(base)
            if chain is None:
                continue
            if chain[0] in self.aliases:
                bases.append(".".join([self.aliases[chain[0]], *chain[1:]]))
            else:
                bases.append(chain[-1])
        cls = _Class(node.name, self.code.file, node.lineno, bases)
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                cls.methods.add(statement.name)
                cls.signatures[statement.name] = statement.args
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(statement, ast.Assign):
                targets, value = statement.targets, statement.value
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                targets, value = [statement.target], statement.value
            cls.assigned.update(t.id for t in targets if isinstance(t, ast.Name))
            if isinstance(value, (ast.List, ast.Tuple)):
                cls.list_attributes.update(t.id for t in targets if isinstance(t, ast.Name))
        self.code.classes.append(cls)
        self.classes.append(cls)
        self.generic_visit(node)
        self.classes.pop()


def _read(path: Path, label: str, package: str | None = None) -> _Code | Finding:
    code = _Code(label)
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError) as error:
        return Finding(
            label, getattr(error, "lineno", None) or 0, "file", label, "unknown", None, f"not parsed: {error}"
        )
    _Reader(code, package).visit(tree)
    return code


# Libraries that are no longer maintained and break on their own imports: a model that imports them fails
# when they do, so what they import when imported is scanned too.
ARCHIVED = ("transformers_stream_generator", "auto_gptq")
_MAX_LIBRARY_FILES = 300


def _executed(library: _Library, module: str, cache: dict[str, _Code | None]) -> list[_Code]:
    """The files of an archived library that ``import module`` runs: its packages, itself, what they import."""
    todo, order = [module], []
    while todo and len(cache) < _MAX_LIBRARY_FILES:
        name = todo.pop()
        parts = name.split(".")
        for cut in range(1, len(parts) + 1):
            current = ".".join(parts[:cut])
            if current in cache:
                continue
            path = library.file(current)
            root = library.root_dir(_root(current))
            code = None
            if isinstance(path, Path) and path.suffix == ".py" and root is not None:
                package = current if path.name == "__init__.py" else current.rpartition(".")[0] or current
                label = f"{_root(current)}/{path.relative_to(root).as_posix()}"
                read = _read(path, label, package)
                code = read if isinstance(read, _Code) else None
            cache[current] = code
            if code is not None:
                order.append(code)
                todo += code.internal
    return order


def python_files(path: Path) -> list[Path]:
    """The ``.py`` files a PATH stands for: the file itself, or every one under a folder."""
    if path.is_file():
        return [path] if path.suffix == ".py" else []
    files: list[Path] = []
    for folder, directories, names in os.walk(path):
        directories[:] = sorted(d for d in directories if d not in _SKIP_DIRS)
        files += [Path(folder, name) for name in sorted(names) if name.endswith(".py")]
        if len(files) > _MAX_FILES:
            raise ScanError(f"{path}: more than {_MAX_FILES} Python files; point hotfix scan at a model folder")
    return files


# -- resolving names against the installed libraries -------------------------------------


@final
class _Module:
    """What reading one library module's source says it binds."""

    __slots__ = ("classes", "lazy", "names", "opaque", "origins", "public", "source", "stars")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.origins: dict[str, str] = {}  # a from-imported name -> the module it comes from
        self.classes: dict[str, ast.ClassDef] = {}
        self.source = b""
        self.stars: list[str] = []
        self.public: set[str] | None = None  # a literal __all__
        self.lazy = False  # transformers' _LazyModule: names come from its import structure
        self.opaque = False  # a module __getattr__ or a star import that cannot be read


def _read_stub(path: Path, name: str, info: _Module) -> None:
    source = path.read_bytes()
    for pattern in (_STUB_NAME, _STUB_REEXPORT):
        info.names.update((first or second).decode() for first, second in pattern.findall(source))
    package = name if path.name == "__init__.pyi" else name.rpartition(".")[0]
    for module in _STUB_STAR.findall(source):
        text = module.decode()
        dots = len(text) - len(text.lstrip("."))
        if dots:
            base = package.split(".")
            text = ".".join(base[: len(base) - dots + 1] + ([text[dots:]] if text[dots:] else []))
        info.stars.append(text)


def _read_source(path: Path, name: str, info: _Module) -> None:
    source = path.read_bytes()
    tree = ast.parse(source)
    info.lazy = re.search(rb"sys\.modules\[__name__\]\s*=", source) is not None  # replaces itself
    info.source = source
    info.opaque = info.opaque or b"globals()[" in source  # names bound at run time
    package = name if path.name in ("__init__.py", "__init__.pyi") else name.rpartition(".")[0]

    def absolute(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def dynamic_star(node: ast.For) -> None:
        """``for n in dir(M): globals()[n] = ...`` re-exports M (torch does so with _VariableFunctions)."""
        call = node.iter
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dir"):
            return
        if not call.args or not any(
            isinstance(t, ast.Subscript) and isinstance(t.value, ast.Call)
            and isinstance(t.value.func, ast.Name) and t.value.func.id == "globals"
            for item in ast.walk(node) if isinstance(item, ast.Assign) for t in item.targets
        ):  # fmt: skip
            return
        parts: list[str] = []
        target = call.args[0]
        while isinstance(target, ast.Attribute):
            parts.insert(0, target.attr)
            target = target.value
        if isinstance(target, ast.Name):
            origin = info.origins.get(target.id, "").replace(":", ".")
            info.stars.append(".".join([origin or f"{package}.{target.id}", *parts]))

    def walk(statements: Iterable[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.For):
                dynamic_star(node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                info.names.add(node.name)
                if isinstance(node, ast.ClassDef):
                    info.classes.setdefault(node.name, node)
                if node.name == "__getattr__":
                    info.opaque = True
            elif isinstance(node, ast.Import):
                info.names.update(a.asname or _root(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        info.stars.append(absolute(node))
                    else:
                        info.names.add(alias.asname or alias.name)
                        info.origins.setdefault(alias.asname or alias.name, f"{absolute(node)}:{alias.name}")
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):  # Old = New
                    for target in targets:
                        if isinstance(target, ast.Name) and target.id != node.value.id:
                            info.origins.setdefault(target.id, f"{name}:{node.value.id}")
                for target in targets:
                    for item in ast.walk(target):
                        if isinstance(item, ast.Name):
                            info.names.add(item.id)
                if (
                    isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                    and isinstance(node.value, (ast.List, ast.Tuple))
                    and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts)
                ):
                    info.public = {str(e.value) for e in node.value.elts if isinstance(e, ast.Constant)}
                elif any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                    info.public = None  # computed: every public name counts
            for block in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, block, None)
                if children and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    walk(child for child in children if isinstance(child, ast.stmt))
                    for handler in children:
                        if isinstance(handler, ast.ExceptHandler):
                            walk(handler.body)

    walk(tree.body)


class _Library:
    """Static answers from the libraries' source files, without importing them.

    ``known`` holds the answers of earlier scans on this environment
    (:func:`load_answers`); new definite answers are added to it.
    """

    def __init__(self, known: dict[str, Any] | None = None) -> None:
        self.modules: dict[str, _Module | None] = {}
        self.known: dict[str, Any] = {} if known is None else known
        self.learned = False

    @functools.cache  # noqa: B019 - one instance per scan
    def root_dir(self, root: str) -> Path | None:
        try:
            spec = importlib.util.find_spec(root)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def file(self, module: str) -> Path | Literal["extension"] | None:
        base = self.root_dir(_root(module))
        if base is None:
            return None
        *parents, last = module.split(".")[1:] or [""]
        folder = base.joinpath(*parents)
        if not last:
            return base / "__init__.py"
        if (folder / last / "__init__.py").is_file():
            return folder / last / "__init__.py"
        if (folder / f"{last}.py").is_file():
            return folder / f"{last}.py"
        for stub in (folder / last / "__init__.pyi", folder / f"{last}.pyi"):  # a compiled module's stub
            if stub.is_file():
                return stub
        if folder.is_dir() and any(p.name.startswith(last + ".") for p in folder.glob(f"{last}.*")):
            return "extension"
        if (folder / last).is_dir():
            return folder / last  # a namespace package
        return None

    def module(self, name: str) -> _Module | None:
        if name in self.modules:
            return self.modules[name]
        path = self.file(name)
        info: _Module | None = None
        if isinstance(path, Path):
            info = _Module()
            if path.is_dir() or path.suffix not in (".py", ".pyi"):
                info.opaque = path.suffix != ""
            elif path.suffix == ".pyi":
                # A stub (of a compiled module) is read for what it names at its top level; it may be
                # incomplete, so what it does not name is asked. torch's are megabytes: no AST for them.
                with contextlib.suppress(OSError):
                    _read_stub(path, name, info)
                info.opaque = True
            else:
                try:
                    _read_source(path, name, info)
                except (SyntaxError, ValueError, OSError):
                    info.opaque = True
        elif path == "extension":
            info = _Module()
            info.opaque = True
        self.modules[name] = info
        return info

    def has(self, module: str, name: str, depth: int = 0) -> bool | None:
        """Whether ``module`` binds ``name``: True, False, or None when reading cannot tell."""
        info = self.module(module)
        if info is None:
            return None if depth else False
        if self.file(f"{module}.{name}") is not None:
            return True
        if name in info.names:
            return True
        if info.lazy:
            served = self.served(module)
            return None if served is None else name in served
        answer: bool | None = None if info.opaque else False
        for star in info.stars:
            inner = self.module(star)
            if inner is None or depth > 3:
                answer = None
                continue
            if inner.public is not None and name not in inner.public:
                continue
            if name.startswith("_") and inner.public is None:
                continue
            found = self.has(star, name, depth + 1)
            if found:
                return True
            if found is None:
                answer = None
        return answer

    def served(self, module: str) -> set[str] | None:
        """Every name a transformers-style lazy package serves, read from its sources; None when they cannot tell.

        Such a package binds what its ``_import_structure`` lists and, where it
        calls ``define_import_structure``, the ``__all__`` of every file under
        the folder it names (what ``_LazyModule`` reads at import time).
        """
        key = f"served:{module}"
        if isinstance(self.known.get(key), list):
            return set(self.known[key])
        info = self.module(module)
        path = self.file(module)
        if info is None or not isinstance(path, Path) or path.suffix != ".py":
            return None
        served = set(info.names)
        tree = ast.parse(info.source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.Expr, ast.AugAssign)) and "_import_structure" in ast.dump(node):
                for item in ast.walk(node):
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        served.add(item.value.split(".")[0])  # a listed name, or a submodule ("models.auto")
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "define_import_structure":
                folder = path.parent
                for item in ast.walk(node.args[0]) if node.args else ():
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        folder = folder / item.value
                if not folder.is_dir():
                    return None
                served |= _exported(folder)
        served |= {p.stem for p in path.parent.glob("*.py")} | {p.name for p in path.parent.iterdir() if p.is_dir()}
        self.known[key] = sorted(served)
        self.learned = True
        return served

    def find_class(self, module: str, name: str, depth: int = 0) -> tuple[str, ast.ClassDef] | None:
        """Where class *name* as seen from *module* is defined: ``(module, ClassDef)``, following imports."""
        info = self.module(module)
        if info is None or depth > 6:
            return None
        if name in info.classes:
            return module, info.classes[name]
        if name in info.origins:
            origin, _, original = info.origins[name].partition(":")
            return self.find_class(origin, original, depth + 1)
        if info.lazy:
            return None  # its stars are the whole package (transformers' models): too much to read for one class
        for star in info.stars:
            found = self.find_class(star, name, depth + 1)
            if found is not None:
                return found
        return None

    def method(self, module: str, cls: ast.ClassDef, name: str, depth: int = 0) -> tuple[str, ast.arguments] | None:
        """The arguments of method *name* on a library class or the nearest base that defines it."""
        for statement in cls.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == name:
                return f"{module.rpartition('.')[2]}.{cls.name}.{name}", statement.args
        if depth > 8:
            return None
        for base in cls.bases:
            base_name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
            found = self.find_class(module, base_name) if base_name else None
            if found is not None:
                answer = self.method(found[0], found[1], name, depth + 1)
                if answer is not None:
                    return answer
        return None

    def exists(self, module: str) -> bool | None:
        """Whether ``module`` can be found: True, False, or None when reading cannot tell."""
        if self.root_dir(_root(module)) is None:
            return False
        if self.file(module) is not None:
            return True
        parent, _, last = module.rpartition(".")
        info = self.module(parent) if parent else None
        if info is None:
            return False if parent and self.exists(parent) is False else None
        if last in info.names or ((info.lazy or info.opaque) and last.encode() in info.source):
            return None  # a name the package binds, or serves (transformers' aliases of old paths): ask
        return False


_STUB_NAME = re.compile(rb"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)|^([A-Za-z_]\w*)\s*[:=]", re.MULTILINE)
_STUB_REEXPORT = re.compile(rb"\bimport\s+[A-Za-z_]\w*\s+as\s+([A-Za-z_]\w*)|,\s*[A-Za-z_]\w*\s+as\s+([A-Za-z_]\w*)")
_STUB_STAR = re.compile(rb"^from\s+([.\w]+)\s+import\s+\*", re.MULTILINE)
_ALL = re.compile(rb"^__all__\s*=\s*[\[(]([^\])]*)[\])]", re.MULTILINE)
_STRING = re.compile(rb"[\"']([A-Za-z_]\w*)[\"']")


def _exported(folder: Path) -> set[str]:
    """The names in the ``__all__`` of every module under *folder* (as transformers' import structure reads them)."""
    names: set[str] = set()
    for file in folder.rglob("*.py"):
        if file.name == "__init__.py" or file.name.startswith(("convert_", "modular_")):
            continue
        try:
            source = file.read_bytes()
        except OSError:
            continue
        for match in _ALL.finditer(source):
            names.update(m.decode() for m in _STRING.findall(match[1]))
    return names


def _fingerprint() -> str:
    from importlib import metadata

    parts = [sys.version, sys.prefix]
    for root in TARGETS:
        try:
            parts.append(f"{root}={metadata.version(DISTRIBUTIONS.get(root, root))}")
        except metadata.PackageNotFoundError:
            parts.append(f"{root}=-")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def cache_dir() -> Path:
    """Where hotfix keeps the answers it had to import a library for (``HOTFIX_CACHE_DIR`` moves it)."""
    configured = os.environ.get("HOTFIX_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "hotfix")


_ASK = r"""
import importlib, json, sys
answers = {}
for key in json.load(sys.stdin):
    module, _, name = key.partition(":")
    try:
        obj = importlib.import_module(module)
        if not name:
            answers[key] = True
        elif hasattr(obj, name):
            answers[key] = True
        else:
            try:
                importlib.import_module(module + "." + name)
                answers[key] = True
            except ModuleNotFoundError:
                answers[key] = False
    except ModuleNotFoundError as error:
        missing = error.name or ""
        answers[key] = False if module == missing or module.startswith(missing + ".") else "error: " + repr(error)[:300]
    except BaseException as error:
        answers[key] = "error: " + repr(error)[:300]
print("HOTFIX-SCAN " + json.dumps(answers))
"""


def _cache_path() -> Path:
    return cache_dir() / f"scan-{_fingerprint()}.json"


def load_answers() -> dict[str, Any]:
    """The answers known for this environment (names, modules, library method signatures)."""
    try:
        known: dict[str, Any] = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def save_answers(known: dict[str, Any]) -> None:
    """Keep the answers for the next scan on this environment; a read-only home only costs the next scan time."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass


def _ask_library(keys: Sequence[str]) -> dict[str, bool | str]:
    """Import the library modules (never model code) in a subprocess with hotfix off, and ask."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTFIX_")}
    environment["TRANSFORMERS_VERBOSITY"] = "error"
    with tempfile.TemporaryDirectory(prefix="hotfix-scan-") as cwd:
        try:
            done = subprocess.run(
                [sys.executable, "-c", _ASK], input=json.dumps(sorted(keys)), capture_output=True, text=True,
                env=environment, cwd=cwd, timeout=600, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as error:
            return {k: f"error: the library could not be asked ({type(error).__name__}: {error})" for k in keys}
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("HOTFIX-SCAN ")), None)
    if line is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {k: f"error: the library could not be asked ({tail[0][:200]})" for k in keys}
    answers: dict[str, bool | str] = json.loads(line[len("HOTFIX-SCAN ") :])
    return answers


# -- what patches cover ----------------------------------------------------------------


def patch_triggers(patch: Patch) -> tuple[str, ...]:
    """The scan triggers of a patch: its declared ``scan`` list, and what a data shape restores."""
    triggers = list(patch.scan)
    details = patch.details
    if patch.shape == "removed-module":
        triggers.append(f"import:{details['module']}")
    elif patch.shape in ("moved-name", "restored-attribute"):
        owner, _, cls = str(details["owner"]).partition(":")
        triggers.append(f"attr:{details['name']}" if cls else f"import:{owner}:{details['name']}")
    return tuple(dict.fromkeys(triggers))


def _ancestry(cls: _Class, classes: dict[str, list[_Class]], seen: set[str] | None = None) -> Iterator[str]:
    """Last components of every base, following classes defined in the scanned code."""
    seen = set() if seen is None else seen
    for base in cls.bases:
        last = base.rpartition(".")[2]
        if last in seen:
            continue
        seen.add(last)
        yield last
        if "." not in base:
            for local in classes.get(base, []):
                yield from _ancestry(local, classes, seen)


def _local_chain(cls: _Class, classes: dict[str, list[_Class]]) -> list[_Class]:
    chain, todo, seen = [], [cls], set()
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        chain.append(item)
        for base in item.bases:
            if "." not in base:
                todo += classes.get(base, [])
    return chain


def _shape_hits(trigger: str, codes: Sequence[_Code], classes: dict[str, list[_Class]]) -> list[tuple[str, int, str]]:
    """Where the code has the shape ``trigger`` names: ``(file, line, what)``."""
    kind, _, argument = trigger.partition(":")
    hits: list[tuple[str, int, str]] = []
    if kind == "attr":
        for code in codes:
            if argument in code.attributes:
                hits.append((code.file, code.attributes[argument], f".{argument}"))
    elif kind == "subscript":
        for code in codes:
            if argument in code.subscripts:
                hits.append((code.file, code.subscripts[argument], argument))
    elif kind == "keyword":
        for code in codes:
            if argument in code.keywords:
                hits.append((code.file, code.keywords[argument], argument))
    elif kind == "uses":
        for code in codes:
            for line, reference, *_ in code.references:
                module = reference.partition("?")[0].partition(":")[0]
                if module == argument or module.startswith(argument + "."):
                    hits.append((code.file, line, f"uses {argument}"))
                    break
    elif kind in ("subclass", "override", "class-list", "lacks", "nocall"):
        bases, _, member = argument.partition(".")
        wanted = set(bases.split("|"))
        for code in codes:
            for cls in code.classes:
                if not wanted & set(_ancestry(cls, classes)):
                    continue
                chain = _local_chain(cls, classes)
                if kind == "subclass":
                    hit = True
                elif kind == "override":
                    hit = member in cls.methods
                elif kind == "class-list":
                    hit = member in cls.list_attributes
                elif kind == "lacks":
                    hit = not any(member in c.methods or member in c.assigned for c in chain)
                else:
                    hit = not any(member in c.calls for c in chain)
                if hit:
                    what = {"subclass": "subclass of", "override": "overrides", "class-list": "list",
                            "lacks": "does not define", "nocall": "never calls"}[kind]  # fmt: skip
                    target = f"{bases}.{member}" if member else bases
                    hits.append((cls.file, cls.line, f"class {cls.name}: {what} {target}"))
    return hits


# -- the scan ---------------------------------------------------------------------------


def _gates(patches: Sequence[Patch]) -> dict[str, tuple[bool, str]]:
    """For every patch: whether it would apply here, and if not, why."""
    from ._env import patch_selection
    from ._runtime import select
    from ._versions import gate, installed_version

    chosen = select(patches, patch_selection())
    result = {}
    for patch in patches:
        inside, why = gate(patch.affected, installed_version(patch.distribution))
        if not inside:
            result[patch.id] = (False, f"{patch.id} covers {patch.distribution} {patch.affected} only ({why})")
        elif chosen[patch.id] is not None:
            result[patch.id] = (False, f"{patch.id} covers it but is {chosen[patch.id]}")
        else:
            result[patch.id] = (True, "")
    return result


def scan(path: Path, patches: Sequence[Patch] | None = None) -> dict[str, Any]:
    """Scan one PATH (a model folder, a ``.py`` file, a package, a Hugging Face cache folder)."""
    collecting = gc.isenabled()
    gc.disable()  # the ASTs are large and acyclic: the collector would only rescan them, a third of the time
    try:
        return _scan(path, patches)
    finally:
        if collecting:
            gc.enable()


def _scan(path: Path, patches: Sequence[Patch] | None) -> dict[str, Any]:
    if not path.exists():
        raise ScanError(f"{path}: no such file or folder")
    files = python_files(path)
    if not files:
        raise ScanError(f"{path}: no Python file to scan")
    if patches is None:
        from ._runtime import RUNTIME

        patches = RUNTIME.plugins.collected().patches
    base = path if path.is_dir() else path.parent
    codes: list[_Code] = []
    findings: list[Finding] = []
    for source in files:
        read = _read(source, str(source.relative_to(base)))
        if isinstance(read, Finding):
            findings.append(read)
        else:
            codes.append(read)
    gates = _gates(patches)
    imports: dict[str, list[str]] = {}
    for patch in patches:
        for trigger in patch_triggers(patch):
            if trigger.startswith("import:"):
                imports.setdefault(trigger[len("import:") :], []).append(patch.id)

    library = _Library(load_answers())
    resolved: list[tuple[str, int, str, bool, bool | None]] = []  # file, line, reference, guarded, answer
    library_files: dict[str, _Code | None] = {}
    through: dict[str, list[str]] = {}  # an archived library's module -> the keys importing it needs
    for code in codes:
        for line, reference, guarded, _ in code.references:
            key, answer = _static(library, reference)
            if not key:
                continue
            resolved.append((code.file, line, key, guarded, answer))
            module = key.partition(":")[0]
            if _root(key) in ARCHIVED and module not in through:
                needed = through[module] = []
                for inner in _executed(library, module, library_files):
                    for inner_line, inner_reference, inner_guarded, at_import in inner.references:
                        inner_key, inner_answer = _static(library, inner_reference)
                        if inner_key and at_import and not inner_guarded and _root(inner_key) not in ARCHIVED:
                            resolved.append((inner.file, inner_line, inner_key, False, inner_answer))
                            needed.append(inner_key)
    unsure = sorted({key for *_, key, _, answer in resolved if answer is None and key not in library.known})
    asked = _ask_library(unsure) if unsure else {}
    if asked:
        definite = {k: v for k, v in asked.items() if isinstance(v, bool)}
        library.known.update(definite)
        library.learned = library.learned or bool(definite)
    asked = {**{k: v for k, v in library.known.items() if isinstance(v, bool)}, **asked}

    verdicts: dict[str, Finding] = {}
    seen: set[tuple[str, str]] = set()
    for file, line, key, guarded, answer in resolved:
        if (file, key) in seen:
            continue
        seen.add((file, key))
        value: bool | str | None = answer if answer is not None else asked.get(key, "error: not asked")
        finding = _verdict(file, line, key, guarded, value, library, imports, gates)
        verdicts.setdefault(key, finding)
        findings.append(finding)
    for index, finding in enumerate(findings):
        needed = through.get(finding.name.partition(":")[0], []) if finding.status == "available" else []
        broken = [verdicts[k] for k in needed if verdicts[k].status in ("uncovered", "repaired")]
        if broken:
            worst = min(broken, key=lambda f: f.status != "uncovered")
            why = f"importing it runs {worst.file}:{worst.line}, which needs {worst.name}"
            findings[index] = Finding(
                finding.file, finding.line, "import", finding.name, worst.status, worst.patch, why
            )

    classes: dict[str, list[_Class]] = {}
    for code in codes:
        for cls in code.classes:
            classes.setdefault(cls.name, []).append(cls)
    for patch in patches:
        applies = gates[patch.id][0]
        version_ok = applies or "covers it but is" in gates[patch.id][1]
        if not version_ok:
            continue  # the break is not in the installed version
        hits = [
            (trigger, hit)
            for trigger in patch_triggers(patch)
            if not trigger.startswith("import:")
            for hit in _shape_hits(trigger, codes, classes)
        ]
        if not hits:
            continue
        trigger, (file, line, what) = hits[0]  # one finding per patch: where it is first needed
        if len(hits) > 1:
            what += f", and {len(hits) - 1} more place(s)"
        if applies:
            findings.append(Finding(file, line, "shape", trigger, "repaired", patch.id, what))
        else:
            findings.append(Finding(file, line, "shape", trigger, "uncovered", None, f"{what}; {gates[patch.id][1]}"))

    findings += _overrides(codes, classes, library, patches, gates)
    if library.learned:
        save_answers(library.known)
    order = {"uncovered": 0, "unknown": 1, "review": 2, "repaired": 3, "guarded": 4, "not-installed": 5, "available": 6}
    findings.sort(key=lambda f: (order[f.status], f.file, f.line, f.name))
    counts = {status: sum(f.status == status for f in findings) for status in order}
    return {
        "path": str(path),
        "files": len(files),
        "versions": _versions(),
        "counts": counts,
        "findings": [f.as_dict() for f in findings],
    }


def _parameters(arguments: ast.arguments) -> tuple[list[str], list[str]]:
    """(positional parameters after self/cls, keyword-only parameters)."""
    positional = [a.arg for a in [*arguments.posonlyargs, *arguments.args]][1:]
    return positional, [a.arg for a in arguments.kwonlyargs]


def _upstream(library: _Library, base: str, method: str) -> tuple[str, list[str], list[str]] | None:
    """``(where, positional, keyword-only)`` parameters of the library's *method* as class *base* has it."""
    key = f"signature:{base}.{method}"
    if key in library.known:
        value = library.known[key]
        return (str(value[0]), list(value[1]), list(value[2])) if isinstance(value, list) else None
    module, _, name = base.rpartition(".")
    found = library.find_class(module, name)
    upstream = library.method(found[0], found[1], method) if found else None
    answer = None if upstream is None else (upstream[0], *_parameters(upstream[1]))
    library.known[key] = list(answer) if answer is not None else False
    library.learned = True
    return answer


def _overrides(
    codes: Sequence[_Code], classes: dict[str, list[_Class]], library: _Library, patches: Sequence[Patch],
    gates: dict[str, tuple[bool, str]],
) -> list[Finding]:  # fmt: skip
    """Methods the code overrides that take fewer parameters than the installed library's own (no ``**kwargs``)."""
    covering: dict[str, list[str]] = {}
    for patch in patches:
        for trigger in patch_triggers(patch):
            if trigger.startswith("override:") and gates[patch.id][0]:
                covering.setdefault(trigger.rpartition(".")[2], []).append(patch.id)
    findings = []
    for code in codes:
        for cls in code.classes:
            bases = [b for c in _local_chain(cls, classes) for b in c.bases if "." in b and _root(b) in TARGETS]
            for method, arguments in sorted(cls.signatures.items()):
                if method.startswith("__") or arguments.kwarg is not None:
                    continue
                for base in bases:
                    upstream = _upstream(library, base, method)
                    if upstream is None:
                        continue
                    label, their_positional, their_keywords = upstream
                    my_positional, my_keywords = _parameters(arguments)
                    mine = {*my_positional, *my_keywords}
                    # Parameters the library's method has beyond the override's: calls that pass them fail.
                    # Another name at the same position (a rename) matters only where the library passes it
                    # by keyword, which a patch covering this override says.
                    extra = [p for p in their_positional[len(my_positional) :] if p not in mine]
                    extra += [p for p in their_keywords if p not in mine]
                    if arguments.vararg is not None:
                        extra = [p for p in extra if p in their_keywords]
                    renamed = [p for p in their_positional[: len(my_positional)] if p not in mine]
                    missing = extra + renamed if covering.get(method) else extra
                    if missing:
                        what = f"class {cls.name}: {method}() lacks {', '.join(missing)} of {label}()"
                        if covering.get(method):
                            findings.append(Finding(cls.file, cls.line, "override", f"{cls.name}.{method}", "repaired",
                                                    covering[method][0], what))  # fmt: skip
                        else:
                            why = f"{what}; the library may pass them, and this override has no **kwargs"
                            findings.append(Finding(cls.file, cls.line, "override", f"{cls.name}.{method}", "review",
                                                    None, why))  # fmt: skip
                    break
    return findings


def _verdict(
    file: str, line: int, key: str, guarded: bool, value: bool | str | None, library: _Library,
    imports: dict[str, list[str]], gates: dict[str, tuple[bool, str]],
) -> Finding:  # fmt: skip
    if value is True:
        return Finding(file, line, "import", key, "available")
    if library.root_dir(_root(key)) is None:
        return Finding(file, line, "import", key, "not-installed", None, f"{_root(key)} is not installed")
    if not isinstance(value, bool):
        return Finding(file, line, "import", key, "unknown", None, str(value).removeprefix("error: "))
    module, _, name = key.partition(":")
    covering = imports.get(key, [])
    if name:  # a name of a removed module, or a submodule taken as a name
        covering = covering + imports.get(module, []) + imports.get(f"{module}.{name}", [])
    applying = [p for p in covering if gates[p][0]]
    if applying:
        return Finding(file, line, "import", key, "repaired", applying[0])
    if guarded:
        return Finding(file, line, "import", key, "guarded", None, "missing; imported inside try/except")
    detail = "; ".join(gates[p][1] for p in covering) or "missing here, and no hotfix patch covers it"
    return Finding(file, line, "import", key, "uncovered", None, detail)


def _static(library: _Library, reference: str) -> tuple[str, bool | None]:
    """Normalise a reference to ``module`` or ``module:name``, and answer it from earlier scans or the sources."""
    key, answer = _read_static(library, reference)
    if key and answer is not None and key not in library.known:
        library.known[key] = answer
        library.learned = True
    return key, answer


def _read_static(library: _Library, reference: str) -> tuple[str, bool | None]:
    if "?" in reference:  # an attribute chain: the deepest module, then one attribute
        dotted, _, bound = reference.partition("?")
        parts = dotted.split(".")
        if int(bound) and library.file(".".join(parts[: int(bound)])) is None:
            return "", True  # attributes of an imported object, not of a module: its import is the reference
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            if cut == 1 or library.file(module) is not None:
                if cut == len(parts):
                    return module, _known(library, module, functools.partial(library.exists, module))
                key = f"{module}:{parts[cut]}"
                return key, _known(library, key, functools.partial(library.has, module, parts[cut]))
        return parts[0], library.exists(parts[0])  # pragma: no cover - cut == 1 always returns
    module, _, name = reference.partition(":")
    if not name:
        return module, _known(library, module, functools.partial(library.exists, module))
    if isinstance(library.known.get(reference), bool):
        return reference, library.known[reference]
    if library.file(module) is None:
        exists = _known(library, module, functools.partial(library.exists, module))
        if exists is False:
            return module, False
        return reference, None
    return reference, library.has(module, name)


def _known(library: _Library, key: str, compute: Callable[[], bool | None]) -> bool | None:
    value = library.known.get(key)
    return value if isinstance(value, bool) else compute()


def _versions() -> dict[str, str | None]:
    from ._versions import installed_version

    return {root: installed_version(DISTRIBUTIONS.get(root, root)) for root in TARGETS}


def format_report(report: dict[str, Any], everything: bool = False) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
    lines = [f"hotfix scan {report['path']}: {report['files']} Python file(s); {versions}"]
    for finding in report["findings"]:
        if finding["status"] == "available" and not everything:
            continue
        where = f"{finding['file']}:{finding['line']}"
        shape = finding["kind"] == "shape"
        what = finding["detail"].split("; ")[0] if shape else finding["name"]
        patch = f" -> {finding['patch']}" if finding["patch"] else ""
        rest = "; ".join(finding["detail"].split("; ")[1:]) if shape else finding["detail"]
        detail = f"  ({rest})" if rest else ""
        lines.append(f"  {finding['status']:<9} {where}  {what}{patch}{detail}")
    counts = report["counts"]
    lines.append(
        "  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) if any(counts.values()) else "  nothing found"
    )
    return "\n".join(lines)


def uncovered(report: dict[str, Any]) -> bool:
    return bool(report["counts"].get("uncovered"))
