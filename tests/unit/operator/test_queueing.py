"""The Kueue Workload of a queued job, what an admission does to its pod, and the Workload
status writes Kueue leaves to the job's controller (queueing.py)."""

from __future__ import annotations

from typing import Any

import pytest

from continuable_operator import priorities
from continuable_operator import queueing as q

from .conftest import condition

NOW = "2026-12-03T10:00:00Z"


def _job(**labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "embed", "namespace": "team-a", "uid": "u-1", "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "job", "image": "x"}]}}},
    }


def _workload(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "embed", "generation": 3},
        "status": {"conditions": list(conditions), **status},
    }


ADMITTED = (
    condition(q.QUOTA_RESERVED, True, "QuotaReserved", "Quota reserved in ClusterQueue cq"),
    condition(q.ADMITTED, True, "Admitted", "The workload is admitted"),
)
PREEMPTED = condition(q.EVICTED, True, "Preempted", "Preempted to accommodate a workload")


def _by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {x["type"]: x for x in conditions}


def test_only_a_job_with_the_queue_label_is_kueues() -> None:
    assert q.queue_name(_job(**{q.QUEUE_LABEL: "team-a-queue"})) == "team-a-queue"
    assert q.queue_name(_job()) is None


def test_the_workload_priority_class_label_wins_over_the_pods_priority_class() -> None:
    job = _job(**{priorities.PRIORITY_CLASS_LABEL: "high"})
    job["spec"]["template"]["spec"]["priorityClassName"] = "batch-low"
    assert priorities.priority_class_wanted(job) == (
        "kueue.x-k8s.io",
        "WorkloadPriorityClass",
        "high",
    )
    del job["metadata"]["labels"][priorities.PRIORITY_CLASS_LABEL]
    assert priorities.priority_class_wanted(job) == (
        "scheduling.k8s.io",
        "PriorityClass",
        "batch-low",
    )
    assert priorities.priority_class_wanted(_job()) is None


def test_the_workload_is_one_pod_of_the_jobs_pod_spec_with_its_priority_resolved() -> None:
    job = _job(**{q.QUEUE_LABEL: "team-a-queue"})
    pod_spec = {"containers": [{"name": "job", "resources": {"requests": {"cpu": "1"}}}]}
    priority = priorities.Priority("kueue.x-k8s.io", "WorkloadPriorityClass", "high", 1000)
    workload = q.workload_for(job, pod_spec, priority)
    assert workload["metadata"]["labels"] == {
        "continuable.dev/job": "embed",
        q.JOB_UID_LABEL: "u-1",
    }
    (owner,) = workload["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ContinuableJob", "u-1", True)
    spec = workload["spec"]
    assert spec["queueName"] == "team-a-queue"
    assert spec["active"] is True
    assert spec["podSets"] == [{"name": "main", "count": 1, "template": {"spec": pod_spec}}]
    assert spec["priorityClassRef"] == {
        "group": "kueue.x-k8s.io",
        "kind": "WorkloadPriorityClass",
        "name": "high",
    }
    assert spec["priority"] == 1000


def test_without_a_priority_class_the_workload_names_neither_ref_nor_priority() -> None:
    job = _job(**{q.QUEUE_LABEL: "qq"})
    job["spec"]["suspend"] = True
    spec = q.workload_for(job, {"containers": []}, None)["spec"]
    assert "priorityClassRef" not in spec
    assert "priority" not in spec
    assert spec["active"] is False


def test_admitted_means_admitted_and_not_evicted_since() -> None:
    assert q.is_admitted(_workload(*ADMITTED))
    assert not q.is_admitted(_workload(*ADMITTED, PREEMPTED))
    assert not q.is_admitted(_workload(ADMITTED[0]))
    assert not q.is_admitted(_workload())


def test_an_eviction_is_pending_until_the_quota_is_given_back() -> None:
    evicted = _workload(*ADMITTED, PREEMPTED)
    assert q.eviction(evicted) == ("Preempted", "Preempted to accommodate a workload")
    given_back = _workload(*ADMITTED, PREEMPTED)
    given_back["status"].update(q.released(evicted, NOW))
    assert q.eviction(given_back) is None
    assert q.eviction(_workload(*ADMITTED)) is None


def test_an_admission_adds_its_flavors_and_the_checks_updates_to_the_pod() -> None:
    workload = _workload(
        *ADMITTED,
        admission={
            "clusterQueue": "cq",
            "podSetAssignments": [
                {"name": "main", "flavors": {"cpu": "spot", "memory": "spot"}, "count": 1}
            ],
        },
        admissionChecks=[
            {
                "name": "prov",
                "state": "Ready",
                "podSetUpdates": [
                    {"name": "main", "labels": {"zone": "b"}, "nodeSelector": {"pool": "p1"}},
                    {"name": "other", "labels": {"ignored": "yes"}},
                ],
            }
        ],
    )
    toleration = {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}
    flavors = {"spot": {"spec": {"nodeLabels": {"tier": "spot"}, "tolerations": [toleration]}}}
    assert q.flavors_of(workload) == ["spot"]
    changes = q.pod_changes(workload, flavors)
    pod = {
        "metadata": {"name": "embed-1", "labels": {"zone": "a"}},
        "spec": {"nodeSelector": {"disk": "ssd"}, "tolerations": [toleration]},
    }
    applied = q.apply_changes(pod, changes)
    assert applied["metadata"]["labels"] == {
        "kueue.x-k8s.io/podset": "main",
        "zone": "a",  # the template's own value stays
    }
    assert applied["spec"]["nodeSelector"] == {"tier": "spot", "pool": "p1", "disk": "ssd"}
    assert applied["spec"]["tolerations"] == [toleration]
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}, "the pod given is not changed"


@pytest.mark.parametrize(
    ("reason", "requeued"), [("Preempted", "True"), ("PodsReadyTimeout", "False")]
)
def test_giving_the_quota_back_writes_what_kueues_job_controller_writes(
    reason: str, requeued: str
) -> None:
    evicted = condition(q.EVICTED, True, reason, "why")
    status = q.released(_workload(*ADMITTED, evicted), NOW)
    assert status["admission"] is None
    found = _by_type(status["conditions"])
    assert (found["Requeued"]["status"], found["Requeued"]["reason"]) == (requeued, reason)
    assert found["Requeued"]["message"] == "why"
    assert (found["QuotaReserved"]["status"], found["QuotaReserved"]["reason"]) == (
        "False",
        "Pending",
    )
    assert (found["Admitted"]["status"], found["Admitted"]["reason"]) == ("False", "NoReservation")
    assert found["PodsReady"]["reason"] == "WaitForStart"
    assert found["Evicted"] == evicted, "Kueue resets Evicted at the next admission"
    assert found["QuotaReserved"]["lastTransitionTime"] == NOW
    assert found["QuotaReserved"]["observedGeneration"] == 3


def _pods_ready(conditions: list[dict[str, Any]] | None) -> tuple[str, str]:
    assert conditions is not None, "a change was expected"
    found = _by_type(conditions)["PodsReady"]
    return found["status"], found["reason"]


def test_pods_ready_follows_kueues_start_and_recovery_reasons() -> None:
    workload = _workload(*ADMITTED)
    assert _pods_ready(q.pods_ready(workload, False, NOW)) == ("False", "WaitForStart")
    started = q.pods_ready(workload, True, NOW)
    assert _pods_ready(started) == ("True", "Started")
    workload["status"]["conditions"] = started
    assert q.pods_ready(workload, True, NOW) is None, "unchanged: no write"
    lost = q.pods_ready(workload, False, NOW)
    assert _pods_ready(lost) == ("False", "WaitForRecovery")
    workload["status"]["conditions"] = lost
    assert q.pods_ready(workload, False, NOW) is None
    assert _pods_ready(q.pods_ready(workload, True, NOW)) == ("True", "Recovered")


def _finished(conditions: list[dict[str, Any]] | None) -> str:
    assert conditions is not None, "a change was expected"
    return str(_by_type(conditions)["Finished"]["reason"])


def test_a_finished_job_finishes_its_workload_once() -> None:
    conditions = q.finished(_workload(*ADMITTED), True, "the job succeeded", NOW)
    assert _finished(conditions) == "Succeeded"
    assert _finished(q.finished(_workload(*ADMITTED), False, "backoff", NOW)) == "Failed"
    assert conditions is not None
    assert q.finished(_workload(*conditions), True, "again", NOW) is None


def test_a_queued_job_says_why_it_waits_in_kueues_words() -> None:
    assert q.waiting_reason(None) == "its Workload is being created"
    pending = condition(
        q.QUOTA_RESERVED, False, "Pending", "couldn't assign flavors to pod set main"
    )
    assert q.waiting_reason(_workload(pending)) == "couldn't assign flavors to pod set main"
    assert q.waiting_reason(_workload()) == "waiting for quota"


@pytest.mark.parametrize(
    ("age", "boost"),
    [(0, 0), (19.9, 0), (20, 1), (39, 1), (40, 2), (80, 3), (10 * 1024, 10), (1e9, 10)],
)
def test_the_priority_boost_grows_with_the_log_of_the_checkpoints_age(
    age: float, boost: int
) -> None:
    assert priorities.boost(age, 10.0) == boost


def test_a_workloads_boost_is_its_annotation() -> None:
    workload = {"metadata": {"annotations": {priorities.BOOST_ANNOTATION: "3"}}}
    assert priorities.boost_of(workload) == 3
    assert priorities.boost_of({"metadata": {}}) == 0
    assert (
        priorities.boost_of({"metadata": {"annotations": {priorities.BOOST_ANNOTATION: "x"}}}) == 0
    )
