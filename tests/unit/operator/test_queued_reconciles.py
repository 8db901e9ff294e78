"""Reconciles of a job Kueue queues (issue 25), against the fake cluster: the Workload created
with its priority resolved, the admission's flavors read and applied to the pod, and a
Workload status write that lost a race with Kueue replanned."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from continuable_operator import admitting, priorities, reconciling
from continuable_operator import conditions as c
from continuable_operator import queueing as q
from continuable_operator.caching import WORKLOAD, Store, watched_kinds
from continuable_operator.cluster import ClusterApi
from continuable_operator.executing import REPLAN_SECONDS
from continuable_operator.ownership import owner_reference

from .test_executing import NAME, NS, UID, FakeCluster, _job, _pod

Object = dict[str, Any]
KUEUE_KINDS = watched_kinds(True)


def _queued(attempt: int | None = None, **labels: str) -> Object:
    job = _job(attempt)
    job["metadata"]["labels"] = {q.QUEUE_LABEL: "team-queue", **labels}
    return job


def _cluster_object(plural: str, name: str, **fields: Any) -> Object:
    return {"kind": plural, "metadata": {"name": name, "namespace": ""}, **fields}


def _workload(job: Object, *conditions: Object, version: str = "7") -> Object:
    workload = q.workload_for(job, job["spec"]["template"]["spec"], None)
    workload["metadata"].update(resourceVersion=version, generation=1)
    workload["metadata"]["ownerReferences"] = [owner_reference(job)]
    workload["status"] = {
        "conditions": list(conditions),
        "admission": {
            "clusterQueue": "cq",
            "podSetAssignments": [{"name": "main", "flavors": {"cpu": "spot"}}],
        },
    }
    return workload


def _condition(kind: str, reason: str) -> Object:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": "",
        "lastTransitionTime": "2026-11-27T08:00:00Z",
    }


ADMITTED = (_condition(q.QUOTA_RESERVED, "QuotaReserved"), _condition(q.ADMITTED, "Admitted"))


def _reconcile(cluster: FakeCluster) -> tuple[float | None, bool]:
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster), cluster.watched(KUEUE_KINDS), requeue_workers=0
    )
    return reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())


def test_a_queued_job_gets_a_workload_with_its_priority_and_no_pod() -> None:
    job = _queued(**{priorities.PRIORITY_CLASS_LABEL: "high"})
    cluster = FakeCluster(job, _cluster_object("workloadpriorityclasses", "high", value=1000))
    _reconcile(cluster)
    (created,) = [args[0] for args in cluster.called("create_workload")]
    assert created["spec"]["queueName"] == "team-queue"
    assert created["spec"]["priority"] == 1000
    assert created["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert not [m for (m,) in cluster.called("create") if m["kind"] == "Pod"]
    assert cluster.obj("ContinuableJob", NAME)["status"]["phase"] == "Queued"


def test_a_priority_class_that_does_not_exist_keeps_the_job_queued_saying_which() -> None:
    cluster = FakeCluster(_queued(**{priorities.PRIORITY_CLASS_LABEL: "missing"}))
    retry, _ = _reconcile(cluster)
    assert not cluster.called("create_workload")
    assert retry == admitting.PRIORITY_RETRY_SECONDS
    status = cluster.obj("ContinuableJob", NAME)["status"]
    assert status["phase"] == "Queued"
    queued = {x["type"]: x for x in status["conditions"]}[c.QUEUED]
    assert queued["reason"] == c.PRIORITY_CLASS_NOT_FOUND
    assert queued["message"].startswith(
        "metadata.labels[kueue.x-k8s.io/priority-class]: WorkloadPriorityClass 'missing' does "
        "not exist"
    )

    cluster.put(_cluster_object("workloadpriorityclasses", "missing", value=5))
    _reconcile(cluster)
    (created,) = [args[0] for args in cluster.called("create_workload")]
    assert created["spec"]["priority"] == 5, "made once the class exists"


def test_an_admitted_job_reads_its_flavors_and_launches_on_them() -> None:
    job = _queued()
    flavor = _cluster_object("resourceflavors", "spot", spec={"nodeLabels": {"pool": "spot"}})
    cluster = FakeCluster(job, _workload(job, *ADMITTED), flavor)
    _reconcile(cluster)
    (pod,) = [m for (m,) in cluster.called("create") if m["kind"] == "Pod"]
    assert pod["spec"]["nodeSelector"] == {"pool": "spot"}
    assert not cluster.called("create_workload"), "the Workload exists: kept as it is"


def test_a_workload_status_write_that_lost_a_race_with_kueue_is_planned_again() -> None:
    job = _queued(attempt=1)
    job["status"].update(podName="report-1", attempts=[])
    evicted = _condition(q.EVICTED, "Preempted")
    cluster = FakeCluster(job, _workload(job, *ADMITTED, evicted, version="7"))
    stale = copy.deepcopy(cluster.obj(WORKLOAD, NAME))

    def kueue_writes() -> None:
        cluster.obj(WORKLOAD, NAME)["metadata"]["resourceVersion"] = "8"

    cluster.meanwhile["patch_workload"] = kueue_writes
    assert _reconcile(cluster) == (REPLAN_SECONDS, False)
    (call,) = cluster.called("patch_workload")
    assert call[2]["metadata"] == {"resourceVersion": "7"}
    assert call[2]["status"]["admission"] is None
    assert cluster.obj(WORKLOAD, NAME)["status"] == stale["status"], "nothing was written"


def test_a_restarted_jobs_finished_workload_is_deleted_then_made_again() -> None:
    """Restarted after it finished, the job waits; its finished Workload is deleted (this uid
    only) and forgotten at once, so the next reconcile makes the new one without waiting for
    the deletion's watch event."""
    job = _queued(attempt=1)
    job["status"].update(
        phase="Pending",
        podName="report-1",
        attempts=[{"attempt": 1, "podName": "report-1", "outcome": "Succeeded"}],
        lastRestart={"step": "fetch", "attempt": 2, "time": "2026-11-27T08:00:00Z"},
    )
    finished = _workload(job, *ADMITTED, _condition(q.FINISHED, "Succeeded"))
    finished["metadata"]["uid"] = "w-1"
    cluster = FakeCluster(job, finished)
    reconciler = reconciling.Reconciler(
        cast(ClusterApi, cluster), cluster.watched(KUEUE_KINDS), requeue_workers=0
    )
    reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    assert cluster.called("delete_workload") == [(NS, NAME, "w-1")]
    assert not cluster.called("create_workload")
    assert not reconciler.store.job_objects(WORKLOAD, NS, NAME)
    assert not [m for (m,) in cluster.called("create") if m["kind"] == "Pod"]

    reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    (created,) = [args[0] for args in cluster.called("create_workload")]
    assert created["spec"]["queueName"] == "team-queue"


def test_a_queued_job_waits_for_the_workloads_first_list_before_it_plans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Right after the operator starts, a Workload not listed yet is not a Workload gone:
    planning then would stop the job's running pod and make a second Workload."""
    job = _queued(attempt=1)
    job["status"].update(podName="report-1", attempts=[])
    pod = _pod(UID, attempt=1)
    pod["status"] = {"phase": "Running"}
    cluster = FakeCluster(job, _workload(job, *ADMITTED), pod)
    store = Store(kinds=KUEUE_KINDS)
    for kind in KUEUE_KINDS:
        if kind != WORKLOAD:
            found = [copy.deepcopy(o) for (k, _, _), o in cluster.store.items() if k == kind]
            store.replace(kind, found, None)
    monkeypatch.setattr(reconciling, "SYNC_WAIT_SECONDS", 0.01)
    reconciler = reconciling.Reconciler(cast(ClusterApi, cluster), store, requeue_workers=0)
    with pytest.raises(reconciling.NotSynced, match="Workloads"):
        reconciler._reconcile(NS, NAME, 0.0, reconciling._Slot())
    assert not cluster.called("create_workload")
    assert not cluster.called("stamp_pod")
    assert not cluster.called("delete_pod")
