"""Reconciles of a job Kueue queues (issue 25), against the fake cluster: the Workload created
with its priority resolved, the admission's flavors read and applied to the pod, and a
Workload status write that lost a race with Kueue replanned."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from continuable_operator import queueing as q
from continuable_operator import reconciling
from continuable_operator.caching import WORKLOAD, watched_kinds
from continuable_operator.cluster import ApiError, ClusterApi
from continuable_operator.executing import REPLAN_SECONDS
from continuable_operator.ownership import owner_reference

from .test_executing import NAME, NS, FakeCluster, _job

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
    job = _queued(**{q.PRIORITY_CLASS_LABEL: "high"})
    cluster = FakeCluster(job, _cluster_object("workloadpriorityclasses", "high", value=1000))
    _reconcile(cluster)
    (created,) = [args[0] for args in cluster.called("create_workload")]
    assert created["spec"]["queueName"] == "team-queue"
    assert created["spec"]["priority"] == 1000
    assert created["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert not [m for (m,) in cluster.called("create") if m["kind"] == "Pod"]
    assert cluster.obj("ContinuableJob", NAME)["status"]["phase"] == "Queued"


def test_a_priority_class_that_does_not_exist_fails_the_reconcile() -> None:
    cluster = FakeCluster(_queued(**{q.PRIORITY_CLASS_LABEL: "missing"}))
    with pytest.raises(ApiError, match="WorkloadPriorityClass missing"):
        _reconcile(cluster)
    assert not cluster.called("create_workload")


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
