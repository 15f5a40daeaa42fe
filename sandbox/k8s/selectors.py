"""Label and field selectors with the API server's syntax and semantics.

Usage::

    sel = parse_label_selector("app=web,tier in (api,worker),!canary")
    sel.matches({"app": "web", "tier": "api"})          # True
    selector_string({"matchLabels": {"app": "web"}})    # "app=web" (LabelSelectorAsSelector)
    fsel = parse_field_selector("involvedObject.kind=Deployment,type!=Normal")
    fsel.matches(event_dict)

Bad syntax raises `ApiError` 400, as the API server answers it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.k8s.errors import ApiError

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "label_selector_matches",
    "parse_field_selector",
    "parse_label_selector",
    "selector_string",
]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return has and value == self.values[0]
        if self.op == "!=":
            return not has or value != self.values[0]
        if self.op == "in":
            return has and value in self.values
        if self.op == "notin":
            return not has or value not in self.values
        if self.op == "exists":
            return has
        return not has  # "!"

    def __str__(self) -> str:
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        return self.key if self.op == "exists" else f"!{self.key}"


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise ApiError.bad_request(f"unable to parse requirement: unbalanced parentheses in {text!r}")
    parts.append(cur)
    return parts


def _check_key(key: str, whole: str) -> str:
    if not re.fullmatch(_KEY, key):
        raise ApiError.bad_request(f"unable to parse requirement: invalid label key {key!r} in {whole!r}")
    return key


def _check_value(value: str, whole: str) -> str:
    if not re.fullmatch(_VALUE, value) or len(value) > 63:
        raise ApiError.bad_request(f"unable to parse requirement: invalid label value {value!r} in {whole!r}")
    return value


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (ANDed)."""
    if text is None or not text.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise ApiError.bad_request(f"unable to parse requirement: empty requirement in {text!r}")
        m = re.fullmatch(r"(\S+?)\s+(in|notin)\s*\((.*)\)", part)
        if m:
            key, op, vals = m.groups()
            values = tuple(_check_value(v.strip(), text) for v in vals.split(",")) if vals.strip() else ()
            if not values:
                raise ApiError.bad_request(
                    f"unable to parse requirement: {op} needs at least one value in {text!r}"
                )
            reqs.append(Requirement(_check_key(key, text), op, values))
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", part)
        if m:
            key, op, value = m.groups()
            reqs.append(
                Requirement(_check_key(key, text), "!=" if op == "!=" else "=", (_check_value(value, text),))
            )
            continue
        if part.startswith("!"):
            reqs.append(Requirement(_check_key(part[1:].strip(), text), "!"))
            continue
        reqs.append(Requirement(_check_key(part, text), "exists"))
    return LabelSelector(tuple(reqs))


def label_selector_from_spec(spec: dict[str, Any] | None) -> LabelSelector:
    """A `metav1.LabelSelector` (matchLabels + matchExpressions) as a selector (`LabelSelectorAsSelector`)."""
    if not spec:
        return LabelSelector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in sorted((spec.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in spec.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is None:
            raise ApiError.bad_request(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


def selector_string(spec: dict[str, Any] | None) -> str:
    """`metav1.LabelSelectorAsSelector(spec).String()`: what kubectl sends as `labelSelector`."""
    return str(label_selector_from_spec(spec))


def label_selector_matches(spec: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """Does a `metav1.LabelSelector` select these labels? (An empty selector selects everything.)"""
    return label_selector_from_spec(spec).matches(labels)


# Field selectors: the API server supports a fixed set of fields per resource.
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
SUPPORTED_FIELDS: dict[str, tuple[str, ...]] = {
    "Deployment": _COMMON_FIELDS,
    "ReplicaSet": (*_COMMON_FIELDS, "status.replicas"),
    "Pod": (
        *_COMMON_FIELDS,
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Event": (
        *_COMMON_FIELDS,
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Node": ("metadata.name", "spec.unschedulable"),
    "Namespace": ("metadata.name", "status.phase"),
}


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, str, str], ...] = ()  # (field, "=" | "!=", value)

    def matches(self, obj: dict[str, Any]) -> bool:
        for field, op, value in self.terms:
            actual = _field_value(obj, field)
            if (actual == value) != (op == "="):
                return False
        return True

    def value_of(self, field: str) -> str | None:
        """The value required by an `=` term on `field`, if any (e.g. the name a watch is about)."""
        for f, op, v in self.terms:
            if f == field and op == "=":
                return v
        return None


def _field_value(obj: dict[str, Any], field: str) -> str:
    if field == "source":
        return str((obj.get("source") or {}).get("component") or "")
    cur: Any = obj
    for part in field.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, kind: str) -> FieldSelector:
    """Parse `f=v`, `f==v`, `f!=v` terms; a field this kind does not support is a 400, as on a cluster."""
    if text is None or not text.strip():
        return FieldSelector()
    allowed = SUPPORTED_FIELDS.get(kind, _COMMON_FIELDS)
    terms = []
    for raw in text.split(","):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", raw)
        if not m:
            raise ApiError.bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        field, op, value = m.groups()
        if field not in allowed:
            raise ApiError.bad_request(f'field label not supported: "{field}"')
        terms.append((field, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(terms))
