"""The operator's API calls, over the kubernetes client, behind one small class.

Everything the reconciler does to the cluster goes through here, rate limited; errors come out
as `ApiError` with the HTTP status and the API server's message, so the decisions about them
stay in plain code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from continuable.backends.kubernetes import result_key
from continuable.names import (
    GROUP,
    JOB_LABEL,
    PLURAL,
    TRACKING_FINALIZER,
    VERSION,
    results_config_map,
)

from .throttling import TokenBucket

T = TypeVar("T")
Object = dict[str, Any]
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
TIMEOUT = (5.0, 30.0)


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _message(body: Any) -> tuple[str, str]:
    try:
        data = json.loads(body)
        return str(data.get("reason") or ""), str(data.get("message") or body)
    except (TypeError, ValueError):
        return "", str(body)


class ClusterApi:
    def __init__(
        self, *, qps: float = 20.0, burst: int = 30, component: str = "continuable-operator"
    ) -> None:
        from kubernetes import client

        self._client = client.ApiClient()
        self._custom = client.CustomObjectsApi(self._client)
        self._core = client.CoreV1Api(self._client)
        self._rbac = client.RbacAuthorizationV1Api(self._client)
        self._bucket = TokenBucket(qps, burst)
        self._component = component

    def _call(self, call: Callable[[], T]) -> T:
        from kubernetes.client.exceptions import ApiException

        self._bucket.take()
        try:
            return call()
        except ApiException as err:
            reason, message = _message(err.body)
            raise ApiError(int(err.status or 0), reason or str(err.reason), message) from err

    def _plain(self, obj: Any) -> Object:
        plain: Object = self._client.sanitize_for_serialization(obj)
        return plain

    # ContinuableJobs.

    def get_job(self, namespace: str, name: str) -> Object | None:
        try:
            job: Object = self._call(
                lambda: self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
                )
            )
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return job

    def patch_job(
        self, namespace: str, name: str, body: Any, *, json_patch: bool, status: bool = False
    ) -> None:
        """Patch the job, or (`status`) its status subresource."""
        patch = (
            self._custom.patch_namespaced_custom_object_status
            if status
            else self._custom.patch_namespaced_custom_object
        )
        self._call(
            lambda: patch(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type=JSON_PATCH if json_patch else MERGE_PATCH,
                _request_timeout=TIMEOUT,
            )
        )

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        self._call(
            lambda: self._custom.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
                _request_timeout=TIMEOUT,
            )
        )

    def drop_results(self, namespace: str, job: str, steps: tuple[str, ...]) -> None:
        """Remove these steps' results from the job's results ConfigMap."""
        body = {"data": {result_key(step): None for step in steps}}
        try:
            self._call(
                lambda: self._core.patch_namespaced_config_map(
                    results_config_map(job), namespace, body, _content_type=MERGE_PATCH
                )
            )
        except ApiError as err:
            if err.status != 404:
                raise

    # Pods.

    def list_pods(self, namespace: str, job: str) -> list[Object]:
        pods = self._call(
            lambda: self._core.list_namespaced_pod(
                namespace, label_selector=f"{JOB_LABEL}={job}", _request_timeout=TIMEOUT
            )
        )
        return [self._plain(p) for p in pods.items]

    def create(self, manifest: Object) -> None:
        namespace = manifest["metadata"]["namespace"]
        kind = manifest["kind"]
        creators: dict[str, Callable[[], Any]] = {
            "Pod": lambda: self._core.create_namespaced_pod(namespace, manifest),
            "ConfigMap": lambda: self._core.create_namespaced_config_map(namespace, manifest),
            "ServiceAccount": lambda: self._core.create_namespaced_service_account(
                namespace, manifest
            ),
            "Role": lambda: self._rbac.create_namespaced_role(namespace, manifest),
            "RoleBinding": lambda: self._rbac.create_namespaced_role_binding(namespace, manifest),
        }
        self._call(creators[kind])

    def merge(self, manifest: Object) -> None:
        """Merge-patch an existing object to `manifest`'s content (lists are replaced)."""
        namespace = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
        body["metadata"] = {"labels": manifest["metadata"].get("labels", {})}
        patchers: dict[str, Callable[[], Any]] = {
            "ConfigMap": lambda: self._core.patch_namespaced_config_map(
                name, namespace, body, _content_type=MERGE_PATCH
            ),
            "ServiceAccount": lambda: self._core.patch_namespaced_service_account(
                name, namespace, body, _content_type=MERGE_PATCH
            ),
            "Role": lambda: self._rbac.patch_namespaced_role(
                name, namespace, body, _content_type=MERGE_PATCH
            ),
            "RoleBinding": lambda: self._rbac.patch_namespaced_role_binding(
                name, namespace, body, _content_type=MERGE_PATCH
            ),
        }
        self._call(patchers[manifest["kind"]])

    def stamp_pod(self, namespace: str, name: str, uid: str, condition: Object) -> None:
        """Add a condition to the pod's status (strategic merge on `type`, as a kubelet keeps
        conditions it does not own)."""
        body = {"metadata": {"uid": uid}, "status": {"conditions": [condition]}}
        self._call(
            lambda: self._core.patch_namespaced_pod_status(
                name, namespace, body, _content_type=STRATEGIC_MERGE_PATCH
            )
        )

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        self._call(
            lambda: self._core.delete_namespaced_pod(
                name, namespace, body={"preconditions": {"uid": uid}}, _request_timeout=TIMEOUT
            )
        )

    def remove_finalizer(self, namespace: str, name: str, pod: Object) -> None:
        finalizers = pod["metadata"].get("finalizers") or []
        index = finalizers.index(TRACKING_FINALIZER)
        # Fenced on the finalizer's position, so a concurrent change to the list is not lost.
        ops = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": TRACKING_FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        self._call(
            lambda: self._core.patch_namespaced_pod(name, namespace, ops, _content_type=JSON_PATCH)
        )

    def get_pod(self, namespace: str, name: str) -> Object | None:
        try:
            return self._plain(self._call(lambda: self._core.read_namespaced_pod(name, namespace)))
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    # Events.

    def emit(self, job: Object, type_: str, reason: str, message: str) -> None:
        metadata = job["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": job["apiVersion"],
                "kind": job["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._call(lambda: self._core.create_namespaced_event(metadata["namespace"], event))
