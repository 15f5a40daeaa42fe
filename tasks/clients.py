"""The one place where clients are built from settings. Nothing is built at import time.

Usage::

    settings = load_settings()
    api = kubernetes_api(settings)                 # kubernetes.client.ApiClient, cached per settings object
    api = cluster_api(runtime.settings())          # the bound service's cluster: one client per cluster
    AppsV1Api(api).read_namespaced_deployment("web", "prod", _request_timeout=request_timeout_s(api))

    with http_client(settings) as http:            # httpx.Client with connect/read/write/pool timeouts
        http.get(str(settings.service.base_url) + settings.service.health_path)
    with new_http_client(timeout_s=5.0) as http:   # the same, for a task given its own timeout
        ...

Where the Kubernetes client connects (`settings.kubernetes`):
- `in_cluster`: the pod's service account (`load_incluster_config`);
- else `api_url`: that URL, authenticated with `token` (a bearer token) when set;
- else `kubeconfig` / `context`: that kubeconfig file (default `$KUBECONFIG` or `~/.kube/config`).
`verify_ssl` and `request_timeout_s` apply to all three; a `token` overrides kubeconfig credentials.

`cluster_api` is what the runbooks use: the settings they get are the bound service's view
(tasks/runtime.py), so two services on one cluster share a client and two clusters get two, keyed by
how the cluster is reached (in-cluster, API URL, kubeconfig file + context, current context) and its
credentials and options, never by the service.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import httpx
import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

if TYPE_CHECKING:
    from runbook.settings import Settings

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "KubernetesApiClient",
    "close_clients",
    "cluster_api",
    "cluster_key",
    "http_client",
    "kubernetes_api",
    "kubernetes_configuration",
    "new_http_client",
    "request_timeout_s",
]

DEFAULT_REQUEST_TIMEOUT_S = 10.0
_CACHE_SIZE = 8


class KubernetesApiClient(ApiClient):
    """An `ApiClient` that carries the per-request timeout its settings asked for.

    The official client has no default timeout (a call without `_request_timeout` can block for
    ever), so every call in `kubeops` passes `request_timeout_s(api)`.
    """

    def __init__(
        self, configuration: Configuration, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    ) -> None:
        if request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0 (got {request_timeout_s})")
        super().__init__(configuration)
        self.request_timeout_s = float(request_timeout_s)


def request_timeout_s(api: ApiClient) -> float:
    """The timeout for one request made through `api`: its own, or 10 s for a plain `ApiClient`."""
    return api.request_timeout_s if isinstance(api, KubernetesApiClient) else DEFAULT_REQUEST_TIMEOUT_S


def kubernetes_configuration(settings: Settings) -> Configuration:
    """A fresh `Configuration` for `settings.kubernetes` (see the module docstring for the order)."""
    k8s = settings.kubernetes
    cfg = Configuration()
    if k8s.in_cluster:
        kube_config.load_incluster_config(client_configuration=cfg)
    elif k8s.api_url:
        cfg.host = str(k8s.api_url).rstrip("/")
    else:
        kube_config.load_kube_config(
            config_file=str(k8s.kubeconfig) if k8s.kubeconfig else None,
            context=k8s.context or None,
            client_configuration=cfg,
            persist_config=False,
        )
    if k8s.token is not None:
        cfg.api_key = {"BearerToken": k8s.token.get_secret_value()}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
    cfg.verify_ssl = bool(k8s.verify_ssl)
    # One retry when the connection cannot be made (nothing was sent); never a silent re-send after a
    # read timeout: the Prefect tasks retry reads by policy, and a write must not be sent twice.
    cfg.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=False)
    return cfg


_cache: dict[int, tuple[object, KubernetesApiClient]] = {}
_cache_lock = threading.Lock()


def kubernetes_api(settings: Settings) -> KubernetesApiClient:
    """The Kubernetes `ApiClient` for these settings; one per settings object (thread-safe, reused).

    The client is safe to share between threads (urllib3's pool). Keyed on the object, not its
    contents: new settings (a reload) get a new client.
    """
    with _cache_lock:
        hit = _cache.get(id(settings))
        if hit is not None and hit[0] is settings:
            return hit[1]
        client = KubernetesApiClient(
            kubernetes_configuration(settings), request_timeout_s=settings.kubernetes.request_timeout_s
        )
        if len(_cache) >= _CACHE_SIZE:
            # drop the oldest entry; it may still be in use elsewhere, so it is not closed here
            _cache.pop(next(iter(_cache)))
        _cache[id(settings)] = (settings, client)
        return client


ClusterKey = tuple[object, ...]
_clusters: dict[ClusterKey, KubernetesApiClient] = {}


def cluster_key(settings: Settings) -> ClusterKey:
    """What tells one cluster connection from another in `settings.kubernetes` (the token by value: a
    different credential is a different client)."""
    k8s = settings.kubernetes
    token = None if k8s.token is None else k8s.token.get_secret_value()
    where = (
        ("in-cluster",)
        if k8s.in_cluster
        else ("api-url", k8s.api_url)
        if k8s.api_url
        else ("kubeconfig", str(k8s.kubeconfig or ""), k8s.context or "")
    )
    return (*where, token, bool(k8s.verify_ssl), float(k8s.request_timeout_s))


def cluster_api(settings: Settings) -> KubernetesApiClient:
    """The Kubernetes `ApiClient` of the cluster `settings.kubernetes` reaches: one per cluster (thread-safe,
    reused until `close_clients`), whichever service's settings view asks for it."""
    key = cluster_key(settings)
    with _cache_lock:
        client = _clusters.get(key)
        if client is None:
            client = KubernetesApiClient(
                kubernetes_configuration(settings), request_timeout_s=settings.kubernetes.request_timeout_s
            )
            _clusters[key] = client
        return client


def close_clients() -> None:
    """Forget (and close) every cached Kubernetes client: for process shutdown and tests."""
    with _cache_lock:
        entries = [client for _settings, client in _cache.values()] + list(_clusters.values())
        _cache.clear()
        _clusters.clear()
    for client in entries:
        client.close()


def http_client(settings: Settings, base_url: str = "", timeout_s: float | None = None) -> httpx.Client:
    """A new `httpx.Client` with every timeout set (the caller closes it: `with http_client(s) as c:`).

    `timeout_s` defaults to `settings.service.http_timeout_s` (the timeout of every call to the service).
    """
    total = timeout_s if timeout_s is not None else float(settings.service.http_timeout_s)
    return new_http_client(total, base_url=base_url)


def new_http_client(timeout_s: float, *, base_url: str = "") -> httpx.Client:
    """Every `httpx.Client` of the package is made here: `timeout_s` for reading, writing and the pool,
    half of it for connecting; redirects not followed (an answer is judged as the server gave it)."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0 (got {timeout_s})")
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, max(timeout_s / 2, 0.1)))
    return httpx.Client(base_url=base_url, timeout=timeout, follow_redirects=False)
