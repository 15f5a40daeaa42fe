"""The catalogue as text: `schema_markdown` (the schema section of docs/catalogue.md, generated from the
model: every field with its type, default and meaning) and `plain` (a catalogue as plain data with its
secrets shown only as references, for `python -m runbook.catalogue show`)."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from runbook.catalogue.model import (
    Catalogue,
    CatalogueApi,
    Escalation,
    Health,
    Kubernetes,
    PagerDuty,
    Replicas,
    SecretRef,
    Service,
    ServiceDatabase,
    Slack,
    Timings,
)

__all__ = ["MODELS", "plain", "schema_markdown"]

MODELS: tuple[type[BaseModel], ...] = (
    Catalogue,
    Service,
    Kubernetes,
    Replicas,
    Health,
    ServiceDatabase,
    SecretRef,
    CatalogueApi,
    Slack,
    PagerDuty,
    Escalation,
    Timings,
)
"""The models of the file, in the order the schema describes them."""

_TITLES = {model: model.__name__ for model in MODELS}
_TITLES[Catalogue] = "The file"
_TITLES[Service] = "A service (`services[]`)"
_TITLES[SecretRef] = "A secret reference"


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


# The validated text types of the settings and the catalogue, by their validator's name.
_CHECKED = {
    "http_url": "http(s) URL",
    "_path": "path (`/...`)",
    "_channel": "Slack channel (`#...`)",
    "_handle": "Slack handle (`@...`)",
    "_dns_label": "Kubernetes name",
}


def _checked(metadata: Any) -> str | None:
    for meta in metadata:
        name = getattr(getattr(meta, "func", None), "__name__", None)
        if name in _CHECKED:
            return _CHECKED[name]
    return None


def _type_name(annotation: Any, metadata: Any = ()) -> str:
    checked = _checked(metadata)
    if checked is not None:
        return checked
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0], getattr(annotation, "__metadata__", ()))
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        return " \\| ".join(names) + (" (optional)" if type(None) in get_args(annotation) else "")
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if isinstance(annotation, type) and annotation in _TITLES:
        name = "secret reference" if annotation is SecretRef else annotation.__name__
        return f"[{name}](#{_anchor(annotation)})"
    if isinstance(annotation, type):
        plain_names = {
            "str": "text",
            "float": "number",
            "int": "integer",
            "bool": "true/false",
            "Path": "path",
        }
        return plain_names.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "(unset)"
    if isinstance(value, BaseModel):
        return "(its defaults)"
    if value == []:
        return "(none)"
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def _meaning(field: FieldInfo) -> str:
    text = field.description or ""
    bounds = [
        f"{sign} {getattr(meta, attr)}"
        for meta in field.metadata
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >="))
        if getattr(meta, attr, None) is not None
    ]
    if bounds:
        text += f" ({', '.join(bounds)})"
    return text.replace("|", "\\|")


def schema_markdown() -> str:
    """The schema section of docs/catalogue.md: one table per model, generated from it."""
    out: list[str] = []
    for model in MODELS:
        out += [f'### {_TITLES[model]} <a id="{_anchor(model)}"></a>', "", (model.__doc__ or "").strip(), ""]
        out += ["| Field | Type | Default | Meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            out.append(
                f"| `{name}` | {_type_name(field.annotation, field.metadata)} | {_default(field)} | {_meaning(field)} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def plain(value: Any) -> Any:
    """`value` (a catalogue or part of one) as plain data; a secret appears as its reference only."""
    if isinstance(value, SecretRef):
        return {"env": value.env} if value.env is not None else {"file": str(value.file)}
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
