"""The runbooks' Role grants exactly what the runbook tasks use: derived from the code, compared both ways.

Usage: `.venv/bin/python -m pytest tests/deployments/test_rbac.py -q`. A task that starts making a call
the Role does not grant fails `test_role_grants_exactly_what_the_code_uses` ("used, not granted"); a
Role line nothing uses fails it too ("granted, not used").

How the used set is found, statically, so that it cannot silently miss a call:
- every module of tasks/, flows/ and runbook/ (what a flow-run pod executes) is parsed with `ast`;
- an official-client API class is any `kubernetes.client.<Name>Api`, however it was imported;
- a use is an attribute of an instance of one: `AppsV1Api(api).read_namespaced_deployment(...)`, or a
  name bound to `AppsV1Api(api)` in the same function (`apps = AppsV1Api(api)` ... `apps.list_...(...)`);
- each method's REST route comes from the client itself (its `_<method>_serialize` holds `method=` and
  `resource_path=`): `patch_namespaced_deployment_scale` is PATCH `/apis/apps/v1/namespaces/{namespace}/
  deployments/{name}/scale`, so (apps, deployments/scale, patch), namespaced;
- the verb follows the client's naming convention (read_ → get, list_ → list, patch_ → patch,
  replace_ → update, create_ → create, delete_ → delete, delete_collection_ → deletecollection, get_ →
  get for custom objects), cross-checked with the route's HTTP method;
- `{group}` and `{plural}` of custom objects (metrics.k8s.io) are the call's arguments: literals, or
  constants of a scanned module (`METRICS_GROUP`);
- discovery routes (`/api/`, `/apis/`, `/apis/{group}/{version}/`, `/version/`) need no Role: the
  default ClusterRole `system:discovery` allows them to every authenticated user; they are collected and
  asserted apart (`kubectl top`'s check of `/apis`), never compared with the Role;
- anything the checker cannot resolve is an error, so the test fails instead of under-counting: an API
  instance that escapes (returned, passed on), a method referenced but not called, a `{group}` that is
  not a constant, a raw `call_api`, `kubernetes.watch/stream/dynamic/utils` (but `parse_quantity`), or
  another Kubernetes client library.

Then, dynamically: every function of `kubeops` runs against the sandbox API emulator through the
official client, and every request the emulator received is authorised against the manifests' Role
and ClusterRole (an RBAC evaluation, `resourceNames` included) and must be in the static set.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deployments"
RBAC_FILE = DEPLOY / "runbooks-rbac.yaml"
SCANNED_PACKAGES = ("tasks", "kubeops", "flows", "runbook")
SERVICE_ACCOUNT = ("incident-runbooks", "incident-runbooks")  # (namespace, name)
NAMESPACED, CLUSTER = "namespaced", "cluster"

# The official client's naming convention, method prefix → RBAC verb (longest prefix first).
VERB_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("delete_collection_", "deletecollection"),
    ("read_", "get"),
    ("get_", "get"),
    ("list_", "list"),
    ("patch_", "patch"),
    ("replace_", "update"),
    ("create_", "create"),
    ("delete_", "delete"),
)
HTTP_METHOD_OF_VERB = {
    "get": "GET",
    "list": "GET",
    "watch": "GET",
    "patch": "PATCH",
    "update": "PUT",
    "create": "POST",
    "delete": "DELETE",
    "deletecollection": "DELETE",
}
# Pure helpers of kubernetes.utils (no API call); anything else there is refused.
ALLOWED_UTILS = frozenset({"kubernetes.utils.parse_quantity", "kubernetes.utils.format_quantity"})
REFUSED_PREFIXES = (
    "kubernetes.watch",
    "kubernetes.stream",
    "kubernetes.dynamic",
    "kubernetes.utils",
    "kubernetes.aio",
    "kubernetes_asyncio",
    "lightkube",
    "kr8s",
    "pykube",
)
_API_CLASS = re.compile(r"^kubernetes\.client(?:\.api(?:\.\w+)?)?\.(\w+Api)$")
# Verbs for which `resourceNames` restricts anything (list/watch/create/deletecollection ignore it).
NAMEABLE_VERBS = frozenset({"get", "patch", "update", "delete"})


# --- the model ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Permission:
    """One RBAC grant: `resource` includes the subresource (`deployments/scale`); group "" is core."""

    scope: str
    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.scope} {self.group or 'core'}/{self.resource} {self.verb}"


@dataclass(frozen=True)
class Use:
    """One client call found in the code: where, which method, its route, what it needs."""

    where: str
    method: str
    route: str
    permission: Permission | None  # None: a discovery route


class CheckerError(Exception):
    """The code uses the client in a way the checker cannot resolve: fix the code or teach the checker."""


@dataclass
class Report:
    used: set[Permission]
    granted: set[Permission]
    uses: list[Use] = field(default_factory=list)

    @property
    def missing(self) -> set[Permission]:
        return self.used - self.granted

    @property
    def unused(self) -> set[Permission]:
        return self.granted - self.used

    def explain(self) -> str:
        lines = []
        for perm in sorted(self.missing):
            sites = ", ".join(u.where for u in self.uses if u.permission == perm)
            lines.append(f"used, not granted: {perm} (by {sites})")
        lines += [f"granted, not used: {perm}" for perm in sorted(self.unused)]
        return "\n".join(lines)


# --- the client's routes ------------------------------------------------------------------------------------


def api_class(name: str) -> type:
    cls = getattr(kubernetes.client, name, None)
    if not inspect.isclass(cls) or not name.endswith("Api"):
        raise CheckerError(f"kubernetes.client.{name} is not an API class of the official client")
    return cls


@functools.cache
def client_route(cls: type, method: str) -> tuple[str, str]:
    """(HTTP method, resource path) of `cls.method`, read from the generated client's own source."""
    serialize = getattr(cls, f"_{method}_serialize", None)
    if serialize is None or not callable(getattr(cls, method, None)):
        raise CheckerError(f"{cls.__name__}.{method} is not an API method of the official client")
    source = inspect.getsource(serialize)
    http = re.findall(r"method='([A-Z]+)'", source)
    path = re.findall(r"resource_path='([^']+)'", source)
    if len(http) != 1 or len(path) != 1:
        raise CheckerError(f"{cls.__name__}.{method}: cannot read its route from the client")
    return http[0], path[0]


def verb_of(method: str) -> str:
    for prefix, verb in VERB_BY_PREFIX:
        if method.startswith(prefix):
            return verb
    raise CheckerError(f"{method}: no RBAC verb for this kind of method; extend VERB_BY_PREFIX")


@dataclass(frozen=True)
class Route:
    """A REST path split the way the API server's RequestInfo does."""

    discovery: bool
    scope: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def split_route(path: str) -> Route:
    """`/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale` → apps, deployments, scale."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] == "version":
        return Route(discovery=True)
    if parts[0] == "api":
        group, rest = "", parts[2:]
    elif parts[0] == "apis":
        group, rest = (parts[1] if len(parts) > 1 else ""), parts[3:]
    else:
        raise CheckerError(f"{path}: not a Kubernetes API path")
    if not rest:
        return Route(discovery=True)
    scope = CLUSTER
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[1] != "{name}":
        scope, rest = NAMESPACED, rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        raise CheckerError(f"{path}: unexpected path shape")
    return Route(False, scope, group, resource, subresource, name)


# --- the code side ------------------------------------------------------------------------------------------


def scanned_modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name → file of every module a flow-run pod executes."""
    found: dict[str, Path] = {}
    for package in SCANNED_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level `NAME = <literal>` assignments."""
    constants: dict[str, object] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if value is None:
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                constants[target.id] = literal
    return constants


class _ModuleScan(ast.NodeVisitor):
    """Finds the client uses of one module (see the module docstring for what counts)."""

    def __init__(self, label: str, tree: ast.Module, constants: Mapping[str, Mapping[str, object]]) -> None:
        self.label = label
        self.tree = tree
        self.all_constants = constants
        self.aliases: dict[str, str] = {}  # local name → dotted name it was imported as
        self.local_constants: dict[str, object] = dict(constants.get(label, {}))
        self.scopes: list[dict[str, type]] = [{}]  # name → API class of the instance bound to it
        self.parents: dict[ast.AST, ast.AST] = {}
        self.uses: list[Use] = []
        self.errors: list[str] = []
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent

    # names and imports

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = root
            self._refuse(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or node.module is None:
            return
        for alias in node.names:
            dotted = f"{node.module}.{alias.name}"
            self.aliases[alias.asname or alias.name] = dotted
            self._refuse(dotted, node)
            if node.module in self.all_constants and alias.name in self.all_constants[node.module]:
                self.local_constants[alias.asname or alias.name] = self.all_constants[node.module][alias.name]

    def _refuse(self, dotted: str, node: ast.AST) -> None:
        if dotted in ALLOWED_UTILS or dotted == "kubernetes.utils":
            return
        if any(dotted == p or dotted.startswith(p + ".") for p in REFUSED_PREFIXES):
            self.errors.append(f"{self.where(node)}: {dotted} is not covered by the RBAC checker")

    def dotted(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def where(self, node: ast.AST) -> str:
        return f"{self.label.replace('.', '/')}.py:{getattr(node, 'lineno', '?')}"

    # scopes: `apps = AppsV1Api(api)` binds `apps` in the enclosing function

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append({})
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def api_class_of_call(self, node: ast.expr) -> type | None:
        """The API class when `node` is `SomeApi(...)`."""
        if isinstance(node, ast.Call):
            dotted = self.dotted(node.func)
            match = _API_CLASS.match(dotted or "")
            if match:
                return api_class(match.group(1))
        return None

    def instance_class(self, node: ast.expr) -> type | None:
        """The API class of the instance `node` evaluates to: `SomeApi(...)` or a bound name."""
        cls = self.api_class_of_call(node)
        if cls is not None:
            return cls
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return scope[node.id]
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        cls = self.api_class_of_call(node.value)
        if cls is not None:
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                self.errors.append(f"{self.where(node)}: bind an API instance to one plain name")
            else:
                self.scopes[-1][node.targets[0].id] = cls
                self.visit(node.value.func)  # type: ignore[attr-defined]
                for arg in [*node.value.args, *(k.value for k in node.value.keywords)]:  # type: ignore[attr-defined]
                    self.visit(arg)
                return
        self.generic_visit(node)

    # uses

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "call_api":
            self.errors.append(f"{self.where(node)}: raw call_api is not covered by the RBAC checker")
        dotted = self.dotted(node)
        if dotted is not None and _API_CLASS.match(dotted):
            parent = self.parents.get(node)
            if not (isinstance(parent, ast.Call) and parent.func is node and self._instance_used(parent)):
                self.errors.append(
                    f"{self.where(node)}: {dotted} used other than `{dotted}(api).method(...)`"
                )
        cls = self.instance_class(node.value)
        if cls is None:
            self.generic_visit(node)
            return
        parent = self.parents.get(node)
        if not (isinstance(parent, ast.Call) and parent.func is node):
            self.errors.append(f"{self.where(node)}: {cls.__name__}.{node.attr} referenced but not called")
        else:
            self.record(cls, node.attr, parent)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        dotted = self.aliases.get(node.id)
        if dotted is not None and _API_CLASS.match(dotted):
            parent = self.parents.get(node)
            if not (isinstance(parent, ast.Call) and parent.func is node and self._instance_used(parent)):
                self.errors.append(
                    f"{self.where(node)}: {dotted} used other than `{node.id}(api).method(...)`"
                )
            return
        for scope in reversed(self.scopes):
            if node.id in scope:
                parent = self.parents.get(node)
                if not (isinstance(parent, ast.Attribute) and parent.value is node) and not isinstance(
                    node.ctx, ast.Store
                ):
                    self.errors.append(
                        f"{self.where(node)}: API instance `{node.id}` escapes (passed or returned)"
                    )
                return

    def _instance_used(self, call: ast.Call) -> bool:
        parent = self.parents.get(call)
        return isinstance(parent, ast.Attribute) or (isinstance(parent, ast.Assign) and parent.value is call)

    def record(self, cls: type, method: str, call: ast.Call) -> None:
        try:
            http, path = client_route(cls, method)
            route = split_route(path)
            if route.discovery:
                self.uses.append(Use(self.where(call), method, path, None))
                return
            verb = verb_of(method)
            if HTTP_METHOD_OF_VERB[verb] != http:
                raise CheckerError(f"{method}: verb {verb!r} disagrees with the route's {http}")
            group, resource = route.group, route.resource
            if "{" in group or "{" in resource:
                args = self.call_arguments(cls, method, call)
                group = self.resolve(group, args, call)
                resource = self.resolve(resource, args, call)
            if "{" in route.subresource:
                raise CheckerError(f"{method}: templated subresource {route.subresource}")
            resource = f"{resource}/{route.subresource}" if route.subresource else resource
            perms = [Permission(route.scope, group, resource, verb)]
            if verb == "list" and self.keyword_true(call, "watch"):
                perms.append(Permission(route.scope, group, resource, "watch"))
            self.uses.extend(Use(self.where(call), method, path, perm) for perm in perms)
        except CheckerError as exc:
            self.errors.append(f"{self.where(call)}: {exc}")

    @staticmethod
    def keyword_true(call: ast.Call, name: str) -> bool:
        return any(
            k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in call.keywords
        )

    @staticmethod
    def call_arguments(cls: type, method: str, call: ast.Call) -> dict[str, ast.expr]:
        params = [p for p in inspect.signature(getattr(cls, method)).parameters if p != "self"]
        bound: dict[str, ast.expr] = dict(zip(params, call.args, strict=False))
        bound.update({k.arg: k.value for k in call.keywords if k.arg})
        return bound

    def resolve(self, template: str, args: Mapping[str, ast.expr], call: ast.Call) -> str:
        match = re.fullmatch(r"\{(\w+)\}", template)
        if match is None:
            return template
        name = match.group(1)
        node = args.get(name)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and isinstance(self.local_constants.get(node.id), str):
            return str(self.local_constants[node.id])
        raise CheckerError(f"argument {name!r} is not a string constant the checker can read")


def used_permissions(modules: Mapping[str, str]) -> tuple[list[Use], list[str]]:
    """Every client use in `modules` (module name → source) and the checker's errors."""
    uses, errors = _used_permissions(tuple(sorted(modules.items())))
    return list(uses), list(errors)


@functools.cache
def _used_permissions(modules: tuple[tuple[str, str], ...]) -> tuple[tuple[Use, ...], tuple[str, ...]]:
    """The scan itself, once per set of sources: 20 tests compare mutated manifests with one code base
    (parsing ~200 modules took 3-11 s a test on a loaded machine)."""
    trees = {name: ast.parse(source) for name, source in modules}
    constants = {name: module_constants(tree) for name, tree in trees.items()}
    uses: list[Use] = []
    errors: list[str] = []
    for name, tree in trees.items():
        scan = _ModuleScan(name, tree, constants)
        scan.visit(tree)
        uses += scan.uses
        errors += scan.errors
    return tuple(uses), tuple(errors)


def code_sources(root: Path = ROOT) -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in scanned_modules(root).items()}


# --- the manifest side --------------------------------------------------------------------------------------


def load_objects(paths: Iterable[Path]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in paths:
        objects += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return objects


def _binds_service_account(binding: Mapping[str, Any]) -> bool:
    namespace, name = SERVICE_ACCOUNT
    return any(
        s.get("kind") == "ServiceAccount" and s.get("name") == name and s.get("namespace") == namespace
        for s in binding.get("subjects") or []
    )


@dataclass(frozen=True)
class Grant:
    """A rule as the service account holds it: where it applies and which names it is limited to."""

    scope: str
    namespace: str | None  # the RoleBinding's namespace; None for a ClusterRoleBinding
    group: str
    resource: str
    verb: str
    names: frozenset[str]  # empty: any name


def service_account_grants(objects: list[dict[str, Any]]) -> tuple[list[Grant], list[str]]:
    """Every rule the runbooks' ServiceAccount holds, through RoleBindings and ClusterRoleBindings."""
    by_key = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    grants: list[Grant] = []
    errors: list[str] = []
    for binding in objects:
        kind = binding.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding") or not _binds_service_account(binding):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if kind == "RoleBinding" else None
        role_ns = namespace if ref["kind"] == "Role" else None
        role = by_key.get((ref["kind"], role_ns, ref["name"]))
        if role is None:
            errors.append(f"{kind} {binding['metadata']['name']}: {ref['kind']} {ref['name']} not found")
            continue
        scope = NAMESPACED if kind == "RoleBinding" else CLUSTER
        for rule in role.get("rules") or []:
            if rule.get("nonResourceURLs"):
                errors.append(f"{ref['kind']} {ref['name']}: nonResourceURLs are not used by any task")
            values = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule.get("verbs", [])]
            if "*" in values:
                errors.append(f"{ref['kind']} {ref['name']}: a wildcard is never least privilege")
            names = frozenset(rule.get("resourceNames") or [])
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        if names and verb not in NAMEABLE_VERBS:
                            errors.append(
                                f"{ref['kind']} {ref['name']}: resourceNames cannot restrict {verb} "
                                f"({group or 'core'}/{resource}): it would grant nothing usable"
                            )
                        grants.append(Grant(scope, namespace, group, resource, verb, names))
    return grants, errors


def granted_permissions(grants: Iterable[Grant]) -> set[Permission]:
    return {Permission(g.scope, g.group, g.resource, g.verb) for g in grants}


def check(modules: Mapping[str, str], objects: list[dict[str, Any]]) -> tuple[Report, list[str]]:
    """The comparison the test asserts on: (report, errors). Empty `missing`, `unused`, errors = pass."""
    uses, errors = used_permissions(modules)
    grants, grant_errors = service_account_grants(objects)
    used = {u.permission for u in uses if u.permission is not None}
    return Report(used, granted_permissions(grants), uses), errors + grant_errors


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return code_sources()


@pytest.fixture(scope="module")
def rbac_objects() -> list[dict[str, Any]]:
    return load_objects([RBAC_FILE])


@pytest.fixture(scope="module")
def runbook_config() -> dict[str, str]:
    config = load_objects([DEPLOY / "config.yaml"])
    return next(
        o["data"] for o in config if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "incident-runbooks"
    )


# --- the real thing -----------------------------------------------------------------------------------------


def test_role_grants_exactly_what_the_code_uses(
    sources: dict[str, str], rbac_objects: list[dict[str, Any]]
) -> None:
    report, errors = check(sources, rbac_objects)
    assert not errors, "\n".join(errors)
    assert report.used, "the checker found no client call at all: it is blind, not the code clean"
    assert not report.missing and not report.unused, report.explain()


def test_the_used_set_is_the_runbooks_kubectl_commands(sources: dict[str, str]) -> None:
    """What the checker reads from kubeops/ today, spelled out (a blind checker fails here)."""
    uses, errors = used_permissions(sources)
    assert not errors, "\n".join(errors)
    assert {u.permission for u in uses if u.permission} == {
        Permission(NAMESPACED, "apps", "deployments", "get"),
        Permission(NAMESPACED, "apps", "deployments", "patch"),
        Permission(NAMESPACED, "apps", "deployments/scale", "get"),
        Permission(NAMESPACED, "apps", "deployments/scale", "patch"),
        Permission(NAMESPACED, "apps", "replicasets", "list"),
        Permission(NAMESPACED, "", "pods", "list"),
        Permission(NAMESPACED, "", "pods/log", "get"),
        Permission(NAMESPACED, "", "events", "list"),
        Permission(NAMESPACED, "metrics.k8s.io", "pods", "list"),
        Permission(CLUSTER, "metrics.k8s.io", "nodes", "list"),
        Permission(CLUSTER, "", "nodes", "list"),
    }
    # kubectl top's check that metrics.k8s.io is served: discovery, allowed by system:discovery
    assert {u.route for u in uses if u.permission is None} == {"/apis/"}
    assert {u.where.split(":")[0] for u in uses} == {
        "kubeops/events.py",
        "kubeops/logs.py",
        "kubeops/objects.py",
        "kubeops/replicasets.py",
        "kubeops/top.py",
        "kubeops/workload.py",
    }


def test_role_is_in_the_service_namespace_and_names_its_deployment(
    rbac_objects: list[dict[str, Any]], runbook_config: dict[str, str]
) -> None:
    grants, errors = service_account_grants(rbac_objects)
    assert not errors, "\n".join(errors)
    namespaced = [g for g in grants if g.scope == NAMESPACED]
    assert {g.namespace for g in namespaced} == {runbook_config["RUNBOOK_KUBERNETES_NAMESPACE"]}
    named = {g.names for g in grants if g.names}
    assert named == {frozenset({runbook_config["RUNBOOK_KUBERNETES_DEPLOYMENT"]})}
    # every get/patch of the Deployment and its scale is limited to that one Deployment
    for g in grants:
        if g.group == "apps" and g.resource.startswith("deployments"):
            assert g.names, f"{g} is not limited to the Deployment under care"


# --- the checker can fail -----------------------------------------------------------------------------------


def _roles(objects: list[dict[str, Any]]) -> Iterator[tuple[int, int]]:
    for i, obj in enumerate(objects):
        if obj["kind"] in ("Role", "ClusterRole"):
            for j in range(len(obj["rules"])):
                yield i, j


_RULES = list(_roles(load_objects([RBAC_FILE])))


def _rule_id(index: tuple[int, int]) -> str:
    obj = load_objects([RBAC_FILE])[index[0]]
    rule = obj["rules"][index[1]]
    groups = "+".join(g or "core" for g in rule["apiGroups"])
    return f"{obj['kind']}-{groups}-{'+'.join(rule['resources'])}-{'+'.join(rule['verbs'])}"


@pytest.mark.parametrize("index", _RULES, ids=[_rule_id(i) for i in _RULES])
def test_a_missing_rule_is_reported_as_used_not_granted(
    index: tuple[int, int], sources: dict[str, str], rbac_objects: list[dict[str, Any]]
) -> None:
    mutated = copy.deepcopy(rbac_objects)
    removed = mutated[index[0]]["rules"].pop(index[1])
    report, _errors = check(sources, mutated)
    scope = NAMESPACED if mutated[index[0]]["kind"] == "Role" else CLUSTER
    expected = {
        Permission(scope, g, r, v)
        for g in removed["apiGroups"]
        for r in removed["resources"]
        for v in removed["verbs"]
    }
    assert report.missing == expected
    assert not report.unused
    assert "used, not granted" in report.explain()


@pytest.mark.parametrize("index", _RULES, ids=[_rule_id(i) for i in _RULES])
def test_an_extra_verb_is_reported_as_granted_not_used(
    index: tuple[int, int], sources: dict[str, str], rbac_objects: list[dict[str, Any]]
) -> None:
    mutated = copy.deepcopy(rbac_objects)
    rule = mutated[index[0]]["rules"][index[1]]
    extra = "delete" if "delete" not in rule["verbs"] else "update"
    rule["verbs"].append(extra)
    report, _errors = check(sources, mutated)
    scope = NAMESPACED if mutated[index[0]]["kind"] == "Role" else CLUSTER
    assert report.unused == {
        Permission(scope, g, r, extra) for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert not report.missing
    assert "granted, not used" in report.explain()


def test_a_new_call_in_a_task_is_reported_as_used_not_granted(
    sources: dict[str, str], rbac_objects: list[dict[str, Any]]
) -> None:
    mutated = dict(sources)
    mutated["tasks.cleanup"] = (
        "from kubernetes.client import AppsV1Api, CoreV1Api\n"
        "def delete_pod(api, ns, name):\n"
        "    core = CoreV1Api(api)\n"
        "    core.delete_namespaced_pod(name, ns)\n"
        "def statefulsets(api, ns):\n"
        "    return AppsV1Api(api).list_namespaced_stateful_set(ns, watch=True)\n"
    )
    report, errors = check(mutated, rbac_objects)
    assert not errors
    assert report.missing == {
        Permission(NAMESPACED, "", "pods", "delete"),
        Permission(NAMESPACED, "apps", "statefulsets", "list"),
        Permission(NAMESPACED, "apps", "statefulsets", "watch"),
    }
    assert "tasks/cleanup.py:4" in report.explain()


def test_a_call_no_longer_made_leaves_its_rule_unused(
    sources: dict[str, str], rbac_objects: list[dict[str, Any]]
) -> None:
    mutated = dict(sources)
    mutated["kubeops.events"] = mutated["kubeops.events"].replace(
        ".list_namespaced_event(", ".list_namespaced_pod("
    )
    report, _errors = check(mutated, rbac_objects)
    assert report.unused == {Permission(NAMESPACED, "", "events", "list")}
    assert not report.missing


def test_custom_objects_take_group_and_plural_from_module_constants() -> None:
    source = (
        "from kubernetes import client as k8s\n"
        "GROUP = 'example.com'\n"
        "def widgets(api):\n"
        "    return k8s.CustomObjectsApi(api).patch_namespaced_custom_object(GROUP, 'v1', 'ns', 'widgets', 'w', {})\n"
        "def gadgets(api):\n"
        "    return k8s.CustomObjectsApi(api).list_cluster_custom_object(group=GROUP, version='v1', plural='gadgets')\n"
    )
    uses, errors = used_permissions({"tasks.custom": source})
    assert not errors
    assert {u.permission for u in uses} == {
        Permission(NAMESPACED, "example.com", "widgets", "patch"),
        Permission(CLUSTER, "example.com", "gadgets", "list"),
    }


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        (
            "from kubernetes.client import AppsV1Api\ndef f(api):\n    return AppsV1Api(api)\n",
            "used other than",
        ),
        (
            "from kubernetes.client import CoreV1Api\ndef f(api, g):\n    core = CoreV1Api(api)\n    return g(core)\n",
            "escapes",
        ),
        (
            "from kubernetes.client import CoreV1Api\ndef f(api):\n    return map(CoreV1Api(api).list_node, [1])\n",
            "referenced but not called",
        ),
        (
            "from kubernetes.client import CustomObjectsApi\n"
            "def f(api, group):\n    return CustomObjectsApi(api).list_cluster_custom_object(group, 'v1', 'x')\n",
            "not a string constant",
        ),
        ("from kubernetes import watch\n", "not covered"),
        ("from kubernetes.stream import stream\n", "not covered"),
        ("import kubernetes_asyncio\n", "not covered"),
        ("def f(api):\n    return api.call_api('/api/v1/pods', 'GET')\n", "raw call_api"),
        (
            "from kubernetes.client import CoreV1Api\ndef f(api):\n    return CoreV1Api(api).no_such_method()\n",
            "not an API method",
        ),
        (
            "from kubernetes.client import CoreV1Api\ndef f(api):\n"
            "    return CoreV1Api(api).connect_get_namespaced_pod_exec('p', 'ns')\n",
            "no RBAC verb",
        ),
    ],
)
def test_what_the_checker_cannot_resolve_is_an_error(source: str, complaint: str) -> None:
    _uses, errors = used_permissions({"tasks.odd": source})
    assert any(complaint in e for e in errors), errors


def test_wildcards_and_useless_resource_names_are_refused(rbac_objects: list[dict[str, Any]]) -> None:
    mutated = copy.deepcopy(rbac_objects)
    role = next(o for o in mutated if o["kind"] == "Role")
    role["rules"].append({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]})
    role["rules"].append(
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"], "verbs": ["list"]}
    )
    _grants, errors = service_account_grants(mutated)
    assert any("wildcard" in e for e in errors)
    assert any("resourceNames cannot restrict list" in e for e in errors)


# --- what the code sends on the wire, authorised by the Role ------------------------------------------------


def _request_permission(method: str, path: str, query: Mapping[str, list[str]]) -> tuple[Route, str]:
    """The API server's view of one request: its route and RBAC verb."""
    route = split_route(path)
    if route.discovery:
        return route, ""
    verb = {"PATCH": "patch", "PUT": "update", "POST": "create"}.get(method)
    if method == "GET":
        verb = "get" if route.name else ("watch" if query.get("watch") == ["true"] else "list")
    elif method == "DELETE":
        verb = "delete" if route.name else "deletecollection"
    assert verb is not None, method
    return route, verb


def _authorised(grants: list[Grant], route: Route, verb: str, namespace: str | None) -> bool:
    for g in grants:
        if (g.group, g.resource, g.verb) != (route.group, route.resource_path, verb):
            continue
        if g.names and route.name not in g.names:
            continue
        if g.scope == CLUSTER or (route.scope == NAMESPACED and g.namespace == namespace):
            return True
    return False


def _namespace_of(path: str) -> str | None:
    match = re.search(r"/namespaces/([^/]+)/", path)
    return match.group(1) if match else None


def test_every_request_the_tasks_send_is_authorised_and_statically_known(
    sources: dict[str, str], rbac_objects: list[dict[str, Any]], runbook_config: dict[str, str]
) -> None:
    from kubernetes.client import ApiClient, Configuration

    import kubeops
    from kubeops.models import Workload
    from sandbox.k8s import Cluster, serve_cluster

    namespace = runbook_config["RUNBOOK_KUBERNETES_NAMESPACE"]
    target = Workload(namespace=namespace, name=runbook_config["RUNBOOK_KUBERNETES_DEPLOYMENT"])
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    cluster = Cluster(clock=lambda: now)
    cluster.seed_deployment(
        namespace, target.name, "registry.local/app:1", created_at=now - timedelta(hours=1)
    )
    # a second revision, made directly in the store (not a request of the tasks)
    cluster.apply_patch(
        "Deployment",
        namespace,
        target.name,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": target.name, "image": "registry.local/app:2"}]}}
            }
        },
    )
    cluster.settle(instant=True)
    pod = cluster.deployment_pods(namespace, target.name)[0]["metadata"]["name"]
    cluster.append_pod_log(namespace, pod, "java.lang.OutOfMemoryError: memory exhausted")
    cluster.set_pod_usage(namespace, pod, cpu_m=200, memory_bytes=300 * 2**20)

    server = serve_cluster(cluster, tick_interval_s=0)
    api = ApiClient(Configuration(host=server.url))
    try:
        exercised = {
            "rollout_history": lambda: kubeops.rollout_history(api, target),
            "last_rollout": lambda: kubeops.last_rollout(api, target),
            "rollout_status": lambda: kubeops.rollout_status(api, target),
            "wait_for_rollout": lambda: kubeops.wait_for_rollout(api, target, deadline_s=0),
            "rollout_undo": lambda: kubeops.rollout_undo(api, target, dry_run=True),
            "scale": lambda: kubeops.scale(api, target, 3, dry_run=True),
            "set_env": lambda: kubeops.set_env(api, target, {"FEATURE_X_ENABLED": "false"}, dry_run=True),
            "restart": lambda: kubeops.restart(api, target, now, dry_run=True),
            "get_deployment_env": lambda: kubeops.get_deployment_env(api, target),
            "get_replicas": lambda: kubeops.get_replicas(api, target),
            "deployment_logs": lambda: kubeops.deployment_logs(api, target, grep="memory"),
            "list_events": lambda: kubeops.list_events(api, namespace, involved_name=target.name),
            "top_pods": lambda: kubeops.top_pods(api, namespace),
            "top_nodes": lambda: kubeops.top_nodes(api),
        }
        for run in exercised.values():
            run()
        requests = list(server.requests)
    finally:
        api.close()
        server.stop()

    # every operation of kubeops was exercised (a new one must be added above)
    operations = {n for n in kubeops.__all__ if n[0].islower()}
    assert operations == set(exercised)

    uses, _errors = used_permissions(sources)
    static = {u.permission for u in uses if u.permission is not None}
    grants, _ = service_account_grants(rbac_objects)
    seen: set[Permission] = set()
    refused = []
    for req in requests:
        route, verb = _request_permission(req.method, req.path, req.query)
        if route.discovery:
            continue
        perm = Permission(route.scope, route.group, route.resource_path, verb)
        seen.add(perm)
        if not _authorised(grants, route, verb, _namespace_of(req.path)):
            refused.append(f"{req.method} {req.path}")
    assert not refused, "the Role refuses what the tasks send:\n" + "\n".join(refused)
    assert seen <= static, f"sent but not found in the code: {sorted(seen - static)}"
    assert seen == static, f"found in the code but never sent: {sorted(static - seen)}"
