"""The generated references: docs/settings.md, docs/contracts.md and the generated sections of
docs/catalogue.md, produced from the code.

Usage::

    $ python -m runbook.docs contracts > docs/contracts.md   # one document on stdout
    $ python -m runbook.docs settings > docs/settings.md
    $ python -m runbook.docs --write                         # every generated document, in place
                                                             # (docs/catalogue.md: its marked sections)
    $ python -m runbook.docs --check                         # exit 1 naming the stale ones

The contracts page is the public API of the packages, read with `inspect`: for each module of
`CONTRACT_MODULES` (`package.*` stands for every module in it, so a new module appears by itself), its
docstring's first paragraph, then each public name (`__all__`, else what the module defines without a
leading `_`) with its signature and the first paragraph of its docstring. Prefect flows and tasks are
shown by their function's signature. What a module promises beyond its signatures belongs in its
docstrings, which is where this page reads it. tests/runbook/test_generated_docs.py fails when a document
is not current, with the command that regenerates it.

docs/catalogue.md is prose written by hand with two generated sections, each between
`<!-- generated: NAME -->` and `<!-- end: NAME -->`: `example` (docs/examples/catalogue.example.yaml, the
file `python -m runbook.catalogue check` is tested on) and `schema` (the catalogue's model). Only
`--write` regenerates it: the rest of the page is read from the file itself.

This module imports the packages it documents only when a document is generated (`tasks` and `flows`
bring Prefect in); `runbook` itself keeps no Prefect import.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["CONTRACT_MODULES", "GENERATED", "contracts_markdown", "generated", "splice", "stale"]

REPO = Path(__file__).resolve().parents[1]

# What docs/contracts.md covers, in reading order: a module, or `package.*` for the package and every
# module in it (so a module added there appears by itself). Edit freely.
CONTRACT_MODULES: tuple[str, ...] = (
    "runbook.severity",
    "runbook.models",
    "runbook.errors",
    "runbook.policy",
    "runbook.store",
    "runbook.settings",
    "runbook.catalogue.*",
    "runbook.drills",
    "runbook.postmortem",
    "runbook.drill_history",
    "runbook.messages",
    "tasks.*",
    "flows.*",
    "intake.*",
    "sandbox.k8s",
    "sandbox.world",
    "sandbox.service",
    "sandbox.faults",
    "sandbox.control",
    "sandbox.testing",
    "sandbox.demo.*",
)
_SKIP = re.compile(r"(^|\.)(__main__|conftest)$")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")
_QUALIFIED = re.compile(r"\b(?:[a-z_][a-z0-9_]*\.)+([A-Za-z_]\w*)")


def _settings_markdown() -> str:
    from runbook.settings import reference_markdown

    return reference_markdown()


CATALOGUE_EXAMPLE = "docs/examples/catalogue.example.yaml"


def _catalogue_sections() -> dict[str, str]:
    from runbook.catalogue import schema_markdown

    example = (REPO / CATALOGUE_EXAMPLE).read_text(encoding="utf-8")
    return {
        "example": f"`{CATALOGUE_EXAMPLE}`:\n\n```yaml\n{example.rstrip()}\n```\n",
        "schema": schema_markdown(),
    }


def splice(text: str, sections: dict[str, str]) -> str:
    """`text` with what lies between `<!-- generated: NAME -->` and `<!-- end: NAME -->` replaced by
    `sections[NAME]` (a marker missing from `text` raises ValueError naming it)."""
    for name, body in sections.items():
        start, end = f"<!-- generated: {name} -->", f"<!-- end: {name} -->"
        head, sep, rest = text.partition(start)
        _old, sep2, tail = rest.partition(end)
        if not sep or not sep2:
            raise ValueError(f"markers {start} ... {end} not found")
        text = f"{head}{start}\n{body}{end}{tail}"
    return text


def _catalogue_markdown() -> str:
    return splice((REPO / "docs/catalogue.md").read_text(encoding="utf-8"), _catalogue_sections())


def contracts_markdown(modules: tuple[str, ...] = CONTRACT_MODULES) -> str:
    """docs/contracts.md: the public API of `modules`, generated (see the module docstring)."""
    out = [
        "# Contracts between the packages",
        "",
        "The public API each module offers the others, generated from the code by",
        "`python -m runbook.docs contracts > docs/contracts.md` (a test keeps this page current; the",
        "guarantees are in the docstrings, so change them with the code). Per module: what it is for, then",
        "each public name with its signature and what its docstring says first.",
        "",
    ]
    for name in _expand(modules):
        out += _module_section(importlib.import_module(name))
    return "\n".join(out).rstrip("\n") + "\n"


def _expand(modules: tuple[str, ...]) -> Iterator[str]:
    seen: set[str] = set()
    for entry in modules:
        name = entry.removesuffix(".*")
        module = importlib.import_module(name)
        names = [name]
        if entry.endswith(".*") and hasattr(module, "__path__"):  # the package first, then its modules
            names += sorted(
                info.name
                for info in pkgutil.walk_packages(module.__path__, prefix=f"{name}.")
                if not _SKIP.search(info.name)
            )
        for item in names:
            if item not in seen:
                seen.add(item)
                yield item


def _module_section(module: ModuleType) -> list[str]:
    public = list(_public(module))
    documented = frozenset(obj for _, obj in public if inspect.isclass(obj))
    entries = [line for obj_name, obj in public for line in _entry(obj_name, obj, documented)]
    summary = _paragraph(module.__doc__)
    if not entries and not summary:
        return []
    path = module.__name__.replace(".", "/") + ("/__init__.py" if hasattr(module, "__path__") else ".py")
    out = [f"## {path}", ""]
    if summary:
        out += [summary, ""]
    if entries:
        out += [*entries, ""]
    return out


def _public(module: ModuleType) -> Iterator[tuple[str, Any]]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        for name in exported:
            if hasattr(module, name):
                yield name, getattr(module, name)
        return
    for name, obj in vars(module).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        origin = getattr(_function_of(obj) or obj, "__module__", None)
        if origin == module.__name__ and (callable(obj) or inspect.isclass(obj)):
            yield name, obj


def _function_of(obj: Any) -> Callable[..., Any] | None:
    """The function behind a Prefect flow or task (they keep it as `.fn`), else None."""
    fn = getattr(obj, "fn", None)
    kind = type(obj).__name__
    return fn if kind in ("Flow", "Task") and callable(fn) else None


def _entry(name: str, obj: Any, documented: frozenset[type] = frozenset()) -> list[str]:
    fn = _function_of(obj)
    if fn is not None:
        kind = type(obj).__name__.lower()
        label = f"{kind} `{name}{_signature(fn)}`"
        if getattr(obj, "name", name) not in (name, name.replace("_", "-")):
            label += f" (named `{obj.name}`)"
        return [_line(label, fn.__doc__)]
    if inspect.isclass(obj):
        return _class_entry(name, obj, documented)
    if callable(obj):
        return [_line(f"`{name}{_signature(obj)}`", obj.__doc__)]
    return [f"- `{name}`: {_value(obj)}"]


def _class_entry(name: str, cls: type, documented: frozenset[type] = frozenset()) -> list[str]:
    if issubclass(cls, enum.Enum):
        members = ", ".join(f"`{m.name}`" for m in cls)
        return [_line(f"enum `{name}`: {members}", cls.__doc__, own_doc=_own_doc(cls))]
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):  # a pydantic model: its fields say more than its __init__
        shown = ", ".join(
            f"{field}: {_field_annotation(cls, field, info.annotation)}" for field, info in fields.items()
        )
        head = f"model `{name}({shown})`"
    elif issubclass(cls, BaseException):
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        head = f"exception `{name}({bases})`"
    else:
        head = f"class `{name}{_signature(cls)}`"
    lines = [_line(head, cls.__doc__, own_doc=_own_doc(cls))]
    seen: set[str] = set()
    for klass in _own_layers(
        cls, documented
    ):  # the class, then the project's classes it is built from (mixins, layers)
        origin = "" if klass is cls else f" (from `{klass.__name__}`)"
        for attr, member in vars(klass).items():
            if attr.startswith("_") or attr in seen or not _is_method(member):
                continue
            seen.add(attr)
            target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            label = f"`.{attr}`" if isinstance(member, property) else f"`.{attr}{_signature(member)}`"
            lines.append("  " + _line(label + origin, getattr(target, "__doc__", None)))
    return lines


def _own_layers(cls: type, documented: frozenset[type]) -> list[type]:
    """`cls` and the classes of this project in its MRO (a layered class, or a store built of mixins),
    so inherited methods are listed with the class people use; library bases (pydantic, Protocol) are
    not, nor a base documented on the same page (`SqliteStore` under `Store`: its entry has them)."""
    packages = {m.split(".")[0] for m in CONTRACT_MODULES}
    layers = [cls]
    for klass in cls.__mro__[1:]:
        if klass in documented:
            break
        if klass.__module__.split(".")[0] in packages:
            layers.append(klass)
    return layers


def _own_doc(cls: type) -> bool:
    return "__doc__" in vars(cls) and bool(vars(cls)["__doc__"])


def _is_method(member: Any) -> bool:
    return inspect.isfunction(member) or isinstance(member, classmethod | staticmethod | property)


def _signature(obj: Any) -> str:
    target = obj.__func__ if isinstance(obj, classmethod | staticmethod) else obj
    if isinstance(target, property):
        return ""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return "(...)"
    params = []
    for param in sig.parameters.values():
        if param.name in ("self", "cls"):
            continue
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text = "*" + text
        elif param.kind is param.VAR_KEYWORD:
            text = "**" + text
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {_value(param.default)}"
        params.append(text)
    kinds = [p.kind for p in sig.parameters.values() if p.name not in ("self", "cls")]
    if inspect.Parameter.KEYWORD_ONLY in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds:
        params.insert(kinds.index(inspect.Parameter.KEYWORD_ONLY), "*")
    returns = ""
    if sig.return_annotation is not sig.empty and not inspect.isclass(target):
        returns = f" -> {_annotation(sig.return_annotation)}"
    return f"({', '.join(params)}){returns}"


def _annotation(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    text = inspect.formatannotation(annotation).replace("NoneType", "None")
    return _QUALIFIED.sub(r"\1", _ADDRESS.sub("", text))


def _field_annotation(cls: type, field: str, evaluated: Any) -> str:
    """A model field's annotation as written in the source (`NonEmpty | None`), else as evaluated."""
    for klass in cls.__mro__:
        written = vars(klass).get("__annotations__", {}).get(field)
        if written is not None:
            return _annotation(written)
    return _annotation(evaluated)


def _value(value: Any) -> str:
    if isinstance(value, dict | list | tuple | set | frozenset) and len(repr(value)) > 60:
        return f"{type(value).__name__} of {len(value)}"
    text = _ADDRESS.sub("", repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line (code examples stop it)."""
    if not doc:
        return ""
    lines: list[str] = []
    for raw in inspect.cleandoc(doc).splitlines():
        line = raw.strip()
        if not line or line.endswith("::"):
            if line:
                lines.append(line.rstrip(":") + ".")
            break
        lines.append(line)
    return " ".join(lines)


def _line(label: str, doc: str | None, own_doc: bool = True) -> str:
    text = _paragraph(doc) if own_doc else ""
    return f"- {label}" + (f": {text}" if text else "")


GENERATED: dict[str, Callable[[], str]] = {
    "docs/settings.md": _settings_markdown,
    "docs/contracts.md": contracts_markdown,
    "docs/catalogue.md": _catalogue_markdown,
}
"""Each generated document (path in the repository) and what produces it."""

_COMMANDS = {"docs/settings.md": "settings", "docs/contracts.md": "contracts"}


def generated(path: str) -> str:
    """The current text of the generated document `path` (a key of `GENERATED`)."""
    return GENERATED[path]()


def stale(root: Path = REPO) -> list[str]:
    """The generated documents whose file under `root` differs from what the code produces now."""
    out = []
    for path, produce in GENERATED.items():
        file = root / path
        if not file.is_file() or file.read_text(encoding="utf-8") != produce():
            out.append(path)
    return out


def command(path: str) -> str:
    """The command that regenerates `path`."""
    if path not in _COMMANDS:  # partly written by hand: regenerated in place
        return "python -m runbook.docs --write"
    return f"python -m runbook.docs {_COMMANDS[path]} > {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook.docs", description=__doc__.splitlines()[0])
    parser.add_argument("document", nargs="?", choices=sorted(_COMMANDS.values()), help="print one document")
    parser.add_argument("--write", action="store_true", help="write every generated document in place")
    parser.add_argument("--check", action="store_true", help="exit 1 naming the documents not current")
    args = parser.parse_args(argv)
    if args.document:
        path = next(p for p, c in _COMMANDS.items() if c == args.document)
        sys.stdout.write(generated(path))
        return 0
    if args.write:
        for path, produce in GENERATED.items():
            (REPO / path).write_text(produce(), encoding="utf-8")
            print(f"wrote {path}")
        return 0
    if args.check:
        late = stale()
        for path in late:
            print(f"{path} is not current: {command(path)}", file=sys.stderr)
        return 1 if late else 0
    parser.print_usage(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
