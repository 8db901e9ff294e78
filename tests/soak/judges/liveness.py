"""Judge 5, liveness: every job ends, as its faults allow, in time, leaving nothing behind.

Rules:
- The last uid of every name exists at the end and is Succeeded, or Failed with a reason its
  faults justify: `StepNotReplayable` only if a lossy fault (SIGKILL, partition) reached it
  after its loop was done (every item once in its last pass: notify is next, and a lost
  attempt that had started it leaves it started), `BackoffLimitExceeded` only if its counted
  failure faults exceed `spec.backoffLimit`, `ResumeLimitExceeded` only if its interruption
  faults exceed `spec.maxResumptions`, `DeadlineExceeded` only if it has a deadline. The
  expectations are the accounting judge's, from the fault log.
- Within `bound_seconds` of its creation (by `status.completionTime`), when a bound is given,
  plus the time no operator could act while the job lived: each operator kill and leader
  failover until a replica led again (`took`), each API server restart until it answered
  (`back_after`). A job whose relaunch falls due then waits for it by design (a follower
  that starts late waits a whole lease duration).
- No pod still carries the tracking finalizer in its last watched state; no pod of a deleted
  uid is still there at the end (garbage collection), once `settle_seconds` have passed since
  the uid's last record.
- The operator's reconcile errors (log lines with "failed" and "retry in") do not grow: their
  rate per minute in the last third of the run is at most 3x that of the first third, plus 10.

Cannot detect: a job that Succeeded without doing its work (the ledger judge's); a failure the
fault log justifies that the operator reached for another cause with the same reason (a
StepNotReplayable after a kill just before notify was saved as started); a leak of objects the
soak does not watch (ConfigMaps, Roles); errors the operator does not log.
"""

from __future__ import annotations

from datetime import datetime

from tests.soak.records import JobRecord, PodEvent, Records

from .accounting import expected
from .faults import DELETING_KINDS, lossy, of_uid
from .passes import Run
from .verdict import Verdict, short, verdict

NAME = "liveness"
TRACKING_FINALIZER = "continuable.dev/tracking"
DEFAULT_SETTLE_SECONDS = 60.0
GROWTH_FACTOR = 3.0
GROWTH_ALLOWANCE = 10.0


def _seconds(stamp: object) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _failed_reason(job: JobRecord) -> str | None:
    for condition in job.status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("reason"))
    return None


def justified(records: Records, job: JobRecord, reason: str | None) -> str | None:
    """Why the faults justify this failure, or None."""
    if reason == "StepNotReplayable":
        done = Run(records, job).loop_done_at()
        for fault in of_uid(records, job.uid):
            if fault.reached_pod and lossy(fault) and done is not None and fault.t >= done:
                return f"{fault.kind} at {fault.t:.3f} after the loop was done at {done:.3f}"
        return None
    want = expected(records, job)
    spec = job.spec
    if reason == "BackoffLimitExceeded" and want.failures[1] > int(spec.get("backoffLimit", 6)):
        return f"up to {want.failures[1]} failure faults"
    limit = spec.get("maxResumptions")
    if reason == "ResumeLimitExceeded" and limit is not None and want.interruptions[1] > limit:
        return f"up to {want.interruptions[1]} interruption faults"
    if reason == "DeadlineExceeded" and spec.get("activeDeadlineSeconds"):
        return "the job has a deadline"
    return None


def endings(records: Records, bound: float | None, figures: dict[str, float]) -> list[str]:
    violations: list[str] = []
    for name in records.names():
        job = records.last(name)
        where = f"{name} (uid {short(job.uid)})"
        if job.final is None:
            violations.append(f"{where} no longer exists at the end")
            continue
        phase = job.status.get("phase")
        if phase == "Failed":
            reason = _failed_reason(job)
            why = justified(records, job, reason)
            if why is None:
                violations.append(f"{where} Failed ({reason}), which its faults do not justify")
                continue
            figures["failed_justified"] += 1
        elif phase != "Succeeded":
            violations.append(f"{where} ended the run {phase or 'without a phase'}")
            continue
        else:
            figures["succeeded"] += 1
        finished = _seconds(job.status.get("completionTime"))
        if finished is not None:
            figures["longest_seconds"] = max(figures["longest_seconds"], finished - job.created)
        if bound is None:
            continue
        stalled = _stalled(records, job.created, finished)
        if finished is None or finished - job.created > bound + stalled:
            took = f"{finished - job.created:.0f} s" if finished is not None else "no end time"
            violations.append(
                f"{where} took {took}, more than {bound + stalled:g} s ({bound:g} s, and "
                f"{stalled:g} s in which no operator could act)"
            )
    return violations


# The faults that leave no operator able to act, and the word of their detail that says for
# how long.
STALLING: dict[str, str] = {
    "operator-kill": "took",
    "leader-failover": "took",
    "apiserver-restart": "back_after",
}


def _stalled(records: Records, created: float, finished: float | None) -> float:
    """Seconds in which no operator could act, of the stalls that began while the job lived."""
    end = finished if finished is not None else float("inf")
    return sum(
        f.seconds(STALLING[f.kind])
        for f in records.faults
        if f.kind in STALLING and created <= f.t <= end
    )


def _deleted_at(records: Records, job: JobRecord) -> float | None:
    """When a uid that is gone at the end was deleted: its deleting fault, else when its name
    was next created."""
    if job.final is not None:
        return None
    deletions = [f.t for f in of_uid(records, job.uid) if f.kind in DELETING_KINDS]
    later = [j.created for j in records.uids_of(job.name) if j.created > job.created]
    return min(deletions + later, default=job.created)


def leftovers(records: Records, settle: float) -> list[str]:
    last: dict[str, PodEvent] = {}
    for event in records.pods:
        last[event.uid] = event
    end = records.window()[1]
    violations: list[str] = []
    for pod in last.values():
        if pod.type == "DELETED":
            continue
        if TRACKING_FINALIZER in pod.finalizers:
            violations.append(
                f"pod {pod.name} (uid {short(pod.uid)}, {pod.phase}) still has "
                f"{TRACKING_FINALIZER} at the end"
            )
        job = records.by_uid(pod.job_uid or "")
        deleted = _deleted_at(records, job) if job is not None else None
        if job is not None and deleted is not None and end - deleted > settle:
            violations.append(
                f"pod {pod.name} of {job.name} (uid {short(job.uid)}, deleted at "
                f"{deleted:.3f}) is still there at the end ({pod.phase})"
            )
    return violations


def _log_time(line: str) -> float | None:
    """The time of an operator log line: text (`%(asctime)s ...`) or JSON (`"time"`), both in
    the machine's local time, as Python's logging writes them."""
    stamp = line[:23]
    if line.startswith("{"):
        start = line.find('"time": "')
        stamp = line[start + 9 : start + 32] if start >= 0 else ""
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def reconcile_errors(records: Records, figures: dict[str, float]) -> list[str]:
    start, end = records.window()
    third = (end - start) / 3
    if third <= 0:
        return []
    first = last = 0
    for line in records.operator_log:
        if "failed" not in line or "retry in" not in line:
            continue
        t = _log_time(line)
        if t is None:
            continue
        first += int(start <= t < start + third)
        last += int(end - third <= t <= end)
    minutes = third / 60
    figures["reconcile_errors_first_third_per_minute"] = first / minutes
    figures["reconcile_errors_last_third_per_minute"] = last / minutes
    if last / minutes > GROWTH_FACTOR * first / minutes + GROWTH_ALLOWANCE:
        return [
            f"reconcile errors grow: {last / minutes:.1f}/min in the last third of the run, "
            f"{first / minutes:.1f}/min in the first"
        ]
    return []


def judge(
    records: Records,
    *,
    bound_seconds: float | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> Verdict:
    figures: dict[str, float] = {"succeeded": 0, "failed_justified": 0, "longest_seconds": 0.0}
    violations = endings(records, bound_seconds, figures)
    violations += leftovers(records, settle_seconds)
    violations += reconcile_errors(records, figures)
    return verdict(NAME, violations, figures)
