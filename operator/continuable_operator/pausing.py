"""What the clock and `spec.suspend` decide: suspending, the active deadline, and the TTL after
the job finished. Pure functions over a `Draft`.

The deadline follows batch/v1 Job: it counts the time since the job started or was last
resumed (`startTime` is set again on resume), never while it is suspended; and every wait that
could outlast it has a requeue at it, so it is not overshot.
"""

from __future__ import annotations

from datetime import timedelta

from . import conditions as c
from .actions import DeleteJob
from .drafting import Draft, parse_time
from .ending import any_pod_runs


def is_suspended(draft: Draft) -> bool:
    return bool(draft.spec.get("suspend"))


def suspend(draft: Draft) -> None:
    draft.status["phase"] = "Suspended"
    if not c.is_true(draft.status["conditions"], c.SUSPENDED):
        draft.condition(c.SUSPENDED, True, c.SUSPENDED_BY_USER, "spec.suspend is true")
        draft.condition(c.RUNNING, False, c.SUSPENDED_BY_USER, "the job is suspended")
        draft.emit("Normal", c.SUSPENDED_BY_USER, "the job is suspended")


def deadline_remaining(draft: Draft) -> float | None:
    """Seconds left before activeDeadlineSeconds; None when there is no deadline, the job has
    not started, or it is suspended or resuming (suspended time does not count)."""
    deadline = draft.spec.get("activeDeadlineSeconds")
    started = parse_time(draft.status.get("startTime"))
    if deadline is None or started is None or is_suspended(draft) or draft.finished:
        return None
    if draft.status.get("phase") == "Suspended":
        return None  # resuming: the clock starts again at the launch
    return (started + timedelta(seconds=int(deadline)) - draft.now).total_seconds()


def past_deadline(draft: Draft) -> bool:
    remaining = deadline_remaining(draft)
    return remaining is not None and remaining <= 0


def deadline_message(draft: Draft) -> str:
    deadline = draft.spec.get("activeDeadlineSeconds")
    return f"the job ran longer than activeDeadlineSeconds ({deadline} s) since it last started"


def requeue_at_deadline(draft: Draft) -> None:
    remaining = deadline_remaining(draft)
    if remaining is not None:
        draft.requeue(max(remaining, 0.0))


def expire_when_due(draft: Draft) -> None:
    """ttlSecondsAfterFinished: delete the finished job once it has passed and no pod runs (a
    pod on a lost node, which may never confirm its end, does not hold it up)."""
    ttl = draft.spec.get("ttlSecondsAfterFinished")
    finished = parse_time(draft.status.get("completionTime"))
    if ttl is None or finished is None:
        return
    if any_pod_runs(draft):
        return
    remaining = (finished + timedelta(seconds=int(ttl)) - draft.now).total_seconds()
    if remaining > 0:
        draft.requeue(remaining)
        return
    draft.act(DeleteJob(draft.name, draft.uid))
