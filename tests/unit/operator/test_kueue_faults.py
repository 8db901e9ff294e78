"""A queued job when its Workload moves in ways the happy path does not show (issue 25): Kueue
deactivating it for good, a person deleting it, a job restarted after it finished, an operator
that stopped between a pod's end and the quota's release, a suspend racing a preemption, and
Kueue labels or priority classes the job gets wrong."""

from __future__ import annotations

from typing import Any

from continuable_operator import conditions as c
from continuable_operator import queueing as q
from continuable_operator.actions import (
    CreatePod,
    CreateWorkload,
    DeletePod,
    DeleteWorkload,
    PatchWorkload,
    PatchWorkloadStatus,
)
from continuable_operator.planning import plan

from .conftest import NOW, condition, pod
from .test_admitting import (
    ADMITTED,
    DISRUPTED_BY_KUEUE,
    PREEMPTED,
    _of,
    _queue,
    _queued,
    _types,
    _workload,
    _workload_status,
)
from .test_faults import _request
from .test_planning import _running, _status

REQUEUING_LIMIT = condition(
    q.EVICTED,
    True,
    "DeactivatedDueToRequeuingLimitExceeded",
    "The workload is deactivated due to exceeding the maximum number of re-queuing retries",
)
MAX_EXEC_TIME_TARGET = condition(
    q.DEACTIVATION_TARGET,
    True,
    "MaximumExecutionTimeExceeded",
    "exceeding the maximum execution time",
)


def _finishing(result: Any) -> list[PatchWorkloadStatus]:
    return [
        a for a in _of(result, PatchWorkloadStatus) if q.FINISHED in _types(a.status["conditions"])
    ]


def test_kueue_deactivating_the_workload_fails_the_job_and_stops_its_pod(
    job: dict[str, Any],
) -> None:
    """Kueue will not admit a Workload it deactivated itself again: the job ends, saying why,
    instead of waiting forever, and the Workload is not activated back behind Kueue's back."""
    _running(_queued(job))
    workload = _workload(*ADMITTED, REQUEUING_LIMIT, active=False)
    result = plan(job, [pod(1)], NOW, queue=_queue(workload))
    status = _status(result)
    assert status["phase"] == "Failed"
    failed = {x["type"]: x for x in status["conditions"]}[c.FAILED]
    assert failed["reason"] == c.DEACTIVATED_BY_KUEUE
    assert "RequeuingLimitExceeded" in failed["message"]
    assert "maximum number of re-queuing retries" in failed["message"]
    (stop,) = _of(result, DeletePod)
    assert stop.disruption is not None
    assert stop.disruption[0] == c.DEACTIVATED_BY_KUEUE
    assert not _of(result, PatchWorkload), "spec.active stays as Kueue set it"
    assert not _finishing(result), "the quota is the pod's until it has stopped"


def test_a_deactivation_target_fails_the_job_before_kueue_flips_active(
    job: dict[str, Any],
) -> None:
    """Kueue marks DeactivationTarget, then sets spec.active false: between the two the
    operator must not read active=true as the job's wish and keep the Workload active."""
    _running(_queued(job))
    result = plan(job, [pod(1)], NOW, queue=_queue(_workload(*ADMITTED, MAX_EXEC_TIME_TARGET)))
    assert _status(result)["phase"] == "Failed"
    assert not _of(result, PatchWorkload)


def test_the_deactivated_jobs_workload_finishes_once_its_pod_has_ended(
    job: dict[str, Any],
) -> None:
    _running(_queued(job), phase="Failed")
    job["status"]["completionTime"] = "2026-11-27T08:59:00Z"
    stopped = pod(1, "Failed", exit_code=143, conditions=[DISRUPTED_BY_KUEUE])
    workload = _workload(*ADMITTED, REQUEUING_LIMIT, active=False)
    result = plan(job, [stopped], NOW, queue=_queue(workload))
    (finished,) = _finishing(result)
    assert _types(finished.status["conditions"])[q.FINISHED] == ("True", "Failed")
    assert not _of(result, PatchWorkload)


def test_a_job_past_its_deadline_keeps_its_quota_until_its_pod_has_stopped(
    job: dict[str, Any],
) -> None:
    """The sibling of a deactivation: any end while a pod runs waits for the pod before the
    Workload is Finished, or Kueue would admit the next job beside a pod still running."""
    _running(_queued(job), startTime="2026-11-27T08:00:00Z")
    job["spec"]["activeDeadlineSeconds"] = 60
    result = plan(job, [pod(1)], NOW, queue=_queue(_workload(*ADMITTED)))
    assert _status(result)["phase"] == "Failed"
    assert _of(result, DeletePod)
    assert not _finishing(result)


def test_a_workload_deleted_while_its_pod_runs_stops_the_pod_as_an_interruption(
    job: dict[str, Any],
) -> None:
    """Nothing reserves quota for the pod any more: it stops, and the job queues again with a
    new Workload (Kueue's own integration suspends a job whose Workload is deleted)."""
    _running(_queued(job))
    result = plan(job, [pod(1)], NOW, queue=_queue(None))
    (stop,) = _of(result, DeletePod)
    assert stop.disruption is not None
    assert stop.disruption[0] == c.NOT_ADMITTED_BY_KUEUE
    assert "Workload is gone" in stop.disruption[1]
    assert _of(result, CreateWorkload)

    stamped = {**DISRUPTED_BY_KUEUE, "reason": c.NOT_ADMITTED_BY_KUEUE}
    stopped = pod(1, "Failed", exit_code=143, conditions=[stamped])
    after = plan(job, [stopped], NOW, queue=_queue(None))
    status = _status(after)
    assert status["attempts"][0]["outcome"] == "Interrupted"
    assert status["interruptions"] == 1
    assert status["phase"] == "Queued"
    assert not _of(after, CreatePod)


def test_a_workload_no_longer_admitted_stops_the_running_pod(job: dict[str, Any]) -> None:
    _running(_queued(job))
    pending = condition(q.QUOTA_RESERVED, False, "Pending", "quota released by hand")
    result = plan(job, [pod(1)], NOW, queue=_queue(_workload(pending)))
    (stop,) = _of(result, DeletePod)
    assert stop.disruption is not None
    assert stop.disruption[0] == c.NOT_ADMITTED_BY_KUEUE


def test_a_finished_job_gets_no_new_workload(job: dict[str, Any]) -> None:
    _running(_queued(job), phase="Succeeded")
    job["status"]["attempts"][0]["outcome"] = "Succeeded"
    result = plan(job, [], NOW, queue=_queue(None))
    assert not _of(result, CreateWorkload)


FINISHED = condition(q.FINISHED, True, "Succeeded", "the job succeeded")


def test_a_job_restarted_after_it_finished_queues_again_with_a_new_workload(
    job: dict[str, Any],
) -> None:
    """Kueue never admits a finished Workload again (and still shows it Admitted): the
    restarted job waits, its finished Workload is deleted, then a new one is made."""
    _running(_queued(job), phase="Succeeded")
    job["status"]["attempts"][0]["outcome"] = "Succeeded"
    job["spec"]["steps"] = ["fetch"]
    _request(job, "fetch")
    finished = _workload(*ADMITTED, FINISHED)
    finished["metadata"]["uid"] = "w-1"
    restarted = plan(
        job, [pod(1, "Succeeded", exit_code=0, finalizer=False)], NOW, queue=_queue(finished)
    )
    status = _status(restarted)
    assert status["lastRestart"]["nonce"] == "n-1"
    assert status["phase"] == "Queued"
    assert not _of(restarted, CreatePod), "not on the finished Workload's admission"

    job["status"].update(status)
    job["metadata"]["annotations"] = {}
    renewing = plan(job, [], NOW, queue=_queue(finished))
    assert _of(renewing, DeleteWorkload) == [DeleteWorkload("report", "w-1")]
    assert not _of(renewing, CreatePod)
    made = plan(job, [], NOW, queue=_queue(None))
    assert _of(made, CreateWorkload)


def test_an_operator_stopped_before_the_release_gives_the_quota_back_when_it_returns(
    job: dict[str, Any],
) -> None:
    """The end was recorded and the pod released; the operator died before the Workload's
    release: the next reconcile finds the eviction still holding quota and gives it back."""
    _running(_queued(job), phase="Queued", interruptions=1)
    job["status"]["attempts"][0].update(outcome="Interrupted", reason=c.EVICTED_BY_KUEUE)
    ended = pod(1, "Failed", exit_code=143, conditions=[DISRUPTED_BY_KUEUE], finalizer=False)
    result = plan(job, [ended], NOW, queue=_queue(_workload(*ADMITTED, PREEMPTED)))
    released = _workload_status(result)
    assert released["admission"] is None
    assert _types(released["conditions"])[q.QUOTA_RESERVED] == ("False", "Pending")
    assert "interruptions" not in _status(result), "counted once"
    assert not _of(result, CreatePod)


def test_a_suspend_racing_a_preemption_stops_once_and_gives_the_quota_back(
    job: dict[str, Any],
) -> None:
    _running(_queued(job))
    job["spec"]["suspend"] = True
    evicted = _workload(*ADMITTED, PREEMPTED)
    result = plan(job, [pod(1)], NOW, queue=_queue(evicted))
    (stop,) = _of(result, DeletePod)
    assert stop.disruption is not None
    assert stop.disruption[0] == c.SUSPENDED_BY_USER
    assert _of(result, PatchWorkload) == [PatchWorkload("report", {"spec": {"active": False}})]

    stamped = {**DISRUPTED_BY_KUEUE, "reason": c.SUSPENDED_BY_USER}
    stopped = pod(1, "Failed", exit_code=143, conditions=[stamped])
    after = plan(job, [stopped], NOW, queue=_queue(_workload(*ADMITTED, PREEMPTED, active=False)))
    status = _status(after)
    assert status["phase"] == "Suspended"
    assert status["interruptions"] == 1
    assert _workload_status(after)["admission"] is None


def test_an_invalid_max_exec_time_label_fails_the_job_naming_it(job: dict[str, Any]) -> None:
    _queued(job)["metadata"]["labels"][q.MAX_EXEC_TIME_LABEL] = "1h"
    result = plan(job, [], NOW, queue=_queue(None))
    failed = {x["type"]: x for x in _status(result)["conditions"]}[c.FAILED]
    assert failed["reason"] == c.INVALID_KUEUE_LABEL
    assert failed["message"] == (
        "metadata.labels[kueue.x-k8s.io/max-exec-time-seconds]: expected a positive whole "
        "number of seconds, got '1h'"
    )
    assert not _of(result, CreateWorkload)


def test_the_max_exec_time_label_becomes_the_workloads_limit(job: dict[str, Any]) -> None:
    _queued(job)["metadata"]["labels"][q.MAX_EXEC_TIME_LABEL] = "3600"
    (created,) = _of(plan(job, [], NOW, queue=_queue(None)), CreateWorkload)
    assert created.manifest["spec"]["maximumExecutionTimeSeconds"] == 3600
