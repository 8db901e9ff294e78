"""The soak's Kubernetes API client: the kubernetes package, with the transient errors of a
cluster under faults (an API server restarting, 429 while its caches fill) retried, boundedly.

The soak calls the API from several threads at once (fault lanes, recorders), so the
connection pool is larger than the client's default of 4.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.rest import ApiException

from continuable.names import GROUP, PLURAL, VERSION

T = TypeVar("T")
# (connect, read) seconds of one request.
REQUEST_TIMEOUT = (5.0, 30.0)


def api_client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 32
    configuration.retries = False
    return kubernetes.client.ApiClient(configuration)


def is_transient(err: BaseException) -> bool:
    if isinstance(err, ApiException):
        return err.status in (0, 429, 500, 502, 503, 504)
    return isinstance(err, (urllib3.exceptions.HTTPError, OSError))


def retrying(fn: Callable[[], T], *, timeout: float = 60.0, what: str = "an API call") -> T:
    """fn(), retried while the error is transient, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return fn()
        except Exception as err:
            if not is_transient(err) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def not_found(err: BaseException) -> bool:
    return isinstance(err, ApiException) and err.status == 404


class Api:
    """The handful of calls the soak makes, each bounded and retried."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = api_client(kubeconfig)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.scheduling = kubernetes.client.SchedulingV1Api(self.client)
        self.coordination = kubernetes.client.CoordinationV1Api(self.client)

    # ContinuableJobs

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job: dict[str, Any] = retrying(
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
                )
            )
            return job
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_jobs(self, namespace: str) -> list[dict[str, Any]]:
        answer = retrying(
            lambda: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _request_timeout=REQUEST_TIMEOUT
            )
        )
        return list(answer.get("items", []))

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return retrying(
            lambda: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        # A dict body goes out as a JSON merge patch.
        return retrying(
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def delete_job(self, namespace: str, name: str, uid: str, propagation: str) -> None:
        body = {"propagationPolicy": propagation, "preconditions": {"uid": uid}}
        retrying(
            lambda: self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body=body, _request_timeout=REQUEST_TIMEOUT
            )
        )

    # Pods

    def list_pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        answer = retrying(
            lambda: self.core.list_namespaced_pod(
                namespace,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )
        return list(_json(answer).get("items", []))

    def delete_pod(self, namespace: str, name: str, uid: str, grace: int | None = None) -> None:
        body: dict[str, Any] = {"preconditions": {"uid": uid}}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        retrying(
            lambda: self.core.delete_namespaced_pod(
                name, namespace, body=body, _request_timeout=REQUEST_TIMEOUT
            ),
            timeout=20,
        )

    def evict_pod(self, namespace: str, name: str) -> None:
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        retrying(
            lambda: self.core.create_namespaced_pod_eviction(
                name, namespace, body, _request_timeout=REQUEST_TIMEOUT
            ),
            timeout=20,
        )

    def create_pod(self, namespace: str, body: dict[str, Any]) -> None:
        retrying(
            lambda: self.core.create_namespaced_pod(
                namespace, body, _request_timeout=REQUEST_TIMEOUT
            ),
            timeout=20,
        )

    # Nodes

    def list_nodes(self) -> list[dict[str, Any]]:
        answer = retrying(
            lambda: self.core.list_node(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        )
        return list(_json(answer).get("items", []))

    def lease_holder(self, namespace: str, name: str) -> str | None:
        try:
            lease = retrying(
                lambda: self.coordination.read_namespaced_lease(
                    name, namespace, _request_timeout=REQUEST_TIMEOUT
                ),
                timeout=20,
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return lease.spec.holder_identity if lease.spec else None

    def close(self) -> None:
        self.client.close()


def _json(answer: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(answer.data)
    return data


def node_ready(node: dict[str, Any]) -> str:
    """The Ready condition's status: True, False or Unknown."""
    for condition in node.get("status", {}).get("conditions", []):
        if condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "Unknown"
