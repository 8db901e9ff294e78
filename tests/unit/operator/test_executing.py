"""The executor against an in-memory cluster: what each API answer makes of a plan.

`FakeCluster` stands in for `ClusterApi` (our own seam): objects in a dict, JSON patches applied
with their `test` ops (so a stale fence or an object that changed hands is refused with 422 as
the API server refuses it), every call recorded, and errors scripted per method.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import pytest

from continuable.names import (
    JOB_LABEL,
    RESTART_FROM_STEP_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
    TRACKING_FINALIZER,
)
from continuable_operator import executing, planning, reconciling
from continuable_operator.actions import (
    Action,
    ClearRestartRequest,
    CreatePod,
    DropResults,
    Emit,
    EnsureObject,
    NameRestartRequest,
    PatchStatus,
    Plan,
    RemoveFinalizer,
)
from continuable_operator.caching import WATCHED_KINDS, Store
from continuable_operator.cluster import ApiError, ClusterApi
from continuable_operator.executing import Executor, Stop
from continuable_operator.metrics import OperatorMetrics
from continuable_operator.ownership import owner_reference
from continuable_operator.patching import pointer, status_patch

from .conftest import JOB, NOW, pod

Object = dict[str, Any]
NS, NAME, UID = "batch", "report", "u-1"
JOB_KEY = ("ContinuableJob", NS, NAME)


# The fake cluster.


def _invalid(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _parts(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _child(node: Any, part: str, path: str) -> Any:
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise _invalid(f"{path}: no such index")
        return node[int(part)]
    if not isinstance(node, dict) or part not in node:
        raise _invalid(f"{path}: no such member")
    return node[part]


def apply_json_patch(obj: Object, ops: list[Object]) -> Object:
    """RFC 6902, the ops the operator uses; a failed `test` or a missing path: 422."""
    doc = copy.deepcopy(obj)
    for op in ops:
        *parents, last = _parts(op["path"])
        node: Any = doc
        for part in parents:
            node = _child(node, part, op["path"])
        if op["op"] == "test":
            if _child(node, last, op["path"]) != op["value"]:
                raise _invalid(f"the test of {op['path']} failed")
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), op["value"])
            elif isinstance(node, dict):
                node[last] = copy.deepcopy(op["value"])
            else:
                raise _invalid(f"{op['path']}: no parent")
        elif op["op"] == "remove":
            _child(node, last, op["path"])
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise AssertionError(f"unexpected op {op}")
    return doc


def merge_patch(obj: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


class FakeCluster:
    """A `ClusterApi` over a dict of objects by (kind, namespace, name). `fail[method]` holds
    errors that method raises on its next calls, before doing anything; `meanwhile[method]`
    is a change someone else makes just before that method's next call."""

    def __init__(self, *objects: Object) -> None:
        self.store: dict[tuple[str, str, str], Object] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, list[ApiError]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.meanwhile: dict[str, Callable[[], None]] = {}
        self.validate: Callable[[Object], None] = lambda _: None
        for obj in objects:
            self.put(obj)

    def put(self, obj: Object) -> None:
        metadata = obj["metadata"]
        self.store[(obj["kind"], metadata["namespace"], metadata["name"])] = copy.deepcopy(obj)

    def obj(self, kind: str, name: str) -> Object:
        return self.store[(kind, NS, name)]

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        change = self.meanwhile.pop(method, None)
        if change is not None:
            change()
        queued = self.fail.get(method)
        if queued:
            raise queued.pop(0)

    def _existing(self, key: tuple[str, str, str]) -> Object:
        if key not in self.store:
            raise ApiError(404, "NotFound", f"{key[0]} {key[2]} not found")
        return self.store[key]

    def get_job(self, namespace: str, name: str, *, cached: bool = False) -> Object | None:
        self._enter("get_job", namespace, name, cached)
        return copy.deepcopy(self.store.get(("ContinuableJob", namespace, name)))

    def list_jobs(self, namespace: str) -> list[Object]:
        self._enter("list_jobs", namespace)
        return [copy.deepcopy(o) for (k, ns, _), o in self.store.items() if k == JOB_KEY[0]]

    def patch_job(
        self, namespace: str, name: str, body: Any, *, json_patch: bool, status: bool = False
    ) -> Object:
        self._enter("patch_job", namespace, name, body, json_patch, status)
        key = ("ContinuableJob", namespace, name)
        current = self._existing(key)
        patched = apply_json_patch(current, body) if json_patch else merge_patch(current, body)
        self.validate(patched)
        self.store[key] = patched
        return copy.deepcopy(patched)

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        self._enter("delete_job", namespace, name, uid)
        self.store.pop(("ContinuableJob", namespace, name), None)

    def watched(self, kinds: tuple[str, ...] = WATCHED_KINDS) -> Store:
        """A store synced with every object here, as the informers would fill it."""
        store = Store(kinds=kinds)
        for kind in kinds:
            found = [copy.deepcopy(o) for (k, _, _), o in self.store.items() if k == kind]
            store.replace(kind, found, None)
        return store

    def create_workload(self, manifest: Object) -> Object:
        self._enter("create_workload", manifest)
        return self.create({**manifest, "kind": "Workload"})

    def delete_workload(self, namespace: str, name: str, uid: str) -> None:
        self._enter("delete_workload", namespace, name, uid)
        key = ("Workload", namespace, name)
        if self._existing(key)["metadata"].get("uid") != uid:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition")
        del self.store[key]

    def patch_workload(
        self, namespace: str, name: str, body: Object, *, status: bool = False
    ) -> Object:
        self._enter("patch_workload", namespace, name, body, status)
        key = ("Workload", namespace, name)
        current = self._existing(key)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"].get("resourceVersion"):
            raise ApiError(409, "Conflict", "the object has been modified")
        self.store[key] = merge_patch(current, body)
        return copy.deepcopy(self.store[key])

    def get_cluster_object(self, group: str, version: str, plural: str, name: str) -> Object | None:
        self._enter("get_cluster_object", group, version, plural, name)
        return copy.deepcopy(self.store.get((plural, "", name)))

    def create(self, manifest: Object) -> Object:
        self._enter("create", manifest)
        metadata = manifest["metadata"]
        if (manifest["kind"], metadata["namespace"], metadata["name"]) in self.store:
            raise ApiError(409, "AlreadyExists", f"{metadata['name']} already exists")
        self.put(manifest)
        return copy.deepcopy(manifest)

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        self._enter("get", kind, namespace, name)
        return copy.deepcopy(self.store.get((kind, namespace, name)))

    def patch(self, kind: str, namespace: str, name: str, ops: list[Object]) -> Object:
        self._enter("patch", kind, namespace, name, ops)
        key = (kind, namespace, name)
        self.store[key] = apply_json_patch(self._existing(key), ops)
        return copy.deepcopy(self.store[key])

    def stamp_pod(self, namespace: str, name: str, uid: str, condition: Object) -> Object | None:
        self._enter("stamp_pod", namespace, name, uid, condition)
        return copy.deepcopy(self.store.get(("Pod", namespace, name)))

    def delete_pod(self, namespace: str, name: str, uid: str) -> Object | None:
        self._enter("delete_pod", namespace, name, uid)
        return copy.deepcopy(self.store.get(("Pod", namespace, name)))

    def remove_finalizer(self, namespace: str, name: str, pod: Object) -> Object:
        self._enter("remove_finalizer", namespace, name, pod)
        found = self._existing(("Pod", namespace, name))
        found["metadata"]["finalizers"].remove(TRACKING_FINALIZER)
        return copy.deepcopy(found)

    def emit(self, job: Object, type_: str, reason: str, message: str) -> None:
        self._enter("emit", job, type_, reason, message)
        self.events.append((type_, reason, message))


# Objects.


def _job(attempt: int | None = 1, **annotations: str) -> Object:
    job = copy.deepcopy(JOB)
    if attempt is not None:
        job["status"] = {"attempt": attempt, "phase": "Running", "conditions": []}
    if annotations:
        job["metadata"]["annotations"] = dict(annotations)
    return job


def _owners(uid: str | None) -> list[Object]:
    if uid is None:
        return []
    return [owner_reference({"metadata": {"name": NAME, "uid": uid}})]


def _config_map(uid: str | None, data: dict[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "report-results",
            "namespace": NS,
            "labels": {JOB_LABEL: NAME},
            "ownerReferences": _owners(uid),
        },
        "data": dict(data),
    }


def _role(uid: str | None, pod: str) -> Object:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": "report-checkpoint",
            "namespace": NS,
            "labels": {JOB_LABEL: NAME},
            "ownerReferences": _owners(uid),
        },
        "rules": [{"apiGroups": [""], "resources": ["pods"], "resourceNames": [pod]}],
    }


def _pod(uid: str | None, attempt: int = 2) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"report-{attempt}",
            "namespace": NS,
            "uid": f"pod-{attempt}-of-{uid}",
            "labels": {JOB_LABEL: NAME, "continuable.dev/attempt": str(attempt)},
            "finalizers": [TRACKING_FINALIZER],
            "ownerReferences": _owners(uid),
        },
        "spec": {"containers": [{"name": "job", "image": "python"}]},
    }


def _executor(cluster: FakeCluster, metrics: OperatorMetrics | None = None) -> Executor:
    return Executor(
        cast(ClusterApi, cluster),
        cluster.watched(),
        clock=lambda: NOW,
        metrics=metrics or OperatorMetrics(),
    )


def _run(cluster: FakeCluster, *actions: Action, pods: list[Object] | None = None) -> None:
    job = cluster.get_job(NS, NAME)
    cluster.calls.clear()
    _executor(cluster).execute(job, pods or [], Plan(list(actions)), 0.0)


CONFLICT_PLAN_REQUEUE = 10.0


@pytest.fixture
def conflicts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The name-conflict plans asked for; each writes a marker condition and a Warning."""
    asked: list[tuple[Any, ...]] = []

    def plan_name_conflict(job: Object, kind: str, name: str, holder: str, now: datetime) -> Plan:
        asked.append((job["status"]["attempt"], kind, name, holder))
        marker = {"type": "NameConflict", "status": "True", "message": f"{kind} {name}"}
        patch = PatchStatus({"conditions": [marker]}, job["status"]["attempt"])
        return Plan([patch, Emit("Warning", "NameConflict", holder)], CONFLICT_PLAN_REQUEUE)

    monkeypatch.setattr(planning, "plan_name_conflict", plan_name_conflict)
    return asked


# The status write.


@pytest.mark.parametrize(
    ("fields", "expected", "current", "body", "is_json"),
    [
        ({"attempt": 0}, None, {}, {"status": {"attempt": 0}}, False),
        (
            {"attempt": 0, "checkpoint": None},
            None,
            {"checkpoint": {"steps": []}},
            {"status": {"attempt": 0, "checkpoint": None}},
            False,
        ),
        (
            {"attempt": 3, "phase": "Running"},
            2,
            {},
            [
                {"op": "test", "path": "/status/attempt", "value": 2},
                {"op": "add", "path": "/status/attempt", "value": 3},
                {"op": "add", "path": "/status/phase", "value": "Running"},
            ],
            True,
        ),
        (  # a restart from the first step: the checkpoint the job holds is removed
            {"attempt": 3, "checkpoint": None},
            2,
            {"checkpoint": {"steps": []}},
            [
                {"op": "test", "path": "/status/attempt", "value": 2},
                {"op": "add", "path": "/status/attempt", "value": 3},
                {"op": "remove", "path": "/status/checkpoint"},
            ],
            True,
        ),
        (  # ... and none is removed when there is none (a remove of nothing is a 422)
            {"attempt": 3, "checkpoint": None},
            2,
            {},
            [
                {"op": "test", "path": "/status/attempt", "value": 2},
                {"op": "add", "path": "/status/attempt", "value": 3},
            ],
            True,
        ),
        (  # a restart from a later step keeps the steps before it
            {"checkpoint": {"steps": [{"name": "fetch"}]}},
            2,
            {"checkpoint": {"steps": [{"name": "fetch"}, {"name": "load"}]}},
            [
                {"op": "test", "path": "/status/attempt", "value": 2},
                {
                    "op": "add",
                    "path": "/status/checkpoint",
                    "value": {"steps": [{"name": "fetch"}]},
                },
            ],
            True,
        ),
    ],
)
def test_status_patch(
    fields: Object, expected: int | None, current: Object, body: Any, is_json: bool
) -> None:
    assert status_patch(PatchStatus(fields, expected), current) == (body, is_json)


def test_a_fenced_status_write_applies_and_a_reset_checkpoint_is_removed() -> None:
    job = _job(2)
    job["status"]["checkpoint"] = {"steps": [{"name": "fetch"}]}
    cluster = FakeCluster(job)
    _run(cluster, PatchStatus({"attempt": 3, "checkpoint": None}, 2))
    assert cluster.obj("ContinuableJob", NAME)["status"] == {
        "attempt": 3,
        "phase": "Running",
        "conditions": [],
    }


@pytest.mark.parametrize(
    ("change", "retry_after"),
    [
        ("attempt", executing.REPLAN_SECONDS),  # another writer raised the attempt: a conflict
        ("uid", executing.REPLAN_SECONDS),  # deleted and created again: another job
        ("gone", None),  # deleted: nothing more to do
    ],
)
def test_a_fencing_conflict_stops_the_plan_for_a_replan(
    change: str, retry_after: float | None
) -> None:
    cluster = FakeCluster(_job(1))
    job = cluster.get_job(NS, NAME)
    stored = cluster.obj("ContinuableJob", NAME)
    if change == "attempt":
        stored["status"]["attempt"] = 2
    elif change == "uid":
        stored["metadata"]["uid"] = "u-2"
        cluster.fail["patch_job"] = [_invalid("the test of /status/attempt failed")]
    else:
        del cluster.store[JOB_KEY]
        cluster.fail["patch_job"] = [ApiError(409, "Conflict", "the object has been modified")]
    after = EnsureObject(_config_map(UID, {"attempt": "2"}))
    with pytest.raises(Stop) as stopped:
        _executor(cluster).execute(job, [], Plan([PatchStatus({"attempt": 2}, 1), after]), 0.0)
    assert stopped.value.retry_after == retry_after
    assert cluster.called("create") == []  # the rest of the plan did not run


def test_a_refused_status_write_with_the_attempt_unchanged_is_raised_not_replanned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = FakeCluster(_job(1))
    refusal = 'ContinuableJob "report" is invalid: status.conditions[0].reason: Invalid value'
    cluster.fail["patch_job"] = [_invalid(refusal)]
    with caplog.at_level(logging.WARNING), pytest.raises(ApiError) as raised:
        _run(cluster, PatchStatus({"phase": "Failed"}, 1))
    assert raised.value.status == 422
    assert refusal in caplog.text  # the API server's words reach the log


def test_a_refused_first_write_is_raised_too() -> None:
    cluster = FakeCluster(_job(None))
    cluster.fail["patch_job"] = [_invalid("status.phase: Unsupported value")]
    with pytest.raises(ApiError):
        _run(cluster, PatchStatus({"attempt": 0, "phase": "Pending"}, None))


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _comes_due_after(reconciler: reconciling.Reconciler, ticks: Ticks, seconds: float) -> bool:
    ticks.now += seconds - 0.01
    if reconciler.scheduler.run_due():
        return False
    ticks.now += 0.01
    return reconciler.scheduler.run_due() == 1


@pytest.mark.parametrize(
    ("attempt_meanwhile", "next_reconcile"),
    [(1, reconciling.ERROR_RETRY_SECONDS), (2, executing.REPLAN_SECONDS)],
)
def test_the_loop_backs_off_after_a_validation_error_and_replans_after_a_conflict(
    monkeypatch: pytest.MonkeyPatch, attempt_meanwhile: int, next_reconcile: float
) -> None:
    cluster = FakeCluster(_job(1))
    cluster.obj("ContinuableJob", NAME)["status"]["attempt"] = attempt_meanwhile

    def reject_bad_reasons(job: Object) -> None:
        if any(c.get("reason") == "OutOfnvidia.com/gpu" for c in job["status"]["conditions"]):
            raise _invalid("status.conditions[0].reason: should match '^[A-Za-z]...'")

    cluster.validate = reject_bad_reasons
    bad = {"type": "Failed", "status": "True", "reason": "OutOfnvidia.com/gpu"}
    monkeypatch.setattr(
        planning,
        "plan",
        lambda job, pods, now, **_: Plan([PatchStatus({"conditions": [bad]}, 1)]),
    )
    ticks = Ticks()
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster),
        cluster.watched(),
        clock=lambda: NOW,
        requeue_workers=0,
        monotonic=ticks,
    )
    reconciler.reconcile(NS, NAME)
    assert _comes_due_after(reconciler, ticks, next_reconcile)


# Objects the job needs: controlled by its UID, or a name conflict.


def test_an_absent_object_is_created() -> None:
    cluster = FakeCluster(_job(2))
    manifest = _config_map(UID, {"attempt": "2"})
    _run(cluster, EnsureObject(manifest))
    assert cluster.obj("ConfigMap", "report-results") == manifest


def test_the_jobs_results_config_map_gets_the_new_attempt_and_keeps_its_results() -> None:
    cluster = FakeCluster(_job(2), _config_map(UID, {"attempt": "1", "fetch.json": "42"}))
    _run(cluster, EnsureObject(_config_map(UID, {"attempt": "2"})))
    assert cluster.obj("ConfigMap", "report-results")["data"] == {
        "attempt": "2",
        "fetch.json": "42",
    }
    ((_, _, _, ops),) = cluster.called("patch")
    assert ops[0] == {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": UID}


def test_an_object_of_the_job_is_re_owned_and_brought_to_the_manifest() -> None:
    stale = _role(UID, "report-1")
    stale["metadata"]["ownerReferences"][0].pop("blockOwnerDeletion")
    stale["metadata"]["labels"] = {"team": "data"}
    cluster = FakeCluster(_job(2), stale)
    manifest = _role(UID, "report-2")
    _run(cluster, EnsureObject(manifest))
    role = cluster.obj("Role", "report-checkpoint")
    assert role["rules"] == manifest["rules"]
    assert role["metadata"]["ownerReferences"] == manifest["metadata"]["ownerReferences"]
    assert role["metadata"]["labels"] == {"team": "data", JOB_LABEL: NAME}


def test_an_object_already_as_the_manifest_has_it_is_not_patched() -> None:
    cluster = FakeCluster(_job(2), _role(UID, "report-2"))
    _run(cluster, EnsureObject(_role(UID, "report-2")))
    assert cluster.called("patch") == []


@pytest.mark.parametrize(
    ("holder", "described"),
    [("u-old", "ContinuableJob report (uid u-old)"), (None, "no controller")],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda uid, attempt: _config_map(uid, {"attempt": str(attempt)}),
        lambda uid, attempt: _role(uid, f"report-{attempt}"),
    ],
    ids=["ConfigMap", "Role"],
)
def test_an_object_held_by_anything_else_is_a_name_conflict_never_adopted(
    conflicts: list[tuple[Any, ...]],
    holder: str | None,
    described: str,
    make: Callable[[str | None, int], Object],
) -> None:
    theirs = make(holder, 7)
    cluster = FakeCluster(_job(1), theirs)
    job = cluster.get_job(NS, NAME)
    # The plan raised the attempt before it ensures the objects: the conflict is planned from
    # the job as it is now.
    plan = Plan([PatchStatus({"attempt": 2}, 1), EnsureObject(make(UID, 2)), CreatePod(_pod(UID))])
    with pytest.raises(Stop) as stopped:
        _executor(cluster).execute(job, [], plan, 0.0)
    assert stopped.value.retry_after == CONFLICT_PLAN_REQUEUE
    kind, name = theirs["kind"], theirs["metadata"]["name"]
    assert conflicts == [(2, kind, name, described)]
    assert cluster.obj(kind, name) == theirs  # neither merged nor re-owned
    assert cluster.called("patch") == []
    assert ("Pod", NS, "report-2") not in cluster.store  # nothing granted to a pod
    status = cluster.obj("ContinuableJob", NAME)["status"]
    assert status["conditions"][0]["type"] == "NameConflict"
    assert cluster.events == [("Warning", "NameConflict", described)]


def test_an_object_that_changed_hands_between_read_and_write_is_not_patched(
    conflicts: list[tuple[Any, ...]],
) -> None:
    cluster = FakeCluster(_job(2), _config_map(UID, {"attempt": "1"}))
    theirs = _config_map("u-other", {"attempt": "9"})
    # Deleted and created by someone else between our read and our patch.
    cluster.meanwhile["patch"] = lambda: cluster.put(theirs)
    with pytest.raises(Stop):
        _run(cluster, EnsureObject(_config_map(UID, {"attempt": "2"})))
    assert cluster.obj("ConfigMap", "report-results") == theirs
    assert [c[1:3] for c in conflicts] == [("ConfigMap", "report-results")]


def test_an_object_created_meanwhile_by_another_reconcile_is_looked_at_again() -> None:
    cluster = FakeCluster(_job(2))
    ours = _config_map(UID, {"attempt": "1", "fetch.json": "42"})
    cluster.meanwhile["create"] = lambda: cluster.put(ours)  # our create then gets 409
    _run(cluster, EnsureObject(_config_map(UID, {"attempt": "2"})))
    assert cluster.obj("ConfigMap", "report-results")["data"] == {
        "attempt": "2",
        "fetch.json": "42",
    }


def test_an_object_that_keeps_being_refused_goes_to_the_backoff() -> None:
    cluster = FakeCluster(_job(2), _role(UID, "report-1"))
    cluster.fail["patch"] = [_invalid("rules[0].verbs: Required value")] * executing.TRIES
    with pytest.raises(ApiError):
        _run(cluster, EnsureObject(_role(UID, "report-2")))
    assert len(cluster.called("patch")) == executing.TRIES


# The pod.


def test_a_pod_is_created_and_counted() -> None:
    cluster = FakeCluster(_job(2))
    metrics = OperatorMetrics()
    job = cluster.get_job(NS, NAME)
    _executor(cluster, metrics).execute(job, [], Plan([CreatePod(_pod(UID))]), 0.0)
    assert ("Pod", NS, "report-2") in cluster.store
    assert metrics.registry.get_sample_value("continuable_attempts_total") == 1


def test_a_pod_that_exists_and_is_the_jobs_is_fine() -> None:
    cluster = FakeCluster(_job(2), _pod(UID))
    metrics = OperatorMetrics()
    job = cluster.get_job(NS, NAME)
    after = Emit("Normal", "Launched", "attempt 2")
    _executor(cluster, metrics).execute(job, [], Plan([CreatePod(_pod(UID)), after]), 0.0)
    assert metrics.registry.get_sample_value("continuable_attempts_total") == 0
    assert cluster.events == [("Normal", "Launched", "attempt 2")]  # the plan went on


def test_a_pod_name_held_by_anything_else_is_a_name_conflict(
    conflicts: list[tuple[Any, ...]],
) -> None:
    foreign = _pod("u-old")
    cluster = FakeCluster(_job(2), foreign)
    with pytest.raises(Stop) as stopped:
        _run(cluster, CreatePod(_pod(UID)), Emit("Normal", "Launched", "attempt 2"))
    assert stopped.value.retry_after == CONFLICT_PLAN_REQUEUE
    assert conflicts == [(2, "Pod", "report-2", "ContinuableJob report (uid u-old)")]
    assert cluster.obj("Pod", "report-2") == foreign
    assert ("Normal", "Launched", "attempt 2") not in cluster.events


def test_a_refused_pod_creation_is_planned_with_the_api_servers_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[int, str]] = []

    def plan_create_failure(job: Object, status: int, message: str, now: datetime) -> Plan:
        asked.append((status, message))
        return Plan([Emit("Warning", "PodCreateFailed", message)], 10.0)

    monkeypatch.setattr(planning, "plan_create_failure", plan_create_failure)
    cluster = FakeCluster(_job(2))
    words = 'pods "report-2" is forbidden: exceeded quota: compute'
    cluster.fail["create"] = [ApiError(403, "Forbidden", words)]
    with pytest.raises(Stop) as stopped:
        _run(cluster, CreatePod(_pod(UID)))
    assert stopped.value.retry_after == 10.0
    assert asked == [(403, words)]
    assert cluster.events == [("Warning", "PodCreateFailed", words)]


def test_a_finalizer_is_released_on_a_pod_the_job_does_not_control() -> None:
    """A pod of a deleted job of the same name: found by name among the pods listed."""
    old = _pod("u-old", attempt=1)
    cluster = FakeCluster(_job(1), old)
    _run(cluster, RemoveFinalizer("report-1", old["metadata"]["uid"]), pods=[old])
    assert cluster.obj("Pod", "report-1")["metadata"]["finalizers"] == []


def test_an_orphan_plan_needs_no_job() -> None:
    old = _pod(UID, attempt=1)
    cluster = FakeCluster(old)
    plan = Plan([RemoveFinalizer("report-1", old["metadata"]["uid"])])
    _executor(cluster).execute(None, [old], plan, 0.0)
    assert cluster.obj("Pod", "report-1")["metadata"]["finalizers"] == []


# A restart's results and request.


@pytest.mark.parametrize(
    ("holder", "data_after"),
    [
        (UID, {"attempt": "1", "fetch.json": "1"}),
        ("u-other", {"attempt": "1", "fetch.json": "1", "load.json": "2"}),
    ],
)
def test_results_are_dropped_only_from_the_jobs_config_map(
    holder: str, data_after: dict[str, str]
) -> None:
    data = {"attempt": "1", "fetch.json": "1", "load.json": "2"}
    cluster = FakeCluster(_job(2), _config_map(holder, data))
    _run(cluster, DropResults(("load", "report")))
    assert cluster.obj("ConfigMap", "report-results")["data"] == data_after


NONCE, STEP = RESTART_NONCE_ANNOTATION, RESTART_FROM_STEP_ANNOTATION


@pytest.mark.parametrize(
    ("annotations", "nonce", "meanwhile", "left", "outcome"),
    [
        # the request acted on is removed, whole
        ({STEP: "load", NONCE: "n1"}, "n1", None, {}, None),
        # a new request (a new nonce) came meanwhile: it stays, and is planned at once
        ({STEP: "load", NONCE: "n1"}, "n1", {STEP: "fetch", NONCE: "n2"}, None, "replan"),
        # a request set by hand, without a nonce: removed while its step is the one acted on
        ({STEP: "load"}, None, None, {}, None),
        ({STEP: "load"}, None, {STEP: "fetch"}, None, "replan"),
    ],
)
def test_a_restart_request_is_removed_only_while_it_is_the_one_acted_on(
    annotations: dict[str, str],
    nonce: str | None,
    meanwhile: dict[str, str] | None,
    left: dict[str, str] | None,
    outcome: str | None,
) -> None:
    cluster = FakeCluster(_job(2, other="kept", **annotations))
    job = cluster.get_job(NS, NAME)
    if meanwhile is not None:
        cluster.obj("ContinuableJob", NAME)["metadata"]["annotations"] = {
            "other": "kept",
            **meanwhile,
        }
    plan = Plan([ClearRestartRequest(nonce)])
    if outcome == "replan":
        with pytest.raises(Stop) as stopped:
            _executor(cluster).execute(job, [], plan, 0.0)
        assert stopped.value.retry_after == executing.REPLAN_SECONDS
        left = meanwhile
    else:
        _executor(cluster).execute(job, [], plan, 0.0)
    assert cluster.obj("ContinuableJob", NAME)["metadata"]["annotations"] == {
        "other": "kept",
        **(left or {}),
    }
    ((_, _, ops, is_json, on_status),) = cluster.called("patch_job")
    assert (is_json, on_status) == (True, False)
    assert ops[0]["op"] == "test"


@pytest.mark.parametrize(("meanwhile", "named"), [(None, True), ({STEP: "fetch"}, False)])
def test_a_request_set_by_hand_is_named_while_its_step_is_the_one_planned_on(
    meanwhile: dict[str, str] | None, named: bool
) -> None:
    cluster = FakeCluster(_job(2, **{STEP: "load"}))
    job = cluster.get_job(NS, NAME)
    if meanwhile is not None:
        cluster.obj("ContinuableJob", NAME)["metadata"]["annotations"] = meanwhile
    plan = Plan([NameRestartRequest("load", "set-by-hand-9")])
    if named:
        _executor(cluster).execute(job, [], plan, 0.0)
        annotations = cluster.obj("ContinuableJob", NAME)["metadata"]["annotations"]
        assert annotations == {STEP: "load", NONCE: "set-by-hand-9"}
    else:
        with pytest.raises(Stop) as stopped:
            _executor(cluster).execute(job, [], plan, 0.0)
        assert stopped.value.retry_after == executing.REPLAN_SECONDS
        assert cluster.obj("ContinuableJob", NAME)["metadata"]["annotations"] == meanwhile


def test_a_refused_request_removal_with_the_request_unchanged_goes_to_the_backoff() -> None:
    cluster = FakeCluster(_job(2, **{STEP: "load", NONCE: "n1"}))
    cluster.fail["patch_job"] = [_invalid("metadata.annotations: Invalid value")]
    with pytest.raises(ApiError):
        _run(cluster, ClearRestartRequest("n1"))


def test_pointer_escapes_slashes_and_tildes() -> None:
    assert pointer("metadata", "annotations", NONCE) == (
        "/metadata/annotations/continuable.dev~1restart-nonce"
    )
    assert pointer("data", "a~b", 0) == "/data/a~0b/0"


# The service account the template names: who else uses it reaches the planner.


@pytest.mark.parametrize(
    ("account", "other_account", "listed", "shared"),
    [
        (None, "shared", False, None),  # the job's own account: nothing to ask
        ("shared", "shared", True, "early"),
        ("shared", "another", True, None),
    ],
)
def test_the_jobs_sharing_a_named_account_are_passed_to_the_planner(
    monkeypatch: pytest.MonkeyPatch,
    account: str | None,
    other_account: str,
    listed: bool,
    shared: str | None,
) -> None:
    job = _job(1)
    job["metadata"]["creationTimestamp"] = "2026-11-27T09:00:00Z"
    if account:
        job["spec"]["template"]["spec"]["serviceAccountName"] = account
    other = _job(1)
    other["metadata"].update(name="early", uid="u-9", creationTimestamp="2026-11-27T08:00:00Z")
    other["spec"]["template"]["spec"]["serviceAccountName"] = other_account
    cluster = FakeCluster(job, other)
    seen: list[str | None] = []

    def plan(
        job: Object, pods: Any, now: datetime, *, shared_with: str | None = None, **_: Any
    ) -> Plan:
        seen.append(shared_with)
        return Plan()

    monkeypatch.setattr(planning, "plan", plan)
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster), cluster.watched(), requeue_workers=0
    )
    assert reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot()) == (None, False)
    assert seen == [shared]
    assert bool(cluster.called("list_jobs")) == listed


def test_a_pod_seen_ended_makes_the_job_read_fresh_so_its_last_words_are_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pod writes its final checkpoint, then ends. The pods' watch may tell of the end before
    the job's watch tells of the last words: the store then holds the ended pod and the job
    without them, and the job must be read from the API server. Planned from the store's job,
    an Isolated stop looked like a bare exit 75 and was counted as an interruption (the soak
    found it when the job was read before the pods)."""
    running = _pod(UID, attempt=1)
    running["status"] = {"phase": "Running"}
    cluster = FakeCluster(_job(1), running)
    store = cluster.watched()
    cluster.obj("ContinuableJob", NAME)["status"]["checkpoint"] = {
        "attempt": 1,
        "stopReason": "Isolated",
    }
    ended = copy.deepcopy(running)
    ended["status"] = {"phase": "Failed"}
    cluster.put(ended)
    store.apply("Pod", "MODIFIED", ended)
    seen: list[Any] = []

    def plan(job: Object, pods: list[Object], now: datetime, **_: Any) -> Plan:
        seen.append(job["status"].get("checkpoint"))
        return Plan()

    monkeypatch.setattr(planning, "plan", plan)
    reconciler = reconciling.Reconciler(cast(ClusterApi, cluster), store, requeue_workers=0)
    slot = reconciling._Slot()
    reconciler._reconcile(NS, NAME, 0.0, slot)
    assert seen == [{"attempt": 1, "stopReason": "Isolated"}]
    assert len(cluster.called("get_job")) == 1
    # Once read after the end, the store's job is trusted: the next reconcile reads nothing.
    cluster.calls.clear()
    reconciler._reconcile(NS, NAME, 0.0, slot)
    assert cluster.calls == []


def test_an_ended_pod_whose_last_words_the_store_holds_needs_no_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended = _pod(UID, attempt=1)
    ended["status"] = {"phase": "Failed"}
    job = _job(1)
    job["status"]["checkpoint"] = {"attempt": 1, "stopReason": "Interrupted"}
    cluster = FakeCluster(job, ended)
    monkeypatch.setattr(planning, "plan", lambda *a, **k: Plan())
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster), cluster.watched(), requeue_workers=0
    )
    reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    assert cluster.calls == []


def test_a_reconcile_with_nothing_newly_ended_reads_nothing_from_the_api_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = _pod(UID, attempt=1)
    running["status"] = {"phase": "Running"}
    cluster = FakeCluster(_job(1), running)
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster), cluster.watched(), requeue_workers=0
    )
    reconciler.reconcile(NS, NAME)
    assert [name for name, _ in cluster.calls if name.startswith(("get", "list"))] == []


def test_no_reconcile_starts_before_the_first_lists_are_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At start-up a pod not yet listed must not be taken for a lost one."""
    monkeypatch.setattr(reconciling, "SYNC_WAIT_SECONDS", 0.01)
    cluster = FakeCluster(_job(1))
    planned: list[Any] = []
    monkeypatch.setattr(planning, "plan", lambda *a, **k: planned.append(a) or Plan())
    reconciler = reconciling.Reconciler(cast(ClusterApi, cluster), Store(), requeue_workers=0)
    with pytest.raises(reconciling.NotSynced):
        reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    assert planned == []
    assert cluster.calls == []


def test_a_relaunch_records_and_launches_in_one_status_write_then_releases_the_old_pod() -> None:
    """The end of attempt 1 and the raise to attempt 2 go in one write fenced on attempt 1;
    then the new pod; the old pod's finalizer and the Events after it, off the new pod's path."""
    disrupted = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
    evicted = pod(1, "Failed", exit_code=143, conditions=[disrupted])
    evicted["metadata"]["namespace"] = NS
    evicted["kind"] = "Pod"
    cluster = FakeCluster(_job(1), evicted)
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster), cluster.watched(), requeue_workers=0
    )
    reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    order = [name for name, _ in cluster.calls]
    assert order.count("patch_job") == 1, order
    status = cluster.obj("ContinuableJob", NAME)["status"]
    assert status["attempt"] == 2
    assert [a["outcome"] for a in status["attempts"]] == ["Interrupted", "Running"]
    created = [args[0]["metadata"]["name"] for args in cluster.called("create")]
    assert created[-1] == "report-2"
    last_create = len(order) - 1 - order[::-1].index("create")
    assert order.index("patch_job") < last_create < order.index("remove_finalizer")
    assert order.index("remove_finalizer") < order.index("emit")


def test_events_wait_for_the_plans_writes_and_are_posted_even_when_a_later_one_fails() -> None:
    """An Event is off the path from a pod's end to its replacement: posted after the plan's
    writes, and still posted when a later write fails, since the transition it tells of was
    written."""
    cluster = FakeCluster(_job(1))
    cluster.fail["create"] = [ApiError(500, "InternalError", "etcd leader changed")]
    with pytest.raises(ApiError):
        _run(
            cluster,
            PatchStatus({"phase": "Running"}, 1),
            Emit("Normal", "Running", "pod report-1 runs"),
            EnsureObject(_config_map(UID, {"attempt": "1"})),
        )
    assert [name for name, _ in cluster.calls] == ["patch_job", "create", "emit"]


def test_the_event_of_a_refused_status_write_is_never_posted() -> None:
    cluster = FakeCluster(_job(1))
    cluster.fail["patch_job"] = [ApiError(500, "InternalError", "etcd leader changed")]
    with pytest.raises(ApiError):
        _run(cluster, PatchStatus({"phase": "Running"}, 1), Emit("Normal", "Running", "runs"))
    assert cluster.events == []


def _pods_only(cluster: FakeCluster) -> Store:
    """The store right after a restart among thousands of jobs: the pods' first list is in,
    the jobs' and the other kinds' not yet."""
    store = Store()
    store.replace(
        "Pod", [copy.deepcopy(o) for (k, _, _), o in cluster.store.items() if k == "Pod"], None
    )
    return store


def test_a_reconcile_before_the_jobs_are_listed_reads_its_job_from_the_api_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pod that ended while the operator was away is relaunched without waiting for the
    list of every job; its job is read from the API server, as long as the list is not in."""
    ended = _pod(UID, attempt=1)
    ended["status"] = {"phase": "Failed"}
    cluster = FakeCluster(_job(1), ended)
    seen: list[Object] = []
    monkeypatch.setattr(planning, "plan", lambda job, *a, **k: seen.append(job) or Plan())
    store = _pods_only(cluster)
    reconciler = reconciling.Reconciler(cast(ClusterApi, cluster), store, requeue_workers=0)
    reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    assert [job["metadata"]["name"] for job in seen] == [NAME]
    assert {call[:2] for call in cluster.called("get_job")} == {(NS, NAME)}


@pytest.mark.parametrize(
    ("last_words", "reads"),
    [(True, [(NS, NAME, True)]), (False, [(NS, NAME, True), (NS, NAME, False)])],
    ids=["in-the-cached-copy", "missing-there"],
)
def test_before_the_jobs_are_listed_a_job_is_read_from_the_watch_cache_first(
    monkeypatch: pytest.MonkeyPatch, last_words: bool, reads: list[tuple[Any, ...]]
) -> None:
    """Right after a restart among thousands of jobs a read that must be served by etcd waited
    seconds behind the first lists (issue 24): the job is read from the API server's watch
    cache, and read again from etcd only when that copy lacks the ended pod's last words."""
    ended = _pod(UID, attempt=1)
    ended["status"] = {"phase": "Failed"}
    job = _job(1)
    if last_words:
        job["status"]["checkpoint"] = {"attempt": 1, "stopReason": "Interrupted"}
    cluster = FakeCluster(job, ended)
    monkeypatch.setattr(planning, "plan", lambda job, *a, **k: Plan())
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster), _pods_only(cluster), requeue_workers=0
    )
    reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    assert cluster.called("get_job") == reads


def test_results_are_dropped_even_before_the_config_maps_are_listed() -> None:
    """A kind not listed yet is read from the API server: a results ConfigMap missing from
    the store is not taken for one that does not exist (a restart would keep the results of
    the steps it redoes)."""
    data = {"attempt": "1", "fetch.json": "1", "load.json": "2"}
    cluster = FakeCluster(_job(2), _config_map(UID, data))
    executor = Executor(
        cast(ClusterApi, cluster), _pods_only(cluster), clock=lambda: NOW, metrics=OperatorMetrics()
    )
    executor.execute(cluster.get_job(NS, NAME), [], Plan([DropResults(("load",))]), 0.0)
    assert cluster.obj("ConfigMap", "report-results")["data"] == {"attempt": "1", "fetch.json": "1"}
