"""The operator's decisions, state in and actions out, without a cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from continuable_operator.actions import (
    ClearRestartRequest,
    CreatePod,
    DeletePod,
    DropResults,
    Emit,
    EnsureObject,
    PatchStatus,
    Plan,
    RemoveFinalizer,
)
from continuable_operator.planning import plan, plan_orphans
from continuable_operator.relaunching import backoff_delay

from .conftest import NOW, pod


def _status(result: Plan) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for action in result.actions:
        if isinstance(action, PatchStatus):
            merged.update(action.fields)
    return merged


def _kinds(result: Plan) -> list[str]:
    return [type(a).__name__ for a in result.actions]


def _running(job: dict[str, Any], attempt: int = 1, **status: Any) -> dict[str, Any]:
    job["status"] = {
        "observedGeneration": 1,
        "attempt": attempt,
        "phase": "Running",
        "interruptions": 0,
        "failures": 0,
        "resumptions": 0,
        "podName": f"report-{attempt}",
        "attempts": [
            {
                "attempt": attempt,
                "podName": f"report-{attempt}",
                "outcome": "Running",
                "startTime": "2026-11-27T08:50:00Z",
            }
        ],
        "conditions": [],
        **status,
    }
    return job


def test_a_new_job_launches_attempt_one_status_first(job: dict[str, Any]) -> None:
    result = plan(job, [], NOW)
    assert _kinds(result) == [
        "PatchStatus",
        "EnsureObject",
        "EnsureObject",
        "EnsureObject",
        "EnsureObject",
        "CreatePod",
        "Emit",
    ]
    patch = result.actions[0]
    assert isinstance(patch, PatchStatus)
    assert patch.expected_attempt is None, "the first write has nothing to fence on"
    status = patch.fields
    assert status["attempt"] == 1
    assert {k: status[k] for k in ("interruptions", "failures", "resumptions")} == {
        "interruptions": 0,
        "failures": 0,
        "resumptions": 0,
    }
    assert status["phase"] == "Pending"
    assert status["startTime"] == "2026-11-27T09:00:00Z"
    kinds = [a.manifest["kind"] for a in result.actions if isinstance(a, EnsureObject)]
    # The results ConfigMap before the Role that grants it by name: a name held by someone
    # else stops the launch before anything of theirs is granted.
    assert kinds == ["ServiceAccount", "ConfigMap", "Role", "RoleBinding"]
    create = result.actions[5]
    assert isinstance(create, CreatePod)
    assert create.manifest["metadata"]["name"] == "report-1"


def test_a_running_pod_sets_phase_running_once(job: dict[str, Any]) -> None:
    _running(job, phase="Pending")
    result = plan(job, [pod(1)], NOW)
    assert _status(result)["phase"] == "Running"
    job["status"].update(_status(result))
    assert plan(job, [pod(1)], NOW).actions == [], "nothing changes: no write"


def test_interruption_relaunches_at_once_in_one_write_recorded_before_the_finalizer_goes(
    job: dict[str, Any],
) -> None:
    _running(job)
    job["status"]["checkpoint"] = {
        "attempt": 1,
        "steps": [
            {"name": "a", "state": "Completed", "attempt": 1, "durationSeconds": 30.0},
            {"name": "b", "state": "Started", "attempt": 1, "cursor": 500, "durationSeconds": 12.5},
        ],
    }
    evicted = pod(
        1,
        "Failed",
        exit_code=143,
        conditions=[
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
        ],
    )
    result = plan(job, [evicted], NOW)
    kinds = _kinds(result)
    # The end of attempt 1 and the launch of attempt 2 in one status write; the old pod's
    # release last, so the new pod does not wait for it.
    assert kinds.count("PatchStatus") == 1
    assert kinds[0] == "PatchStatus"
    assert kinds.index("CreatePod") < kinds.index("RemoveFinalizer")
    written = result.actions[0]
    assert isinstance(written, PatchStatus)
    assert written.fields["interruptions"] == 1
    assert written.fields["attempts"][0]["outcome"] == "Interrupted"
    assert written.fields["attempts"][0]["reason"] == "EvictionByEvictionAPI"
    assert written.expected_attempt == 1, "raising the attempt is fenced on the old one"
    assert written.fields["attempt"] == 2
    assert written.fields["attempts"][1]["outcome"] == "Running"
    assert written.fields["resumptions"] == 1
    assert written.fields["savedSeconds"] == 42.5
    assert "failures" not in written.fields
    assert any(
        isinstance(a, CreatePod) and a.manifest["metadata"]["name"] == "report-2"
        for a in result.actions
    )
    launched = [a for a in result.actions if isinstance(a, Emit) and a.reason == "Launched"]
    assert "skipping a; resuming b at cursor 500" in launched[0].message
    assert result.requeue_after is None


def test_a_live_pod_blocks_any_replacement(job: dict[str, Any]) -> None:
    _running(job)
    terminating = pod(1, "Running", deleting="2026-11-27T08:59:50Z")
    result = plan(job, [terminating], NOW)
    assert not any(isinstance(a, CreatePod) for a in result.actions)
    # Looked at again when it would count as lost (15 s past its deletion deadline).
    assert result.requeue_after == 5.0


def test_failure_relaunches_once_its_backoff_has_passed(job: dict[str, Any]) -> None:
    _running(job)
    crashed = pod(1, "Failed", exit_code=1)
    # Ended 08:59:30, first delay 10 s: due 08:59:40, already past at 09:00.
    result = plan(job, [crashed], NOW)
    assert _status(result)["failures"] == 1
    creates = [a.manifest["metadata"]["name"] for a in result.actions if isinstance(a, CreatePod)]
    assert creates == ["report-2"]
    assert result.requeue_after is None


def test_backoff_is_exponential_and_capped() -> None:
    backoff = {"initialSeconds": 10, "maxSeconds": 60, "factor": 2.0}
    assert [backoff_delay(n, backoff) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_second_failure_waits(job: dict[str, Any]) -> None:
    _running(job, attempt=2, failures=1)
    result = plan(job, [pod(2, "Failed", exit_code=1)], NOW - timedelta(seconds=25))
    # Failure 2 ended 08:59:30: relaunch at 08:59:50, the plan runs at 08:59:35.
    assert not any(isinstance(a, CreatePod) for a in result.actions)
    assert result.requeue_after == 15.0
    assert _status(result)["conditions"][-1]["reason"] == "BackoffAfterFailure"


def test_backoff_limit_fails_the_job(job: dict[str, Any]) -> None:
    _running(job, attempt=3, failures=2)
    result = plan(job, [pod(3, "Failed", exit_code=1)], NOW)
    status = _status(result)
    assert status["phase"] == "Failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "failed 3 times, more than backoffLimit (2)" in failed["message"]
    assert not any(isinstance(a, CreatePod) for a in result.actions)
    assert any(isinstance(a, RemoveFinalizer) for a in result.actions)


def test_resume_limit_fails_the_job(job: dict[str, Any]) -> None:
    job["spec"]["maxResumptions"] = 1
    _running(job, attempt=2, interruptions=1)
    result = plan(job, [pod(2, "Failed", exit_code=143, deleting=True)], NOW)
    status = _status(result)
    assert status["phase"] == "Failed"
    assert [c["reason"] for c in status["conditions"] if c["type"] == "Failed"] == [
        "ResumeLimitExceeded"
    ]


def test_isolated_stop_counts_in_no_budget(job: dict[str, Any]) -> None:
    _running(job)
    job["status"]["checkpoint"] = {"attempt": 1, "stopReason": "Isolated", "steps": []}
    result = plan(job, [pod(1, "Failed", exit_code=75)], NOW)
    status = _status(result)
    assert status["attempt"] == 2
    assert "interruptions" not in status
    assert "failures" not in status


def test_not_replayable_fails_at_once(job: dict[str, Any]) -> None:
    _running(job)
    job["status"]["checkpoint"] = {
        "attempt": 1,
        "stopReason": "NotReplayable",
        "error": {"message": "step send is not idempotent"},
    }
    status = _status(plan(job, [pod(1, "Failed", exit_code=1)], NOW))
    assert status["phase"] == "Failed"
    assert status.get("failures", 0) == 0


def test_success_completes(job: dict[str, Any]) -> None:
    _running(job)
    result = plan(job, [pod(1, "Succeeded", exit_code=0)], NOW)
    status = _status(result)
    assert status["phase"] == "Succeeded"
    assert status["completionTime"] == "2026-11-27T09:00:00Z"
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"] == ["Complete"]


def test_a_vanished_pod_of_a_running_attempt_is_lost_and_a_new_attempt_starts(
    job: dict[str, Any],
) -> None:
    _running(job)
    result = plan(job, [], NOW)
    creates = [a for a in result.actions if isinstance(a, CreatePod)]
    assert [a.manifest["metadata"]["name"] for a in creates] == ["report-2"]
    status = _status(result)
    assert status["attempt"] == 2
    assert status["attempts"][0]["outcome"] == "Lost"
    assert status["attempts"][0]["reason"] == "PodLost"
    assert status["interruptions"] == 1


def test_stray_pod_of_an_older_attempt_is_stopped_and_released(job: dict[str, Any]) -> None:
    _running(job, attempt=2)
    result = plan(job, [pod(1), pod(2)], NOW)
    deletes = [a for a in result.actions if isinstance(a, DeletePod)]
    assert [d.name for d in deletes] == ["report-1"]
    done = plan(job, [pod(1, "Failed", exit_code=143), pod(2)], NOW)
    assert [a.name for a in done.actions if isinstance(a, RemoveFinalizer)] == ["report-1"]


def test_pod_creation_refused_is_retried_after_a_while(job: dict[str, Any]) -> None:
    _running(
        job,
        conditions=[
            {
                "type": "PodCreateFailed",
                "status": "True",
                "reason": "Forbidden",
                "message": "quota",
                "lastTransitionTime": "2026-11-27T08:59:55Z",
            }
        ],
    )
    waiting = plan(job, [], NOW)
    assert not any(isinstance(a, CreatePod) for a in waiting.actions)
    assert waiting.requeue_after == 5.0
    later = plan(job, [], NOW + timedelta(seconds=6))
    assert any(isinstance(a, CreatePod) for a in later.actions)


def test_orphaned_pods_are_released() -> None:
    result = plan_orphans([pod(1, "Failed", exit_code=143), pod(2, finalizer=False)])
    assert [a.name for a in result.actions if isinstance(a, RemoveFinalizer)] == ["report-1"]


def test_history_keeps_the_last_twenty(job: dict[str, Any]) -> None:
    _running(job, attempt=20)
    job["status"]["attempts"] = [
        {"attempt": n, "podName": f"report-{n}", "outcome": "Interrupted"} for n in range(1, 20)
    ] + [{"attempt": 20, "podName": "report-20", "outcome": "Running"}]
    status = _status(plan(job, [pod(20, "Failed", exit_code=75)], NOW))
    assert len(status["attempts"]) == 20
    assert status["attempts"][0]["attempt"] == 2
    assert status["attempts"][-1] == {
        "attempt": 21,
        "podName": "report-21",
        "startTime": "2026-11-27T09:00:00Z",
        "outcome": "Running",
    }


def test_suspend_stops_the_running_pod_with_a_stamp(job: dict[str, Any]) -> None:
    _running(job)
    job["spec"]["suspend"] = True
    result = plan(job, [pod(1)], NOW)
    deletes = [a for a in result.actions if isinstance(a, DeletePod)]
    assert [(d.name, d.disruption[0] if d.disruption else None) for d in deletes] == [
        ("report-1", "Suspended")
    ]


def test_a_suspended_job_launches_nothing_until_resumed(job: dict[str, Any]) -> None:
    job["spec"]["suspend"] = True
    result = plan(job, [], NOW)
    assert not any(isinstance(a, CreatePod) for a in result.actions)
    assert _status(result)["phase"] == "Suspended"
    job["status"] = {**_status(result)}
    job["spec"]["suspend"] = False
    assert any(isinstance(a, CreatePod) for a in plan(job, [], NOW).actions)


def test_a_template_change_stops_the_pod_unless_ignored(job: dict[str, Any]) -> None:
    _running(job)
    stale = pod(1)
    stale["metadata"]["annotations"] = {"continuable.dev/template-hash": "old"}
    result = plan(job, [stale], NOW)
    assert [d.disruption for d in result.actions if isinstance(d, DeletePod)] == [
        ("TemplateChanged", "the pod template changed; resuming on the new one")
    ]
    job["spec"]["restartPolicyOnTemplateChange"] = "Ignore"
    assert not any(isinstance(a, DeletePod) for a in plan(job, [stale], NOW).actions)


def test_the_deadline_fails_the_job_and_stops_the_pod(job: dict[str, Any]) -> None:
    job["spec"]["activeDeadlineSeconds"] = 60
    _running(job, startTime="2026-11-27T08:58:00Z")
    result = plan(job, [pod(1)], NOW)
    status = _status(result)
    assert status["phase"] == "Failed"
    assert [
        d.disruption[0] for d in result.actions if isinstance(d, DeletePod) and d.disruption
    ] == ["DeadlineExceeded"]
    job["status"]["startTime"] = "2026-11-27T08:59:30Z"
    assert plan(job, [pod(1)], NOW).requeue_after == 30.0


def test_ttl_deletes_a_finished_job_when_due(job: dict[str, Any]) -> None:
    job["spec"]["ttlSecondsAfterFinished"] = 100
    _running(job, phase="Succeeded", completionTime="2026-11-27T08:59:00Z")
    job["status"]["attempts"][0]["outcome"] = "Succeeded"
    done = pod(1, "Succeeded", exit_code=0, finalizer=False)
    assert plan(job, [done], NOW).requeue_after == 40.0
    later = plan(job, [done], NOW + timedelta(seconds=41))
    assert [type(a).__name__ for a in later.actions] == ["DeleteJob"]


@pytest.mark.parametrize(("phase", "exit_code"), [("Succeeded", 0), ("Failed", 1)])
def test_the_plan_that_finishes_a_job_counts_down_its_ttl(
    job: dict[str, Any], phase: str, exit_code: int
) -> None:
    """No later event may come to start the TTL (the operator's own writes tell it nothing new):
    the plan that records the end requeues at the TTL itself (an e2e run lost the deletion)."""
    job["spec"]["ttlSecondsAfterFinished"] = 2
    job["spec"]["backoffLimit"] = 0
    _running(job)
    result = plan(job, [pod(1, phase, exit_code=exit_code)], NOW)
    assert _status(result)["phase"] == phase
    assert result.requeue_after == 2.0


def test_restart_from_a_step_resets_the_checkpoint_and_relaunches(job: dict[str, Any]) -> None:
    _running(
        job,
        phase="Failed",
        failures=2,
        interruptions=3,
        completionTime="2026-11-27T08:59:00Z",
        conditions=[
            {
                "type": "Failed",
                "status": "True",
                "reason": "StepNotReplayable",
                "message": "x",
                "lastTransitionTime": "2026-11-27T08:59:00Z",
            }
        ],
    )
    job["status"]["attempts"][0]["outcome"] = "Failed"
    job["status"]["checkpoint"] = {
        "attempt": 1,
        "steps": [
            {"name": "a", "state": "Completed", "attempt": 1},
            {"name": "b", "state": "Started", "attempt": 1, "cursor": 4},
            {"name": "c", "state": "Completed", "attempt": 1},
        ],
    }
    job["metadata"]["annotations"] = {
        "continuable.dev/restart-from-step": "b",
        "continuable.dev/restart-nonce": "n-1",
    }
    result = plan(job, [pod(1, "Failed", exit_code=1, finalizer=False)], NOW)
    patches = [a for a in result.actions if isinstance(a, PatchStatus)]
    # One fenced write raises the attempt and resets the checkpoint together.
    assert len(patches) == 1
    assert patches[0].expected_attempt == 1
    assert patches[0].fields["attempt"] == 2
    assert patches[0].fields["checkpoint"] == {
        "steps": [{"name": "a", "state": "Completed", "attempt": 1}],
        "attempt": 1,
    }
    kinds = _kinds(result)
    # Results go after the write, the request last (before the pod, which may take a while).
    assert kinds.index("PatchStatus") < kinds.index("DropResults")
    assert kinds.index("DropResults") < kinds.index("ClearRestartRequest")
    assert kinds.index("ClearRestartRequest") < kinds.index("CreatePod")
    drops = [a for a in result.actions if isinstance(a, DropResults)]
    assert drops == [DropResults(("b", "c"))]
    assert [a for a in result.actions if isinstance(a, ClearRestartRequest)] == [
        ClearRestartRequest("n-1")
    ]
    status = _status(result)
    assert status["failures"] == 0
    assert status["interruptions"] == 0
    assert status["completionTime"] is None
    assert status["startTime"] == "2026-11-27T09:00:00Z"
