"""The planner under the faults a review found (issue 21): each test is a state that broke a
guarantee before, and what the planner must do with it now."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from continuable_operator import conditions as c
from continuable_operator.actions import (
    ClearRestartRequest,
    CreatePod,
    DeletePod,
    DropResults,
    Emit,
    EnsureObject,
    NameRestartRequest,
    PatchStatus,
    Plan,
    RemoveFinalizer,
)
from continuable_operator.classifying import classify
from continuable_operator.planning import plan, plan_create_failure, plan_name_conflict
from continuable_operator.relaunching import backoff_delay, shared_with

from .conftest import NOW, pod
from .test_planning import _kinds, _running, _status

DISRUPTED = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}


def _conditions(result: Plan) -> dict[str, dict[str, Any]]:
    return {x["type"]: x for x in _status(result).get("conditions", [])}


def _events(result: Plan) -> list[tuple[str, str]]:
    return [(a.type, a.reason) for a in result.actions if isinstance(a, Emit)]


def _deleting(job: dict[str, Any]) -> dict[str, Any]:
    job["metadata"]["deletionTimestamp"] = "2026-11-27T08:59:59Z"
    job["metadata"]["finalizers"] = ["foregroundDeletion"]
    return job


# 1. Foreground deletion.


def test_a_job_being_deleted_stops_its_running_pod(job: dict[str, Any]) -> None:
    result = plan(_deleting(_running(job)), [pod(1)], NOW)
    assert [(a.name, a.disruption and a.disruption[0]) for a in result.actions] == [
        ("report-1", "JobDeleted")
    ]
    assert result.requeue_after is not None


def test_a_job_being_deleted_records_the_end_then_releases_every_pod(job: dict[str, Any]) -> None:
    stopped = pod(1, "Failed", exit_code=143, conditions=[DISRUPTED])
    result = plan(_deleting(_running(job)), [stopped, pod(0, "Failed", exit_code=1)], NOW)
    assert _kinds(result) == ["PatchStatus", "RemoveFinalizer", "RemoveFinalizer"]
    assert _status(result)["attempts"][0]["outcome"] == "Interrupted"
    # Nothing is launched while the job goes.
    assert not any(isinstance(a, CreatePod) for a in result.actions)


# 2. Reasons from outside the operator.


@pytest.mark.parametrize(
    "reason", ["OutOfnvidia.com/gpu", "OutOfephemeral-storage", "9lives", "x" * 2000, "Ok:"]
)
def test_a_reason_from_a_pod_becomes_a_valid_condition_reason(
    job: dict[str, Any], reason: str
) -> None:
    _running(job)
    refused = pod(1, "Failed")
    refused["status"]["reason"] = reason
    refused["status"]["message"] = "Pod was rejected"
    result = plan(job, [refused], NOW)
    pattern = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    status = _status(result)
    for condition in status["conditions"]:
        assert pattern.match(condition["reason"]), condition
        assert len(condition["reason"]) <= 1024
    record = status["attempts"][0]
    assert pattern.match(record["reason"]), record
    assert len(record["reason"]) <= 1024


# 4. Identity by UID.


def test_a_pod_of_another_job_of_the_same_name_is_never_an_attempt(job: dict[str, Any]) -> None:
    older = pod(1, "Running", owner="u-0")
    result = plan(job, [older], NOW)
    # Released to garbage collection, not counted, and this job's own attempt 1 is launched
    # (its creation then meets the name taken: a NameConflict, see test_executing).
    assert [a.name for a in result.actions if isinstance(a, RemoveFinalizer)] == ["report-1"]
    assert [a.manifest["metadata"]["name"] for a in result.actions if isinstance(a, CreatePod)]
    status = _status(result)
    assert status["attempt"] == 1
    assert status["interruptions"] == 0


def test_a_pod_controlled_by_nothing_is_left_alone(job: dict[str, Any]) -> None:
    stranger = pod(1, "Running", owner=None, finalizer=False)
    result = plan(_running(job), [stranger], NOW + timedelta(minutes=5))
    assert not any(isinstance(a, (DeletePod, RemoveFinalizer)) for a in result.actions)


def test_a_name_conflict_keeps_the_job_pending_and_says_whose_name(job: dict[str, Any]) -> None:
    _running(job, phase="Pending")
    holder = "StatefulSet web (uid s-1)"
    result = plan_name_conflict(job, "Pod", "report-1", holder, NOW)
    condition = _conditions(result)[c.NAME_CONFLICT]
    assert condition["status"] == "True"
    assert "Pod report-1" in condition["message"]
    assert holder in condition["message"]
    assert _events(result) == [("Warning", c.NAME_CONFLICT)]
    assert result.requeue_after == 10.0
    job["status"] = {**job["status"], **_status(result)}
    # Retried, same attempt, once the wait is over; no pod vanished, so nothing is Lost.
    later = plan(job, [], NOW + timedelta(seconds=11))
    assert [a.manifest["metadata"]["name"] for a in later.actions if isinstance(a, CreatePod)] == [
        "report-1"
    ]
    assert _conditions(later)[c.NAME_CONFLICT]["status"] == "False"


# 5. A vanished pod.


def test_a_pod_its_node_never_confirmed_makes_the_attempt_lost(job: dict[str, Any]) -> None:
    _running(job)
    stuck = pod(1, "Running", deleting="2026-11-27T08:59:40Z")
    result = plan(job, [stuck], NOW)
    status = _status(result)
    assert status["attempts"][0]["outcome"] == "Lost"
    assert status["attempt"] == 2  # fenced at once
    # The finalizer stays a while (3 intervals + 5 s): the pod object, and with it its token,
    # lives on, so a process still running learns it is fenced out (422) instead of meeting a
    # 401 it would take for an API server restart and work on.
    assert not any(isinstance(a, RemoveFinalizer) for a in result.actions)
    assert result.requeue_after == 8.0
    # ... and the next pod waits for it: one pod object of the job at a time.
    assert not any(isinstance(a, CreatePod) for a in result.actions)
    # The results' fence goes up with the attempt, not with the next pod: the process may
    # still write a step's result meanwhile (found by the soak smoke).
    raised = [a.manifest for a in result.actions if isinstance(a, EnsureObject)]
    assert [(m["kind"], m["data"]["attempt"]) for m in raised] == [("ConfigMap", "2")]
    assert _kinds(result).index("EnsureObject") > _kinds(result).index("PatchStatus")
    job["status"] = {**job["status"], **status}
    waiting = plan(job, [stuck], NOW + timedelta(seconds=7))
    assert not any(isinstance(a, (RemoveFinalizer, CreatePod)) for a in waiting.actions)
    later = plan(job, [stuck], NOW + timedelta(seconds=8))
    assert [a.name for a in later.actions if isinstance(a, RemoveFinalizer)] == ["report-1"]
    assert [a.manifest["metadata"]["name"] for a in later.actions if isinstance(a, CreatePod)] == [
        "report-2"
    ]


def test_a_launch_cut_short_before_its_pod_creates_the_pod_again_not_lost(
    job: dict[str, Any],
) -> None:
    launched = plan(job, [], NOW)
    job["status"] = _status(launched)
    # The launch wrote the attempt, then an API error (or the operator's death) came before
    # the pod: the same attempt's pod is created, nothing counted.
    again = plan(job, [], NOW + timedelta(seconds=2))
    creates = [a.manifest["metadata"]["name"] for a in again.actions if isinstance(a, CreatePod)]
    assert creates == ["report-1"]
    assert _status(again).get("interruptions", 0) == 0
    # Once the pod was seen, even only while being deleted, a vanished pod is Lost.
    seen = plan(job, [pod(1, "Running", deleting="2026-11-27T09:00:05Z")], NOW)
    job["status"] = {**job["status"], **_status(seen)}
    gone = _status(plan(job, [], NOW + timedelta(seconds=30)))
    assert gone["attempts"][0]["outcome"] == "Lost"
    assert gone["attempt"] == 2


def test_an_unscheduled_pod_being_deleted_ended_there(job: dict[str, Any]) -> None:
    _running(job, phase="Pending")
    never_ran = pod(1, "Pending", deleting="2026-11-27T08:59:59Z", node=None)
    status = _status(plan(job, [never_ran], NOW))
    assert status["attempts"][0]["outcome"] == "Interrupted"
    assert status["attempt"] == 2


# 6. Shared service accounts.


def _named(job: dict[str, Any], name: str, uid: str, created: str, **status: Any) -> Any:
    other = {
        **job,
        "metadata": {**job["metadata"], "name": name, "uid": uid, "creationTimestamp": created},
        "status": status,
    }
    other["spec"] = {**job["spec"], "template": {"spec": {"serviceAccountName": "shared"}}}
    return other


def test_the_account_is_shared_with_an_older_running_job_or_one_it_belongs_to(
    job: dict[str, Any],
) -> None:
    mine = _named(job, "report", "u-1", "2026-11-27T08:00:00Z")
    older = _named(job, "older", "u-2", "2026-11-27T07:00:00Z", phase="Running")
    younger = _named(job, "younger", "u-3", "2026-11-27T09:00:00Z")
    finished = _named(job, "done", "u-4", "2026-11-27T06:00:00Z", phase="Succeeded")
    assert shared_with(mine, [mine, older, younger]) == "older"
    assert shared_with(mine, [mine, younger, finished]) is None
    assert shared_with(older, [mine, older]) is None
    # Another job's own account (the template names none) is that job's, whatever the ages.
    owner = {**job, "metadata": {**job["metadata"], "name": "x", "uid": "u-5"}}
    mine["spec"] = {**mine["spec"], "template": {"spec": {"serviceAccountName": "x-checkpoint"}}}
    assert shared_with(mine, [mine, owner]) == "x"
    assert shared_with(job, [older]) is None  # no account named: the job's own


def test_a_shared_account_keeps_the_job_pending_and_binds_nothing(job: dict[str, Any]) -> None:
    job["spec"]["template"]["spec"]["serviceAccountName"] = "shared"
    result = plan(job, [], NOW, shared_with="older")
    assert not any(isinstance(a, (CreatePod, EnsureObject)) for a in result.actions)
    condition = _conditions(result)[c.SERVICE_ACCOUNT_SHARED]
    assert condition["status"] == "True"
    assert "older" in condition["message"]
    assert _status(result)["phase"] == "Pending"
    assert result.requeue_after == 30.0


def test_a_finished_job_unbinds_a_named_account(job: dict[str, Any]) -> None:
    job["spec"]["template"]["spec"]["serviceAccountName"] = "shared"
    result = plan(_running(job), [pod(1, "Succeeded", exit_code=0)], NOW)
    bindings = [
        a.manifest
        for a in result.actions
        if isinstance(a, EnsureObject) and a.manifest["kind"] == "RoleBinding"
    ]
    assert [b["subjects"] for b in bindings] == [[]]


# 7. Restart.


def _request(job: dict[str, Any], step: str, nonce: str = "n-1") -> None:
    job["metadata"]["annotations"] = {
        "continuable.dev/restart-from-step": step,
        "continuable.dev/restart-nonce": nonce,
    }


def test_a_restart_from_an_unknown_step_is_refused_and_nothing_is_reset(
    job: dict[str, Any],
) -> None:
    _running(job)
    job["status"]["checkpoint"] = {
        "attempt": 1,
        "steps": [{"name": "fetch", "state": "Completed", "attempt": 1}],
    }
    job["spec"]["steps"] = ["fetch", "embed"]
    _request(job, "embedd")
    result = plan(job, [pod(1)], NOW)
    assert not any(isinstance(a, (DeletePod, DropResults, CreatePod)) for a in result.actions)
    assert "checkpoint" not in _status(result)
    condition = _conditions(result)[c.RESTART_REFUSED]
    assert condition["reason"] == c.UNKNOWN_STEP
    assert "'embedd'" in condition["message"]
    assert "fetch, embed" in condition["message"]
    assert ("Warning", c.UNKNOWN_STEP) in _events(result)
    assert [a for a in result.actions if isinstance(a, ClearRestartRequest)] == [
        ClearRestartRequest("n-1")
    ]


@pytest.mark.parametrize(
    ("checkpointed", "step", "kept", "dropped"),
    [
        # The checkpoint has not reached the step yet: what comes before it stays.
        (["fetch"], "items", ["fetch"], []),
        # The same request acted on already (the operator died before removing it): the
        # checkpoint it reset no longer holds the step; acting again is harmless.
        ([], "fetch", [], []),
        (["fetch", "items"], "items", ["fetch"], ["items"]),
    ],
)
def test_a_restart_from_a_step_the_checkpoint_does_not_hold(
    job: dict[str, Any], checkpointed: list[str], step: str, kept: list[str], dropped: list[str]
) -> None:
    _running(job, phase="Failed")
    job["status"]["attempts"][0]["outcome"] = "Failed"
    job["spec"]["steps"] = ["fetch", "items", "notify"]
    steps = [{"name": n, "state": "Completed", "attempt": 1} for n in checkpointed]
    job["status"]["checkpoint"] = {"attempt": 1, "steps": steps} if steps else None
    _request(job, step)
    result = plan(job, [pod(1, "Failed", exit_code=1, finalizer=False)], NOW)
    status = _status(result)
    assert status["attempt"] == 2
    assert [s["name"] for s in (status["checkpoint"] or {}).get("steps", [])] == kept
    drops = [a.steps for a in result.actions if isinstance(a, DropResults)]
    assert drops == ([tuple(dropped)] if dropped else [])
    assert any(isinstance(a, CreatePod) for a in result.actions)


def test_a_restart_stops_the_running_pod_first(job: dict[str, Any]) -> None:
    _running(job)
    job["spec"]["steps"] = ["fetch"]
    _request(job, "fetch")
    result = plan(job, [pod(1)], NOW)
    assert [a.disruption and a.disruption[0] for a in result.actions if isinstance(a, DeletePod)]
    assert not any(isinstance(a, (ClearRestartRequest, CreatePod)) for a in result.actions)


def test_a_restart_records_the_request_it_acted_on(job: dict[str, Any]) -> None:
    _running(job, phase="Failed")
    job["status"]["attempts"][0]["outcome"] = "Failed"
    _request(job, "*", nonce="n-7")
    result = plan(job, [pod(1, "Failed", exit_code=1, finalizer=False)], NOW)
    assert _status(result)["lastRestart"] == {
        "step": "*",
        "nonce": "n-7",
        "attempt": 2,
        "time": "2026-11-27T09:00:00Z",
    }


def _acted_on(job: dict[str, Any], nonce: str) -> None:
    """The status as the restart of request `nonce` wrote it (its run began at attempt 2)."""
    last = {"step": "*", "nonce": nonce, "attempt": 2, "time": "2026-11-27T08:59:00Z"}
    job["status"]["lastRestart"] = last


def test_a_restart_already_acted_on_only_has_its_request_removed(job: dict[str, Any]) -> None:
    # The operator died after the restart's status write and its pod, before the annotations
    # went: the pod it launched is the new pass, not one to stop and restart again.
    _running(job, attempt=2)
    _acted_on(job, "n-1")
    _request(job, "*")
    result = plan(job, [pod(1, "Failed", exit_code=143, finalizer=False), pod(2)], NOW)
    assert not any(isinstance(a, (DeletePod, DropResults, CreatePod)) for a in result.actions)
    assert [a for a in result.actions if isinstance(a, ClearRestartRequest)] == [
        ClearRestartRequest("n-1")
    ]


def test_a_request_set_by_hand_is_named_first_so_a_crash_cannot_act_on_it_twice(
    job: dict[str, Any],
) -> None:
    """Without a nonce nothing would tell the request acted on after a crash between the
    restart's status write and the annotations' removal: it gets one, and nothing else is done
    until the job carries it."""
    _running(job, phase="Failed")
    job["metadata"]["annotations"] = {"continuable.dev/restart-from-step": "*"}
    job["metadata"]["resourceVersion"] = "4711"
    result = plan(job, [pod(1, "Failed", exit_code=1, finalizer=False)], NOW)
    assert [a for a in result.actions if not isinstance(a, Emit)] == [
        NameRestartRequest("*", "set-by-hand-4711")
    ]


def test_a_new_request_after_an_acted_on_one_restarts_again(job: dict[str, Any]) -> None:
    _running(job, attempt=2)
    _acted_on(job, "n-1")
    _request(job, "*", nonce="n-2")
    result = plan(job, [pod(2)], NOW)
    assert [a.disruption and a.disruption[0] for a in result.actions if isinstance(a, DeletePod)]


def test_restarting_a_job_past_its_deadline_runs_it_again(job: dict[str, Any]) -> None:
    job["spec"]["activeDeadlineSeconds"] = 60
    _running(
        job,
        phase="Failed",
        startTime="2026-11-27T08:00:00Z",
        completionTime="2026-11-27T08:01:00Z",
        interruptions=2,
    )
    job["status"]["attempts"][0]["outcome"] = "Failed"
    _request(job, "*")
    result = plan(job, [pod(1, "Failed", exit_code=143, finalizer=False)], NOW)
    status = _status(result)
    assert status["phase"] == "Pending"
    assert status["attempt"] == 2
    assert status["startTime"] == "2026-11-27T09:00:00Z"
    assert status["interruptions"] == 0
    assert status["checkpoint"] is None
    assert [a for a in result.actions if isinstance(a, ClearRestartRequest)] == [
        ClearRestartRequest("n-1")
    ]
    job["status"] = {**job["status"], **status}
    job["metadata"]["annotations"] = {}
    later = plan(job, [pod(2)], NOW + timedelta(seconds=30))
    assert _status(later).get("phase") != "Failed"


# 8. Deadline and suspend.


def test_suspended_time_does_not_count_toward_the_deadline(job: dict[str, Any]) -> None:
    job["spec"]["activeDeadlineSeconds"] = 60
    job["spec"]["suspend"] = True
    _running(job, phase="Suspended", startTime="2026-11-27T08:00:00Z")
    job["status"]["attempts"][0]["outcome"] = "Interrupted"
    result = plan(job, [], NOW)
    assert _status(result).get("phase") != "Failed"
    assert result.requeue_after is None
    job["spec"]["suspend"] = False
    resumed = plan(job, [], NOW)
    status = _status(resumed)
    assert status["phase"] == "Pending"
    assert status["startTime"] == "2026-11-27T09:00:00Z"  # the clock starts again
    assert resumed.requeue_after == 60.0


def test_a_backoff_wait_is_cut_short_by_the_deadline(job: dict[str, Any]) -> None:
    job["spec"]["activeDeadlineSeconds"] = 100
    job["spec"]["backoff"] = {"initialSeconds": 300}
    _running(job, startTime="2026-11-27T08:59:00Z")
    result = plan(job, [pod(1, "Failed", exit_code=1)], NOW)
    assert _status(result)["phase"] == "Pending"
    assert result.requeue_after == 40.0


# 9. podFailurePolicy and the operator's own stops.


def test_an_exit_code_rule_never_fails_the_job_for_the_operators_own_stop() -> None:
    stamp = {"type": "DisruptionTarget", "status": "True", "reason": "TemplateChanged"}
    killed = pod(1, "Failed", exit_code=137, conditions=[stamp])
    rule = {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [137]}}
    ending = classify(killed, attempt=1, policy_rules=[rule], checkpoint={})
    assert (ending.kind, ending.reason) == ("Interrupted", "TemplateChanged")


IGNORE_DISRUPTIONS = [
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
]
IGNORE_CRASHES = [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]


def test_ignore_still_counts_a_preemption_toward_max_resumptions(job: dict[str, Any]) -> None:
    job["spec"]["podFailurePolicy"] = {"rules": IGNORE_DISRUPTIONS}
    job["spec"]["maxResumptions"] = 0
    preempted = pod(1, "Failed", exit_code=143, conditions=[DISRUPTED])
    status = _status(plan(_running(job), [preempted], NOW))
    assert status["interruptions"] == 1
    assert status["phase"] == "Failed"


def test_ignore_on_a_crash_waits_out_the_backoff_uncounted(job: dict[str, Any]) -> None:
    job["spec"]["podFailurePolicy"] = {"rules": IGNORE_CRASHES}
    just_after = NOW - timedelta(seconds=25)  # the pod ended at 08:59:30
    result = plan(_running(job), [pod(1, "Failed", exit_code=3)], just_after)
    status = _status(result)
    assert status.get("failures", 0) == 0
    assert status["attempts"][0]["outcome"] == "Failed"
    assert not any(isinstance(a, CreatePod) for a in result.actions)
    assert result.requeue_after == 5.0  # initialSeconds (10) after its end


# 14. Small things.


@pytest.mark.parametrize(
    ("backoff", "failures", "expected"),
    [
        ({"initialSeconds": 600}, 1, 600.0),
        ({"initialSeconds": 600, "maxSeconds": None}, 3, 600.0),
        ({"initialSeconds": 10}, 9, 360.0),
        ({"initialSeconds": 10, "maxSeconds": 1000}, 9, 1000.0),
    ],
)
def test_backoff_without_a_ceiling(backoff: dict[str, Any], failures: int, expected: float) -> None:
    assert backoff_delay(failures, backoff) == expected


def test_a_template_without_its_token_fails_with_a_clear_condition(job: dict[str, Any]) -> None:
    job["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    result = plan(job, [], NOW)
    assert not any(isinstance(a, CreatePod) for a in result.actions)
    failed = _conditions(result)[c.FAILED]
    assert failed["reason"] == c.INVALID_POD_TEMPLATE
    assert "automountServiceAccountToken" in failed["message"]
    assert _status(result).get("failures", 0) == 0


def test_a_misspelt_template_field_fails_with_the_api_servers_words(job: dict[str, Any]) -> None:
    words = 'strict decoding error: unknown field "spec.containers[0].imagePullPolicyy"'
    result = plan_create_failure(_running(job), 400, words, NOW)
    failed = _conditions(result)[c.FAILED]
    assert failed["reason"] == c.INVALID_POD_TEMPLATE
    assert words in failed["message"]


def test_every_refused_creation_is_reported_for_the_event_counter(job: dict[str, Any]) -> None:
    first = plan_create_failure(_running(job), 403, "exceeded quota: pods", NOW)
    job["status"] = {**job["status"], **_status(first)}
    again = plan_create_failure(job, 403, "exceeded quota: pods", NOW + timedelta(seconds=10))
    # The same Event each time: ClusterApi.emit counts repeats on one Event.
    assert _events(first) == _events(again) == [("Warning", c.POD_CREATE_FAILED)]
    assert isinstance(first.actions[0], PatchStatus)
