"""The operator's API calls, over the kubernetes client, behind one small class.

Everything the reconciler does to the cluster goes through here, rate limited and with a timeout
on every call; every failure comes out as `ApiError`: with the HTTP status and the API server's
message, or with status 0 when no answer came at all (refused, reset, timed out: an API server
restart), so the reconciler retries both the same way and the decisions stay in plain code.

Events are aggregated as client-go's EventCorrelator does: a repeat of an Event already posted
about the same object raises that Event's `count` instead of posting another, so a pod creation
refused every few seconds does not flood the namespace's Events.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import urllib3

from continuable.names import (
    GROUP,
    PLURAL,
    TRACKING_FINALIZER,
    VERSION,
)

from . import queueing
from .throttling import TokenBucket

T = TypeVar("T")
Object = dict[str, Any]
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# (connect, read) seconds: a call to an API server that went away fails instead of hanging.
TIMEOUT = (5.0, 30.0)
# The status of an ApiError when the API server gave no answer at all.
NO_ANSWER = 0
# Connections kept open to the API server: one per reconcile worker and background worker, and a
# few for the Lease and the metrics.
CONNECTIONS = 16
# A repeat of an Event within this many seconds of its last posting is counted on it (client-go
# aggregates over 10 minutes too); after that it is news again.
EVENT_REPEAT_SECONDS = 600
# How many posted Events are remembered for counting repeats (client-go's LRU holds 4096).
EVENT_CACHE_SIZE = 4096


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


def api_error(err: Exception) -> ApiError | None:
    """What an exception out of the kubernetes client means: an `ApiError`, or None for anything
    else (a bug, which must not pass for an API failure)."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(err, ApiException) and err.status:
        reason, message = _message(err.body)
        return ApiError(int(err.status), reason or str(err.reason), message)
    # The client raises ApiException with status 0 for a TLS failure; urllib3 its own errors
    # (MaxRetryError for a refused connection, ReadTimeoutError, ProtocolError for a reset);
    # reading a response can raise the socket's OSError or http.client's errors.
    no_answer = (ApiException, urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
    if isinstance(err, no_answer):
        detail = err.reason if isinstance(err, ApiException) else f"{type(err).__name__}: {err}"
        return ApiError(NO_ANSWER, "NoAnswer", f"no answer from the API server: {detail}")
    return None


@dataclass
class _Posted:
    """An Event this operator posted, for counting its repeats."""

    name: str
    count: int
    last: datetime


class ClusterApi:
    def __init__(
        self,
        *,
        qps: float = 50.0,
        burst: int = 100,
        component: str = "continuable-operator",
        core: Any = None,
        custom: Any = None,
        rbac: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`core`, `custom` and `rbac` stand in for the kubernetes client's API classes (tests)."""
        from kubernetes import client

        configuration = client.Configuration.get_default_copy()
        # Every thread that calls may hold a connection (the reconcile workers); with fewer
        # kept, each burst opens and drops TLS connections.
        configuration.connection_pool_maxsize = CONNECTIONS
        self._client = client.ApiClient(configuration)
        self._custom = custom or client.CustomObjectsApi(self._client)
        self._core = core or client.CoreV1Api(self._client)
        self._rbac = rbac or client.RbacAuthorizationV1Api(self._client)
        self._bucket = TokenBucket(qps, burst)
        self._component = component
        self._clock = clock
        self._posted: OrderedDict[tuple[str, str, str, str], _Posted] = OrderedDict()
        self._posted_lock = threading.Lock()

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call, rate limited and with the timeout, its failures as `ApiError`."""
        self._bucket.take()
        try:
            return method(*args, _request_timeout=TIMEOUT, **kwargs)
        except Exception as err:
            error = api_error(err)
            if error is None:
                raise
            raise error from err

    def _plain(self, obj: Any) -> Object:
        plain: Object = self._client.sanitize_for_serialization(obj)
        return plain

    def _typed(self, kind: str, obj: Any) -> Object:
        """An answer of the typed client as a plain dict that says its kind (the typed models
        leave `kind` out of a created or patched object)."""
        plain = self._plain(obj)
        plain.setdefault("kind", kind)
        return plain

    # ContinuableJobs.

    def get_job(self, namespace: str, name: str, *, cached: bool = False) -> Object | None:
        """The job; `cached`: as the API server's watch cache holds it (a list of that one name
        at resourceVersion 0), which may lag etcd by moments but never waits behind it, where a
        plain read is served by etcd."""
        if cached:
            listed: Object = self._call(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                field_selector=f"metadata.name={name}",
                resource_version="0",
            )
            items = listed.get("items") or []
            return dict(items[0]) if items else None
        try:
            job: Object = self._call(
                self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return job

    def list_jobs(self, namespace: str) -> list[Object]:
        """Every ContinuableJob of the namespace (to tell who else uses a service account)."""
        listed: Object = self._call(
            self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
        )
        return list(listed.get("items") or [])

    def patch_job(
        self, namespace: str, name: str, body: Any, *, json_patch: bool, status: bool = False
    ) -> Object:
        """Patch the job, or (`status`) its status subresource; the job as patched."""
        patch = (
            self._custom.patch_namespaced_custom_object_status
            if status
            else self._custom.patch_namespaced_custom_object
        )
        content_type = JSON_PATCH if json_patch else MERGE_PATCH
        job: Object = self._call(
            patch, GROUP, VERSION, namespace, PLURAL, name, body, _content_type=content_type
        )
        return job

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        self._call(
            self._custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
        )

    # Kueue: the jobs' Workloads, and what the planner reads to fill them in and apply them.

    def create_workload(self, manifest: Object) -> Object:
        namespace = manifest["metadata"]["namespace"]
        created: Object = self._call(
            self._custom.create_namespaced_custom_object,
            queueing.GROUP,
            queueing.VERSION,
            namespace,
            queueing.PLURAL,
            manifest,
        )
        return created

    def patch_workload(
        self, namespace: str, name: str, body: Object, *, status: bool = False
    ) -> Object:
        """A merge patch of a Workload, or (`status`) of its status; the Workload as patched.
        A `metadata.resourceVersion` in the body makes it conditional (409 if it moved on)."""
        patch = (
            self._custom.patch_namespaced_custom_object_status
            if status
            else self._custom.patch_namespaced_custom_object
        )
        patched: Object = self._call(
            patch,
            queueing.GROUP,
            queueing.VERSION,
            namespace,
            queueing.PLURAL,
            name,
            body,
            _content_type=MERGE_PATCH,
        )
        return patched

    def delete_workload(self, namespace: str, name: str, uid: str) -> None:
        self._call(
            self._custom.delete_namespaced_custom_object,
            queueing.GROUP,
            queueing.VERSION,
            namespace,
            queueing.PLURAL,
            name,
            body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
        )

    def get_cluster_object(self, group: str, version: str, plural: str, name: str) -> Object | None:
        """A cluster-scoped object (a ResourceFlavor, a priority class), or None."""
        try:
            found: Object = self._call(
                self._custom.get_cluster_custom_object, group, version, plural, name
            )
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return found

    # Pods.

    def create(self, manifest: Object) -> Object:
        """Create the object; as the API server stored it."""
        kind = manifest["kind"]
        creators: dict[str, Callable[..., Any]] = {
            "Pod": self._core.create_namespaced_pod,
            "ConfigMap": self._core.create_namespaced_config_map,
            "ServiceAccount": self._core.create_namespaced_service_account,
            "Role": self._rbac.create_namespaced_role,
            "RoleBinding": self._rbac.create_namespaced_role_binding,
        }
        # The pod carries the user's template: a misspelt field is refused (400, naming it)
        # instead of silently dropped.
        options = {"field_validation": "Strict"} if kind == "Pod" else {}
        created = self._call(creators[kind], manifest["metadata"]["namespace"], manifest, **options)
        return self._typed(kind, created)

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        """An object the operator creates for a job (Pod, ConfigMap, ServiceAccount, Role,
        RoleBinding), or None when there is none of that name."""
        readers: dict[str, Callable[..., Any]] = {
            "Pod": self._core.read_namespaced_pod,
            "ConfigMap": self._core.read_namespaced_config_map,
            "ServiceAccount": self._core.read_namespaced_service_account,
            "Role": self._rbac.read_namespaced_role,
            "RoleBinding": self._rbac.read_namespaced_role_binding,
        }
        try:
            return self._typed(kind, self._call(readers[kind], name, namespace))
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def patch(self, kind: str, namespace: str, name: str, ops: list[Object]) -> Object:
        """A JSON patch (RFC 6902) of such an object: its `test` ops make it conditional. The
        object as patched."""
        patchers: dict[str, Callable[..., Any]] = {
            "Pod": self._core.patch_namespaced_pod,
            "ConfigMap": self._core.patch_namespaced_config_map,
            "ServiceAccount": self._core.patch_namespaced_service_account,
            "Role": self._rbac.patch_namespaced_role,
            "RoleBinding": self._rbac.patch_namespaced_role_binding,
        }
        patched = self._call(patchers[kind], name, namespace, ops, _content_type=JSON_PATCH)
        return self._typed(kind, patched)

    def stamp_pod(self, namespace: str, name: str, uid: str, condition: Object) -> Object:
        """Add a condition to the pod's status (strategic merge on `type`, as a kubelet keeps
        conditions it does not own)."""
        body = {"metadata": {"uid": uid}, "status": {"conditions": [condition]}}
        stamped = self._call(
            self._core.patch_namespaced_pod_status,
            name,
            namespace,
            body,
            _content_type=STRATEGIC_MERGE_PATCH,
        )
        return self._typed("Pod", stamped)

    def delete_pod(self, namespace: str, name: str, uid: str) -> Object | None:
        """Delete the pod; the pod as it is now (being deleted: it has our finalizer), or None
        when the API server answered with a Status (it is gone already)."""
        deleted = self._plain(
            self._call(
                self._core.delete_namespaced_pod,
                name,
                namespace,
                body={"preconditions": {"uid": uid}},
            )
        )
        return self._typed("Pod", deleted) if deleted.get("kind") in ("Pod", None) else None

    def remove_finalizer(self, namespace: str, name: str, pod: Object) -> Object:
        finalizers = pod["metadata"].get("finalizers") or []
        index = finalizers.index(TRACKING_FINALIZER)
        # Fenced on the finalizer's position, so a concurrent change to the list is not lost.
        ops = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": TRACKING_FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        patched = self._call(
            self._core.patch_namespaced_pod, name, namespace, ops, _content_type=JSON_PATCH
        )
        return self._typed("Pod", patched)

    # Events.

    def emit(self, job: Object, type_: str, reason: str, message: str) -> None:
        """Post an Event about the job, or count a repeat on the one already posted."""
        metadata = job["metadata"]
        namespace = metadata["namespace"]
        message = message[:1024]
        key = (metadata["uid"], type_, reason, message)
        now = self._clock()
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._posted_lock:
            posted = self._posted.get(key)
        if posted is not None and now - posted.last < timedelta(seconds=EVENT_REPEAT_SECONDS):
            count = posted.count + 1
            try:
                self._call(
                    self._core.patch_namespaced_event,
                    posted.name,
                    namespace,
                    {"count": count, "lastTimestamp": stamp},
                    _content_type=MERGE_PATCH,
                )
            except ApiError as err:
                if err.status != 404:  # gone (the API server's event TTL): post it anew
                    raise
            else:
                self._remember(key, _Posted(posted.name, count, now))
                return
        name = f"{metadata['name']}.{uuid.uuid4().hex[:16]}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": job["apiVersion"],
                "kind": job["kind"],
                "name": metadata["name"],
                "namespace": namespace,
                "uid": metadata["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self._call(self._core.create_namespaced_event, namespace, event)
        self._remember(key, _Posted(name, 1, now))

    def _remember(self, key: tuple[str, str, str, str], posted: _Posted) -> None:
        with self._posted_lock:
            self._posted[key] = posted
            self._posted.move_to_end(key)
            while len(self._posted) > EVENT_CACHE_SIZE:
                self._posted.popitem(last=False)
