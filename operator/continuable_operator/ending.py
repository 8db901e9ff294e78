"""How an attempt ended, written into the draft status: the attempt's record, the counters, the
phase and conditions. Pure functions over a `Draft`.

Interruptions count against maxResumptions only, failures against backoffLimit (invariant 5).
An attempt whose pod vanished, or whose node never confirmed its deletion, is `Lost`: it counts
as an interruption, and the next attempt gets a new number so the old process, if it still runs
on a partitioned node, is fenced out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from . import conditions as c
from .actions import DeletePod
from .classifying import Ending, classify, is_terminal
from .drafting import (
    Draft,
    checkpoint_interval,
    has_finalizer,
    parse_time,
    release,
    timestamp,
)

# How long past its deletion deadline a pod may stay unconfirmed before its attempt is Lost: a
# live kubelet kills at the deadline and reports within a second or two; one that says nothing
# for this long is on a lost or partitioned node.
LOST_AFTER_SECONDS = 15.0

OUTCOMES = {
    "Succeeded": "Succeeded",
    "Interrupted": "Interrupted",
    "Isolated": "Isolated",
    "NotReplayable": "Failed",
    "FailJob": "Failed",
    "Failed": "Failed",
}


def fence_hold_seconds(draft: Draft) -> float:
    """How long a Lost attempt's pod keeps its tracking finalizer: while the pod object exists
    its token works, so the process, if it still runs, gets its next checkpoint write refused
    as fenced (422) and stops at once. Released at once, the token would be revoked and the
    process would meet a 401 it must take for an API server restart for a minute, working on."""
    return 3.0 * checkpoint_interval(draft.spec) + 5.0


def release_when_fenced(draft: Draft, attempt: int, pod: Mapping[str, Any]) -> None:
    """Release an ended pod's finalizer; a Lost one's only once its process had the time to
    learn it is fenced out (`fence_hold_seconds`)."""
    if not has_finalizer(pod):
        return
    record = draft.record(attempt)
    ended = parse_time((record or {}).get("endTime"))
    if record is not None and record.get("outcome") == "Lost" and ended is not None:
        due = ended + timedelta(seconds=fence_hold_seconds(draft))
        if draft.now < due and not is_terminal(pod):
            draft.requeue((due - draft.now).total_seconds())
            return
    draft.after_write(release(pod))


def is_gone(pod: Mapping[str, Any], draft: Draft) -> bool:
    """A pod being deleted that no kubelet will ever report on: never scheduled, or past its
    deletion deadline by LOST_AFTER_SECONDS."""
    metadata = pod.get("metadata") or {}
    deadline = parse_time(metadata.get("deletionTimestamp"))
    if deadline is None or is_terminal(pod):
        return False
    if not (pod.get("spec") or {}).get("nodeName"):
        return True
    return draft.now >= deadline + timedelta(seconds=LOST_AFTER_SECONDS)


def any_pod_runs(draft: Draft) -> bool:
    """Whether a pod of the job may still run: not terminal, and not gone (a pod on a lost
    node, which may never confirm its end, does not count)."""
    return any(not is_terminal(p) and not is_gone(p, draft) for p in draft.pods.values())


def lost_in(pod: Mapping[str, Any], draft: Draft) -> float | None:
    """Seconds until a pod being deleted counts as gone; None when it is not being deleted."""
    deadline = parse_time((pod.get("metadata") or {}).get("deletionTimestamp"))
    if deadline is None or is_terminal(pod):
        return None
    due = deadline + timedelta(seconds=LOST_AFTER_SECONDS)
    return max((due - draft.now).total_seconds(), 0.0)


def classify_pod(draft: Draft, attempt: int, pod: Mapping[str, Any]) -> Ending:
    policy = (draft.spec.get("podFailurePolicy") or {}).get("rules") or []
    return classify(pod, attempt=attempt, policy_rules=policy, checkpoint=draft.checkpoint)


def close_record(record: dict[str, Any], draft: Draft, ending: Ending, outcome: str) -> None:
    reason = c.reason_of(ending.reason)
    record.update(outcome=outcome, reason=reason, message=ending.message[:4096])
    finished = parse_time(ending.finished_at)
    record["endTime"] = timestamp(finished) if finished else draft.stamp
    if ending.exit_code is not None:
        record["exitCode"] = ending.exit_code


def _open_record(draft: Draft, attempt: int, pod_name: str) -> dict[str, Any]:
    record = draft.record(attempt)
    if record is None:
        record = {"attempt": attempt, "podName": pod_name, "outcome": "Running"}
        draft.status["attempts"].append(record)
    return record


def record_ending(draft: Draft, attempt: int, pod: Mapping[str, Any]) -> None:
    """The attempt's pod ended (or is gone unscheduled): record how, and what follows."""
    name = pod["metadata"]["name"]
    ending = classify_pod(draft, attempt, pod)
    record = _open_record(draft, attempt, name)
    close_record(record, draft, ending, _outcome(ending))
    _account(draft, f"attempt {attempt} (pod {name})", ending)


def close_attempt(draft: Draft, attempt: int, pod: Mapping[str, Any]) -> None:
    """Record how the attempt's pod ended, and nothing else (the job is being deleted)."""
    ending = classify_pod(draft, attempt, pod)
    record = _open_record(draft, attempt, str(pod["metadata"]["name"]))
    close_record(record, draft, ending, _outcome(ending))


def record_lost(draft: Draft, attempt: int, pod_name: str, message: str) -> None:
    """The attempt's pod vanished, or its node never confirmed its end: the attempt is Lost."""
    record = _open_record(draft, attempt, pod_name)
    ending = Ending("Interrupted", c.POD_LOST, message)
    close_record(record, draft, ending, "Lost")
    _account(draft, f"attempt {attempt} (pod {pod_name})", ending)


def _outcome(ending: Ending) -> str:
    if ending.kind == "Ignored":
        # Ignored by podFailurePolicy: an interruption when the pod was disrupted, otherwise
        # a crash that counts in no budget but still waits out the backoff.
        return "Interrupted" if ending.disrupted else "Failed"
    return OUTCOMES[ending.kind]


def _account(draft: Draft, where: str, ending: Ending) -> None:
    status = draft.status
    if ending.kind == "Succeeded":
        status["phase"] = "Succeeded"
        status["completionTime"] = draft.stamp
        draft.condition(c.COMPLETE, True, c.COMPLETED, f"{where} completed the job")
        draft.condition(c.RUNNING, False, c.COMPLETED, "the job completed")
        draft.emit("Normal", c.COMPLETED, f"{where} completed the job")
    elif ending.kind == "Interrupted" or (ending.kind == "Ignored" and ending.disrupted):
        _interrupted(draft, where, ending)
    elif ending.kind == "Ignored":
        status["phase"] = "Pending"
        draft.condition(c.RUNNING, False, ending.reason, f"{where} failed: {ending.message}")
        draft.emit("Warning", ending.reason, f"{where} failed (not counted): {ending.message}")
    elif ending.kind == "Isolated":
        status["phase"] = "Pending"
        draft.condition(c.RUNNING, False, c.ISOLATED, f"{where}: {ending.message}")
        draft.emit("Normal", c.ISOLATED, f"{where} stopped so an isolated step starts afresh")
    elif ending.kind == "FailJob":
        draft.fail(c.POD_FAILURE_POLICY, f"{where}: {ending.message}")
    elif ending.kind == "NotReplayable":
        draft.fail(
            c.STEP_NOT_REPLAYABLE,
            f"{where}: {ending.message} Decide, then `continuable restart --from-step`.",
        )
    else:
        _failed(draft, where, ending)


def _interrupted(draft: Draft, where: str, ending: Ending) -> None:
    status = draft.status
    # A restart a person asked for is not an interruption of the job's budget.
    status["interruptions"] += int(ending.reason != c.RESTART_REQUESTED)
    limit = draft.spec.get("maxResumptions")
    if limit is not None and status["interruptions"] > limit:
        draft.fail(
            c.RESUME_LIMIT_EXCEEDED,
            f"interrupted {status['interruptions']} times, more than maxResumptions "
            f"({limit}); last: {ending.reason}: {ending.message}",
        )
        return
    status["phase"] = "Interrupted"
    draft.condition(c.INTERRUPTED, True, ending.reason, f"{where}: {ending.message}")
    draft.condition(c.RUNNING, False, ending.reason, f"{where} was interrupted")
    draft.emit(
        "Normal",
        "Interrupted",
        f"{where} interrupted: {c.reason_of(ending.reason)}: {ending.message}",
    )


def _failed(draft: Draft, where: str, ending: Ending) -> None:
    status = draft.status
    status["failures"] += 1
    limit = int(draft.spec.get("backoffLimit", 6))
    if status["failures"] > limit:
        draft.fail(
            c.BACKOFF_LIMIT_EXCEEDED,
            f"failed {status['failures']} times, more than backoffLimit ({limit}); "
            f"last: {ending.reason}: {ending.message}",
        )
        return
    status["phase"] = "Pending"
    draft.condition(c.RUNNING, False, ending.reason, f"{where} failed: {ending.message}")
    draft.emit("Warning", ending.reason, f"{where} failed: {ending.message}")


def settle_finished(
    draft: Draft,
    attempt: int,
    why: tuple[str, str] = (c.JOB_FINISHED, "the job has finished"),
) -> None:
    """The job is over: stop its pod if one still runs, record how it ended, release it."""
    pod = draft.pods.get(attempt)
    if pod is None:
        return
    if not is_terminal(pod) and not is_gone(pod, draft):
        if not pod["metadata"].get("deletionTimestamp"):
            draft.act(DeletePod(pod["metadata"]["name"], str(pod["metadata"]["uid"]), why))
        waiting = lost_in(pod, draft)
        if waiting is not None:
            draft.requeue(waiting)
        return
    record = draft.record(attempt)
    if record is not None and record.get("outcome") == "Running":
        ending = classify_pod(draft, attempt, pod)
        close_record(record, draft, ending, "Succeeded" if ending.kind == "Succeeded" else "Failed")
        draft.flush()
    if has_finalizer(pod):
        draft.act(release(pod))
