"""The one rule set for "is this failure worth another try", the same for every client."""

from __future__ import annotations

import httpx
import psycopg
import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

import kubeops
from tasks.retry import TRANSIENT_STATUS, backoff, is_transient, is_transient_status


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://example.invalid/")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status, request=request))


@pytest.mark.parametrize("status", sorted(TRANSIENT_STATUS))
def test_the_same_statuses_are_transient_for_http_and_kubernetes(status: int) -> None:
    assert is_transient_status(status)
    assert is_transient(_http_error(status))
    assert is_transient(ApiException(status=status, reason="x"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501, 505])
def test_the_other_statuses_are_not(status: int) -> None:
    assert not is_transient_status(status)
    assert not is_transient(_http_error(status))
    assert not is_transient(ApiException(status=status, reason="x"))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (ApiException(status=0, reason="no answer"), True),
        (urllib3.exceptions.ProtocolError("reset"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (psycopg.OperationalError("server closed the connection"), True),
        (kubeops.KubernetesUnavailable("down"), True),
        (kubeops.WorkloadNotFound("gone"), False),
        (ValueError("bad input"), False),
        (AssertionError(), False),
    ],
)
def test_by_kind(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_kubernetes_status_is_classified_by_the_same_rule() -> None:
    """`kubeops` raises KubernetesUnavailable exactly for the statuses `is_transient_status` accepts."""
    from kubeops.errors import api_call

    for status in (429, 500, 503, 501, 422):
        with pytest.raises(kubeops.KubernetesError) as caught, api_call("reading"):
            raise ApiException(status=status, reason="x")
        assert is_transient(caught.value) is is_transient_status(status)


def test_backoff_doubles_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_RETRY_BACKOFF_SCALE", "1")
    assert backoff(1.0, cap_s=5.0)(4) == [1.0, 2.0, 4.0, 5.0]
    monkeypatch.setenv("RUNBOOK_RETRY_BACKOFF_SCALE", "0")
    assert backoff(1.0)(3) == [0.0, 0.0, 0.0]
