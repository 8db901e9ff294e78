"""The planner for a job Kueue queues (issue 25): a Workload first, a pod only while it is
admitted, an eviction stopping the pod and the quota given back once the pod has ended."""

from __future__ import annotations

from typing import Any

import pytest

from continuable_operator import conditions as c
from continuable_operator import priorities
from continuable_operator import queueing as q
from continuable_operator.actions import (
    CreatePod,
    CreateWorkload,
    DeletePod,
    Emit,
    PatchWorkload,
    PatchWorkloadStatus,
    Plan,
)
from continuable_operator.launching import template_hash
from continuable_operator.planning import plan

from .conftest import NOW, condition, pod
from .test_planning import _running, _status

DISRUPTED_BY_KUEUE = {"type": "DisruptionTarget", "status": "True", "reason": "EvictedByKueue"}


def _queued(job: dict[str, Any]) -> dict[str, Any]:
    job["metadata"]["labels"] = {q.QUEUE_LABEL: "team-queue"}
    return job


ADMITTED = [
    condition(q.QUOTA_RESERVED, True, "QuotaReserved", "Quota reserved in ClusterQueue cq"),
    condition(q.ADMITTED, True, "Admitted", "The workload is admitted"),
]
PREEMPTED = condition(q.EVICTED, True, "Preempted", "Preempted to accommodate a workload")


def _workload(*conditions: dict[str, Any], active: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": "report", "resourceVersion": "41", "generation": 1},
        "spec": {"active": active, "queueName": "team-queue"},
        "status": {
            "conditions": list(conditions),
            "admission": {
                "clusterQueue": "cq",
                "podSetAssignments": [{"name": "main", "flavors": {"cpu": "on-demand"}}],
            },
        },
    }


FLAVORS = {"on-demand": {"spec": {"nodeLabels": {"pool": "on-demand"}}}}


def _queue(workload: dict[str, Any] | None) -> q.Queue:
    return q.Queue("team-queue", workload, FLAVORS if workload else {})


def _of(result: Plan, kind: type) -> list[Any]:
    return [a for a in result.actions if isinstance(a, kind)]


def _workload_status(result: Plan) -> dict[str, Any]:
    (patch,) = _of(result, PatchWorkloadStatus)
    assert patch.resource_version == "41", "fenced on the Workload as read"
    return dict(patch.status)


def _types(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {x["type"]: (x["status"], x["reason"]) for x in conditions}


def test_a_queued_job_gets_its_workload_and_waits_for_its_admission(job: dict[str, Any]) -> None:
    result = plan(_queued(job), [], NOW, queue=_queue(None))
    (created,) = _of(result, CreateWorkload)
    assert created.manifest["spec"]["queueName"] == "team-queue"
    assert not _of(result, CreatePod)
    status = _status(result)
    assert status["phase"] == "Queued"
    queued = {x["type"]: x for x in status["conditions"]}[c.QUEUED]
    assert (queued["status"], queued["reason"]) == ("True", c.WAITING_FOR_ADMISSION)
    assert "LocalQueue team-queue" in queued["message"]
    assert [(a.type, a.reason) for a in _of(result, Emit)] == [("Normal", c.QUEUED)]


def test_a_job_whose_workload_is_not_admitted_says_why_in_kueues_words(
    job: dict[str, Any],
) -> None:
    pending = condition(q.QUOTA_RESERVED, False, "Pending", "insufficient quota for cpu in flavor")
    result = plan(_queued(job), [], NOW, queue=_queue(_workload(pending)))
    assert not _of(result, CreateWorkload)
    assert not _of(result, CreatePod)
    message = {x["type"]: x for x in _status(result)["conditions"]}[c.QUEUED]["message"]
    assert message.endswith("insufficient quota for cpu in flavor")


def test_an_admitted_job_launches_on_its_flavors_nodes(job: dict[str, Any]) -> None:
    result = plan(_queued(job), [], NOW, queue=_queue(_workload(*ADMITTED)))
    (created,) = _of(result, CreatePod)
    assert created.manifest["spec"]["nodeSelector"] == {"pool": "on-demand"}
    assert created.manifest["metadata"]["labels"]["kueue.x-k8s.io/podset"] == "main"
    assert _status(result)["attempt"] == 1


def test_a_running_pod_tells_its_workload_it_started(job: dict[str, Any]) -> None:
    _running(_queued(job))
    result = plan(job, [pod(1)], NOW, queue=_queue(_workload(*ADMITTED)))
    conditions = _workload_status(result)["conditions"]
    assert _types(conditions)[q.PODS_READY] == ("True", "Started")


def test_an_eviction_stops_the_pod_and_keeps_the_quota_until_it_has_ended(
    job: dict[str, Any],
) -> None:
    _running(_queued(job))
    result = plan(job, [pod(1)], NOW, queue=_queue(_workload(*ADMITTED, PREEMPTED)))
    (stop,) = _of(result, DeletePod)
    assert stop.disruption is not None
    assert stop.disruption[0] == c.EVICTED_BY_KUEUE
    assert "Preempted" in stop.disruption[1]
    assert not [a for a in _of(result, PatchWorkloadStatus) if "admission" in a.status], (
        "the quota stays reserved while the pod runs"
    )


def test_the_evicted_pods_end_is_an_interruption_and_gives_the_quota_back(
    job: dict[str, Any],
) -> None:
    _running(_queued(job))
    stopped = pod(1, "Failed", exit_code=143, conditions=[DISRUPTED_BY_KUEUE])
    result = plan(job, [stopped], NOW, queue=_queue(_workload(*ADMITTED, PREEMPTED)))
    status = _status(result)
    assert status["attempts"][0]["outcome"] == "Interrupted"
    assert status["interruptions"] == 1
    assert "failures" not in status, "unchanged: 0"
    assert status["phase"] == "Queued"
    assert not _of(result, CreatePod), "no pod until Kueue admits the Workload again"
    released = _workload_status(result)
    assert released["admission"] is None
    assert _types(released["conditions"])[q.REQUEUED] == ("True", "Preempted")
    assert _types(released["conditions"])[q.QUOTA_RESERVED] == ("False", "Pending")


def test_readmitted_it_resumes_in_a_new_attempt(job: dict[str, Any]) -> None:
    _running(_queued(job), phase="Queued")
    job["status"]["attempts"][0].update(outcome="Interrupted", reason="EvictedByKueue")
    job["status"]["interruptions"] = 1
    result = plan(job, [], NOW, queue=_queue(_workload(*ADMITTED)))
    (created,) = _of(result, CreatePod)
    assert created.manifest["metadata"]["name"] == "report-2"
    assert _status(result)["attempt"] == 2


@pytest.mark.parametrize(("phase", "reason"), [("Succeeded", "Succeeded"), ("Failed", "Failed")])
def test_a_finished_job_finishes_its_workload(job: dict[str, Any], phase: str, reason: str) -> None:
    _running(_queued(job))
    if phase == "Succeeded":
        ended = pod(1, "Succeeded", exit_code=0)
    else:
        job["spec"]["backoffLimit"] = 0
        ended = pod(1, "Failed", exit_code=1)
    result = plan(job, [ended], NOW, queue=_queue(_workload(*ADMITTED)))
    assert _status(result)["phase"] == phase
    finishing = [
        a for a in _of(result, PatchWorkloadStatus) if q.FINISHED in _types(a.status["conditions"])
    ]
    (finished,) = finishing
    assert _types(finished.status["conditions"])[q.FINISHED] == ("True", reason)


def test_suspending_a_queued_job_deactivates_its_workload(job: dict[str, Any]) -> None:
    _running(_queued(job))
    job["spec"]["suspend"] = True
    result = plan(job, [pod(1)], NOW, queue=_queue(_workload(*ADMITTED)))
    assert _of(result, PatchWorkload) == [PatchWorkload("report", {"spec": {"active": False}})]


def test_resuming_a_queued_job_activates_its_workload_again(job: dict[str, Any]) -> None:
    _running(_queued(job), phase="Suspended")
    job["status"]["attempts"][0].update(outcome="Interrupted", reason="Suspended")
    result = plan(job, [], NOW, queue=_queue(_workload(active=False)))
    assert _of(result, PatchWorkload) == [PatchWorkload("report", {"spec": {"active": True}})]
    assert not _of(result, CreatePod), "it queues again first"


def test_a_job_without_the_queue_label_never_touches_kueue(job: dict[str, Any]) -> None:
    result = plan(job, [], NOW)
    kueue = (CreateWorkload, PatchWorkload, PatchWorkloadStatus)
    assert not [a for a in result.actions if isinstance(a, kueue)]
    assert _of(result, CreatePod)


def _boosted(job: dict[str, Any], saved: str, boost: int | None = None) -> Plan:
    _running(_queued(job))
    job["status"]["checkpoint"] = {"attempt": 1, "updatedAt": saved}
    workload = _workload(*ADMITTED)
    if boost is not None:
        workload["metadata"]["annotations"] = {priorities.BOOST_ANNOTATION: str(boost)}
    queue = q.Queue("team-queue", workload, FLAVORS, boost=True)
    return plan(job, [pod(1)], NOW, queue=queue)


def test_a_job_that_saved_on_time_gets_no_boost_and_a_look_when_it_could_need_one(
    job: dict[str, Any],
) -> None:
    # Interval 1 s (conftest): saved 0.5 s ago; a boost could be due 1.5 s from now.
    result = _boosted(job, "2026-11-27T08:59:59.500000Z")
    assert not _of(result, PatchWorkload)
    assert result.requeue_after == pytest.approx(1.6)


def test_a_stale_checkpoint_raises_the_boost_once_and_looks_again_every_interval(
    job: dict[str, Any],
) -> None:
    result = _boosted(job, "2026-11-27T08:59:52Z")  # 8 intervals old: log2(8) = 3
    patch = {"metadata": {"annotations": {priorities.BOOST_ANNOTATION: "3"}}}
    assert _of(result, PatchWorkload) == [PatchWorkload("report", patch)]
    assert result.requeue_after == pytest.approx(1.0)
    again = _boosted(job, "2026-11-27T08:59:52Z", boost=3)
    assert not _of(again, PatchWorkload), "unchanged: no write"


def test_a_fresh_save_brings_the_boost_back_to_zero(job: dict[str, Any]) -> None:
    result = _boosted(job, "2026-11-27T08:59:59.900000Z", boost=3)
    patch = {"metadata": {"annotations": {priorities.BOOST_ANNOTATION: "0"}}}
    assert _of(result, PatchWorkload) == [PatchWorkload("report", patch)]


def test_without_the_flag_no_boost_is_written(job: dict[str, Any]) -> None:
    _running(_queued(job))
    job["status"]["checkpoint"] = {"attempt": 1, "updatedAt": "2026-11-27T08:00:00Z"}
    result = plan(job, [pod(1)], NOW, queue=_queue(_workload(*ADMITTED)))
    assert not _of(result, PatchWorkload)


def test_a_step_without_a_cursor_counts_from_its_start_however_often_it_is_saved(
    job: dict[str, Any],
) -> None:
    """The SDK rewrites the checkpoint every interval for a step's duration, but a step that
    keeps no cursor starts over: what a preemption loses is all of it since it started."""
    _running(_queued(job))
    job["status"]["attempts"][0]["startTime"] = "2026-11-27T08:59:40Z"
    job["status"]["checkpoint"] = {
        "attempt": 1,
        "currentStep": "think",
        "updatedAt": "2026-11-27T08:59:59.900000Z",
        "steps": [{"name": "think", "state": "Started", "startedAt": "2026-11-27T08:59:52Z"}],
    }
    queue = q.Queue("team-queue", _workload(*ADMITTED), FLAVORS, boost=True)
    result = plan(job, [pod(1)], NOW, queue=queue)
    patch = {"metadata": {"annotations": {priorities.BOOST_ANNOTATION: "3"}}}
    assert _of(result, PatchWorkload) == [PatchWorkload("report", patch)]
    job["status"]["checkpoint"]["steps"][0]["cursor"] = 41  # it resumes there: nothing lost
    assert not _of(plan(job, [pod(1)], NOW, queue=queue), PatchWorkload)


def _changed_template(job: dict[str, Any]) -> dict[str, Any]:
    """The Workload as made for the job's template; then the template changes."""
    workload = _workload(*ADMITTED)
    template = job["spec"]["template"]
    made = q.workload_for(job, template["spec"], None, template_hash(template))
    workload["metadata"]["annotations"] = made["metadata"]["annotations"]
    workload["spec"]["podSets"] = made["spec"]["podSets"]
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "python:3.12"
    return workload


def test_a_template_change_gives_the_quota_back_then_updates_the_pod_set(
    job: dict[str, Any],
) -> None:
    """The pod set cannot change while quota is reserved: once the old pod has ended the quota
    goes back, then the Workload takes the new template and queues again."""
    _running(_queued(job), phase="Interrupted")
    job["status"]["attempts"][0].update(outcome="Interrupted", reason="TemplateChanged")
    workload = _changed_template(job)
    result = plan(job, [], NOW, queue=q.Queue("team-queue", workload, FLAVORS))
    (released,) = _of(result, PatchWorkloadStatus)
    assert released.status["admission"] is None
    assert _types(released.status["conditions"])[q.REQUEUED] == ("True", "TemplateChanged")
    (updated,) = _of(result, PatchWorkload)
    pod_set = updated.patch["spec"]["podSets"][0]
    assert pod_set["template"]["spec"]["containers"][0]["image"] == "python:3.12"
    order = [type(a) for a in result.actions if isinstance(a, PatchWorkloadStatus | PatchWorkload)]
    assert order == [PatchWorkloadStatus, PatchWorkload], "the quota goes back first"
    assert not _of(result, CreatePod), "no pod until Kueue admits the new pod set"
    assert _status(result)["phase"] == "Queued"


def test_a_queued_job_whose_template_changes_updates_its_pod_set_at_once(
    job: dict[str, Any],
) -> None:
    _queued(job)
    workload = _changed_template(job)
    workload["status"] = {"conditions": []}
    result = plan(job, [], NOW, queue=q.Queue("team-queue", workload, {}))
    assert not _of(result, PatchWorkloadStatus)
    (updated,) = _of(result, PatchWorkload)
    annotations = updated.patch["metadata"]["annotations"]
    assert annotations == {"continuable.dev/template-hash": template_hash(job["spec"]["template"])}
