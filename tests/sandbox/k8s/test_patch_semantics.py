"""The patch and selector semantics on their own: RFC 7386 examples, strategic-merge directives, the
label-selector grammar. (The wire behaviour is in test_patch.py.)"""

from __future__ import annotations

import pytest

from sandbox.k8s.errors import ApiError
from sandbox.k8s.patch import JSON_PATCH, apply_patch, json_merge_patch, strategic_merge_patch
from sandbox.k8s.selectors import parse_field_selector, parse_label_selector, selector_string


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386 appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386_examples(target: object, patch: object, result: object) -> None:
    assert json_merge_patch(target, patch) == result


def _pod_spec(*containers: dict) -> dict:
    return {"spec": {"containers": list(containers)}}


def test_smp_merges_containers_and_env_by_name_and_keeps_order() -> None:
    original = _pod_spec(
        {"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "envoy:1"},
    )
    patched = strategic_merge_patch(
        original,
        _pod_spec({"name": "web", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}),
    )
    web, sidecar = patched["spec"]["containers"]
    assert web["image"] == "web:1"
    assert web["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert sidecar == {"name": "sidecar", "image": "envoy:1"}


def test_smp_directives() -> None:
    original = _pod_spec(
        {
            "name": "web",
            "image": "web:1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "volumeMounts": [{"mountPath": "/data", "name": "data"}, {"mountPath": "/tmp", "name": "tmp"}],
            "resources": {"limits": {"memory": "512Mi", "cpu": "1"}},
        }
    )
    patch = _pod_spec(
        {
            "name": "web",
            "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
            "env": [{"name": "A", "value": "10"}],
            "volumeMounts": [{"mountPath": "/tmp", "$patch": "delete"}],
            "resources": {"$patch": "replace", "limits": {"memory": "1Gi"}},
        }
    )
    (web,) = strategic_merge_patch(original, patch)["spec"]["containers"]
    assert web["env"] == [{"name": "B", "value": "2"}, {"name": "A", "value": "10"}]
    assert web["volumeMounts"] == [{"mountPath": "/data", "name": "data"}]
    assert web["resources"] == {"limits": {"memory": "1Gi"}}
    replaced = strategic_merge_patch(
        original, _pod_spec({"name": "only", "image": "x:1"}, {"$patch": "replace"})
    )
    assert replaced["spec"]["containers"] == [{"name": "only", "image": "x:1"}]
    deleted = strategic_merge_patch({"a": {"b": 1}, "c": 2}, {"a": {"$patch": "delete"}, "c": None})
    assert deleted == {}
    with pytest.raises(ApiError) as err:
        strategic_merge_patch(original, _pod_spec({"image": "nameless:1"}))
    assert err.value.code == 422 and "merge key" in err.value.message


def test_smp_lists_without_merge_key_are_replaced() -> None:
    original = {"spec": {"containers": [{"name": "web", "args": ["--a", "--b"]}]}}
    patched = strategic_merge_patch(original, {"spec": {"containers": [{"name": "web", "args": ["--c"]}]}})
    assert patched["spec"]["containers"][0]["args"] == ["--c"]


def test_json_patch_errors() -> None:
    with pytest.raises(ApiError) as err:
        apply_patch({"a": 1}, {"op": "add"}, JSON_PATCH)
    assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        apply_patch({"a": 1}, [{"op": "remove", "path": "/missing"}], JSON_PATCH)
    assert err.value.code == 422


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("", {}, True),
        ("app=web", {"app": "web"}, True),
        ("app=web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("app in (web, api)", {"app": "api"}, True),
        ("app notin (web)", {"app": "web"}, False),
        ("app notin (web)", {}, True),
        ("canary", {"canary": ""}, True),
        ("!canary", {"canary": "true"}, False),
        ("app=web,tier in (front),!canary", {"app": "web", "tier": "front"}, True),
        ("example.com/team=care", {"example.com/team": "care"}, True),
    ],
)
def test_label_selector_grammar(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is matches


@pytest.mark.parametrize("bad", ["app=", "app in ()", "app in (a", "=web", "app=we b", ",", "a b c"])
def test_bad_label_selectors_are_400(bad: str) -> None:
    if bad == "app=":  # an empty value is legal ("app" is set to "")
        assert parse_label_selector(bad).matches({"app": ""})
        return
    with pytest.raises(ApiError) as err:
        parse_label_selector(bad)
    assert err.value.code == 400


def test_selector_string_is_what_kubectl_sends() -> None:
    spec = {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary", "beta"]}],
    }
    assert selector_string(spec) == "app=web,tier=front,track notin (beta,canary)"


def test_field_selectors() -> None:
    event = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod"},
        "source": {"component": "kubelet"},
    }
    assert parse_field_selector("involvedObject.kind=Pod,source=kubelet", "Event").matches(event)
    assert not parse_field_selector("involvedObject.kind!=Pod", "Event").matches(event)
    with pytest.raises(ApiError):
        parse_field_selector("spec.replicas=2", "Deployment")
