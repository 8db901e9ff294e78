from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import (
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from continuable_operator import cluster
from continuable_operator.cluster import ApiError, ClusterApi, api_error

from .conftest import JOB


def _status(code: int, reason: str, message: str) -> ApiException:
    body = json.dumps({"kind": "Status", "reason": reason, "message": message})
    return ApiException(status=code, reason=reason, body=body)


@pytest.mark.parametrize(
    ("raised", "status", "reason"),
    [
        (_status(404, "NotFound", 'pods "x" not found'), 404, "NotFound"),
        (_status(422, "Invalid", "bad"), 422, "Invalid"),
        (
            MaxRetryError(
                None,  # type: ignore[arg-type]
                "/api/v1/pods",
                NewConnectionError(None, "Failed to establish a new connection: refused"),  # type: ignore[arg-type]
            ),
            0,
            "NoAnswer",
        ),
        (
            ReadTimeoutError(None, "/api/v1/pods", "Read timed out. (read timeout=30)"),
            0,
            "NoAnswer",
        ),  # type: ignore[arg-type]
        (
            ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")),
            0,
            "NoAnswer",
        ),
        (ConnectionRefusedError(111, "Connection refused"), 0, "NoAnswer"),
        (TimeoutError("timed out"), 0, "NoAnswer"),
        (ApiException(status=0, reason="SSLError\nEOF occurred"), 0, "NoAnswer"),
    ],
)
def test_api_failures_become_api_errors(raised: Exception, status: int, reason: str) -> None:
    error = api_error(raised)
    assert error is not None
    assert (error.status, error.reason) == (status, reason)
    if status == 0:
        assert "no answer from the API server" in error.message


def test_a_bug_is_not_taken_for_an_api_failure() -> None:
    assert api_error(KeyError("status")) is None
    assert api_error(TypeError("unexpected keyword")) is None


class Recorder:
    """A kubernetes API class: every method records its call and answers from `answers`."""

    def __init__(self, answers: dict[str, Any] | None = None, raises: Exception | None = None):
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers = answers or {}
        self.raises = raises

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if self.raises is not None:
                raise self.raises
            answer = self.answers.get(name, {})
            return answer(*args, **kwargs) if callable(answer) else answer

        return method


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _api(
    core: Recorder | None = None, custom: Recorder | None = None, clock: Clock | None = None
) -> ClusterApi:
    return ClusterApi(
        qps=1000,
        burst=1000,
        core=core or Recorder(),
        custom=custom or Recorder(),
        rbac=Recorder(),
        clock=clock or Clock(),
    )


def _pod_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "report-1", "namespace": "batch"},
        "spec": {"containers": [{"name": "job", "image": "python"}]},
    }


def test_every_call_has_a_timeout() -> None:
    core = Recorder()
    custom = Recorder(
        {
            "get_namespaced_custom_object": copy.deepcopy(JOB),
            "list_namespaced_custom_object": {"items": []},
        }
    )
    rbac = Recorder()
    api = ClusterApi(core=core, custom=custom, rbac=rbac, clock=Clock())
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "report-results", "namespace": "batch"},
        "data": {},
    }
    role = {**config_map, "kind": "Role", "metadata": {"name": "report", "namespace": "batch"}}
    pod = {"metadata": {"finalizers": ["continuable.dev/tracking"]}}
    api.get_job("batch", "report")
    api.patch_job("batch", "report", {}, json_patch=False)
    api.patch_job("batch", "report", [], json_patch=True, status=True)
    api.delete_job("batch", "report", "u-1")
    api.create(_pod_manifest())
    api.create(config_map)
    api.create(role)
    api.patch("ConfigMap", "batch", "report-results", [])
    api.patch("Role", "batch", "report", [])
    api.stamp_pod("batch", "report-1", "pod-1", {"type": "DisruptionTarget"})
    api.delete_pod("batch", "report-1", "pod-1")
    api.remove_finalizer("batch", "report-1", pod)
    api.emit(copy.deepcopy(JOB), "Normal", "Launched", "attempt 1")
    api.get("ConfigMap", "batch", "report-results")
    api.list_jobs("batch")
    calls = core.calls + custom.calls + rbac.calls
    assert len(calls) == 15
    missing = [name for name, _, kwargs in calls if kwargs.get("_request_timeout") is None]
    assert missing == []


@pytest.mark.parametrize(
    ("kind", "reader", "patcher", "api_class"),
    [
        ("Pod", "read_namespaced_pod", "patch_namespaced_pod", "core"),
        ("ConfigMap", "read_namespaced_config_map", "patch_namespaced_config_map", "core"),
        (
            "ServiceAccount",
            "read_namespaced_service_account",
            "patch_namespaced_service_account",
            "core",
        ),
        ("Role", "read_namespaced_role", "patch_namespaced_role", "rbac"),
        ("RoleBinding", "read_namespaced_role_binding", "patch_namespaced_role_binding", "rbac"),
    ],
)
def test_objects_are_read_and_json_patched_by_kind(
    kind: str, reader: str, patcher: str, api_class: str
) -> None:
    found = {"metadata": {"name": "report-results", "uid": "cm-1"}}
    recorders = {"core": Recorder({reader: found}), "rbac": Recorder({reader: found})}
    api = ClusterApi(
        core=recorders["core"], custom=Recorder(), rbac=recorders["rbac"], clock=Clock()
    )
    ops = [{"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": "u-1"}]
    assert api.get(kind, "batch", "report-results") == {**found, "kind": kind}
    api.patch(kind, "batch", "report-results", ops)
    read, patched = recorders[api_class].calls
    assert read[:2] == (reader, ("report-results", "batch"))
    assert patched[:2] == (patcher, ("report-results", "batch", ops))
    assert patched[2]["_content_type"] == "application/json-patch+json"
    assert read[2]["_request_timeout"]
    assert patched[2]["_request_timeout"]


def test_an_absent_object_reads_as_none() -> None:
    core = Recorder(raises=_status(404, "NotFound", 'configmaps "report-results" not found'))
    assert _api(core=core).get("ConfigMap", "batch", "report-results") is None
    core.raises = _status(403, "Forbidden", "no")
    with pytest.raises(ApiError):
        _api(core=core).get("ConfigMap", "batch", "report-results")


def test_the_jobs_of_a_namespace_are_listed() -> None:
    other = {**copy.deepcopy(JOB), "metadata": {"name": "other", "namespace": "batch"}}
    custom = Recorder({"list_namespaced_custom_object": {"items": [copy.deepcopy(JOB), other]}})
    jobs = _api(custom=custom).list_jobs("batch")
    assert [j["metadata"]["name"] for j in jobs] == ["report", "other"]
    ((name, args, kwargs),) = custom.calls
    assert (name, args) == (
        "list_namespaced_custom_object",
        ("continuable.dev", "v1alpha1", "batch", "continuablejobs"),
    )
    assert kwargs["_request_timeout"]


def test_pods_are_created_with_strict_field_validation() -> None:
    core = Recorder()
    _api(core=core).create(_pod_manifest())
    ((name, _, kwargs),) = core.calls
    assert name == "create_namespaced_pod"
    assert kwargs["field_validation"] == "Strict"


def test_no_answer_from_the_api_server_is_an_api_error() -> None:
    refused = MaxRetryError(None, "/apis", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    api = _api(custom=Recorder(raises=refused))
    with pytest.raises(ApiError) as caught:
        api.get_job("batch", "report")
    assert caught.value.status == 0
    assert caught.value.__cause__ is refused


# Events: a repeat raises the count on the Event already posted (client-go's EventCorrelator).


class EventStore:
    """The core API's Event calls, over a dict of stored Events."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.creates = 0
        self.patches = 0

    def create_namespaced_event(self, namespace: str, body: Any, **_: Any) -> None:
        self.creates += 1
        self.events[body["metadata"]["name"]] = copy.deepcopy(body)

    def patch_namespaced_event(self, name: str, namespace: str, body: Any, **_: Any) -> None:
        self.patches += 1
        if name not in self.events:
            raise _status(404, "NotFound", f'events "{name}" not found')
        self.events[name].update(body)


def _emitting() -> tuple[ClusterApi, EventStore, Clock]:
    store, clock = EventStore(), Clock()
    api = ClusterApi(core=store, custom=Recorder(), rbac=Recorder(), clock=clock)
    return api, store, clock


def test_a_repeated_event_raises_the_count_of_the_one_posted() -> None:
    api, store, clock = _emitting()
    job = copy.deepcopy(JOB)
    for _ in range(5):
        api.emit(job, "Warning", "PodCreateFailed", "creating the pod failed: quota")
        clock.now += timedelta(seconds=10)
    (event,) = store.events.values()
    assert (store.creates, store.patches) == (1, 4)
    assert event["count"] == 5
    assert event["firstTimestamp"] == "2026-11-27T09:00:00Z"
    assert event["lastTimestamp"] == "2026-11-27T09:00:40Z"


def test_a_different_event_or_object_gets_an_event_of_its_own() -> None:
    api, store, _ = _emitting()
    job = copy.deepcopy(JOB)
    other = copy.deepcopy(JOB)
    other["metadata"]["uid"] = "u-2"  # the same name, a new job
    api.emit(job, "Warning", "PodCreateFailed", "quota")
    api.emit(job, "Warning", "PodCreateFailed", "forbidden")
    api.emit(job, "Normal", "Launched", "attempt 1")
    api.emit(other, "Warning", "PodCreateFailed", "quota")
    assert (store.creates, store.patches) == (4, 0)


def test_after_the_window_or_once_the_event_is_gone_a_new_one_is_posted() -> None:
    api, store, clock = _emitting()
    job = copy.deepcopy(JOB)
    api.emit(job, "Warning", "PodCreateFailed", "quota")
    clock.now += timedelta(seconds=cluster.EVENT_REPEAT_SECONDS + 1)
    api.emit(job, "Warning", "PodCreateFailed", "quota")
    assert (store.creates, store.patches) == (2, 0)
    store.events.clear()  # expired by the API server's event TTL
    api.emit(job, "Warning", "PodCreateFailed", "quota")
    assert (store.creates, store.patches) == (3, 1)
    (event,) = store.events.values()
    assert event["count"] == 1


def test_the_cache_of_posted_events_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "EVENT_CACHE_SIZE", 3)
    api, store, _ = _emitting()
    job = copy.deepcopy(JOB)
    for i in range(4):
        api.emit(job, "Warning", "Reason", f"message {i}")
    api.emit(job, "Warning", "Reason", "message 0")  # forgotten: posted anew
    api.emit(job, "Warning", "Reason", "message 3")  # remembered: counted
    assert (store.creates, store.patches) == (5, 1)
