"""Judge 2, the API audit log: fencing, least privilege, the write budget and hot loops, from
what the API server accepted (stage ResponseComplete), not from what anyone says they did.

Rules:
- Zombie check. A job's "current attempt" at a moment is the highest `/status/attempt` set by
  the operator's accepted status writes (JSON patch `add`/`replace` ops, or a merge patch's
  `status.attempt`) for that job uid *certainly before* it: by etcd revision (the response's
  resourceVersion, one order for every object of one etcd), else only when the operator's write
  completed before the other was received. An accepted SDK write (status or results) whose
  fence tests an attempt older than the current one is a zombie write. So is an accepted SDK
  write with no attempt fence at all, one whose token's pod (`user.extra`) is another attempt
  than the one it tested, and one whose tested uid is not the uid of the object it landed on.
  The results ConfigMap counts: the operator raises the status attempt before it sets the
  ConfigMap's `attempt` key, and a zombie's result written in between is caught here.
- Least privilege: an accepted write by a job's ServiceAccount to anything but its own job's
  status and results ConfigMap is a violation (another job's object, or any other object).
  Refused attempts (403) are only counted.
- Write budget, per attempt: its accepted SDK writes <= its running seconds / interval + 1,
  plus WRITES_PER_STEP for each of the job's steps (start, result, completion) and END_WRITES
  (the flush on SIGTERM, the final stop reason), plus SLACK. Running seconds: from the pod
  watch (Running to terminal or gone), at least the span of the attempt's own writes.
- Hot loop: no job with more than `rate` write requests per second, refused ones included,
  over any `window` seconds (the audit policy records writes only). A request counts for a
  job when it writes the job, its results, its pods or its account, or is made by its account.

Cannot detect: a zombie's write the API server refused (that is fencing working); writes the
audit policy does not record (reads, events); a job's pod writing as the operator's account
(no test can tell); requests that never reached the API server. Can wrongly excuse a zombie
write racing the operator's raise when neither has a resourceVersion (they are then ordered
only when their request/response times do not overlap).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tests.soak.records import AuditEvent, Records

from .verdict import Verdict, short, verdict
from .writes import (
    WRITE_VERBS,
    Write,
    object_job,
    response_uid,
    sa_job,
    sdk_writes,
)

NAME = "audit"
WRITES_PER_STEP = 3
END_WRITES = 2
SLACK = 2
DEFAULT_RATE = 5.0
DEFAULT_WINDOW = 10.0


@dataclass(frozen=True)
class Raise:
    """An accepted operator status write that set the attempt."""

    event: AuditEvent
    uid: str | None
    attempt: int


def set_attempt(request: object) -> int | None:
    if isinstance(request, list):
        for op in request:
            if (
                isinstance(op, dict)
                and op.get("op") in ("add", "replace")
                and op.get("path") == "/status/attempt"
            ):
                value = op.get("value")
                return value if isinstance(value, int) else None
        return None
    if isinstance(request, dict):
        value = (request.get("status") or {}).get("attempt")
        return value if isinstance(value, int) else None
    return None


def raises(records: Records) -> dict[str, list[Raise]]:
    names = set(records.names())
    found: dict[str, list[Raise]] = defaultdict(list)
    for event in records.audit:
        if not (
            event.accepted
            and event.resource == "continuablejobs"
            and event.subresource == "status"
            and event.verb in WRITE_VERBS
            and sa_job(event, names) is None
        ):
            continue
        attempt = set_attempt(event.request)
        if attempt is not None:
            uid = response_uid(event, "status") or records.uid_at(event.name, event.received)
            found[event.name].append(Raise(event, uid, attempt))
    return found


def before(a: AuditEvent, b: AuditEvent) -> bool:
    """Whether a's write certainly committed before b's."""
    if a.rv is not None and b.rv is not None:
        return a.rv < b.rv
    return a.t < b.received


def current_attempt(timeline: list[Raise], write: Write, uid: str | None) -> int:
    """The attempt the operator had given the write's job uid when the write committed."""
    return max(
        (r.attempt for r in timeline if r.uid == uid and before(r.event, write.event)),
        default=0,
    )


def _who(w: Write) -> str:
    e = w.event
    where = f"{e.resource}{'/' + e.subresource if e.subresource else ''} {e.namespace}/{e.name}"
    return f"{e.user} {e.verb} {where} (code {e.code}, at {e.t:.3f}, rv {e.rv})"


def fencing(records: Records, writes: list[Write]) -> list[str]:
    timelines = raises(records)
    violations: list[str] = []
    for w in writes:
        if not w.event.accepted or w.kind == "other" or w.writer != w.job:
            continue
        if w.tested_attempt is None:
            violations.append(f"unfenced write: {_who(w)} tests no attempt")
            continue
        uid = w.uid or records.uid_at(w.job, w.event.received)
        current = current_attempt(timelines.get(w.job, []), w, uid)
        if w.tested_attempt < current:
            violations.append(
                f"zombie write: {_who(w)} fenced on attempt {w.tested_attempt} was accepted "
                f"while attempt {current} owned {w.job} (uid {short(uid)})"
            )
        if w.pod_attempt is not None and w.pod_attempt != w.tested_attempt:
            violations.append(
                f"{_who(w)}: pod of attempt {w.pod_attempt} wrote fenced on attempt "
                f"{w.tested_attempt}"
            )
        landed = response_uid(w.event, w.kind)
        if w.tested_uid is None or (landed is not None and landed != w.tested_uid):
            violations.append(
                f"{_who(w)}: fenced on uid {short(w.tested_uid)}, landed on uid {short(landed)}"
            )
    return violations


def privilege(writes: list[Write], figures: dict[str, float]) -> list[str]:
    violations: list[str] = []
    for w in writes:
        if w.writer == w.job and w.kind != "other":
            continue
        if not w.event.accepted:
            figures["refused_foreign_writes"] += 1
            continue
        what = f"job {w.job}'s {w.kind}" if w.kind != "other" else "outside its grants"
        violations.append(f"job {w.writer}'s account wrote {what}: {_who(w)}")
    return violations


def _running_seconds(records: Records, uid: str, attempt: int) -> float:
    events = [p for p in records.pods_of(uid) if p.attempt == attempt]
    started = next((p.t for p in events if p.phase == "Running"), None)
    ended = next((p.t for p in events if p.terminal), None)
    if started is None:
        return 0.0
    return (ended if ended is not None else records.window()[1]) - started


def budget(records: Records, writes: list[Write]) -> list[str]:
    by_attempt: dict[tuple[str, int], list[Write]] = defaultdict(list)
    for w in writes:
        if w.event.accepted and w.kind != "other" and w.writer == w.job and w.attempt is not None:
            uid = w.uid or records.uid_at(w.job, w.event.t)
            if uid is not None:
                by_attempt[(uid, w.attempt)].append(w)
    violations: list[str] = []
    for (uid, attempt), done in sorted(by_attempt.items()):
        job = records.by_uid(uid)
        if job is None:
            continue
        span = max(done[-1].event.t - done[0].event.t, _running_seconds(records, uid, attempt))
        allowed = span / job.interval_seconds + 1 + WRITES_PER_STEP * len(job.steps)
        allowed += END_WRITES + SLACK
        if len(done) > allowed:
            violations.append(
                f"{job.name} (uid {short(uid)}) attempt {attempt}: {len(done)} checkpoint and "
                f"result writes in {span:.1f} s, more than {allowed:.0f} (one per "
                f"{job.interval_seconds:g} s interval, plus step boundaries)"
            )
    return violations


def job_of(event: AuditEvent, names: set[str]) -> str | None:
    return object_job(event, names) or sa_job(event, names)


# Kubernetes' own writers: a burst of relaunches (5 attempts of one job in 10 s under dense
# faults) legitimately brings each pod's status patches from its node and its binding from the
# scheduler; a hot loop is one of ours (the operator, the SDK) writing without end.
KUBERNETES_WRITERS = ("system:node:", "system:kube-scheduler", "system:kube-controller-manager")


def hot_loops(records: Records, rate: float, window: float, figures: dict[str, float]) -> list[str]:
    names = set(records.names())
    times: dict[str, list[float]] = defaultdict(list)
    for event in records.audit:
        job = job_of(event, names)
        ours = not event.user.startswith(KUBERNETES_WRITERS)
        if job is not None and ours and event.verb in WRITE_VERBS:
            times[job].append(event.t)
    violations: list[str] = []
    for job, stamps in sorted(times.items()):
        stamps.sort()
        worst, at, start = 0, 0.0, 0
        for end, t in enumerate(stamps):
            while t - stamps[start] > window:
                start += 1
            if end - start + 1 > worst:
                worst, at = end - start + 1, stamps[start]
        figures["max_requests_per_second"] = max(figures["max_requests_per_second"], worst / window)
        if worst > rate * window:
            violations.append(
                f"hot loop: {worst} write requests for job {job} within {window:g} s from "
                f"{at:.3f} (limit {rate:g}/s)"
            )
    return violations


def judge(
    records: Records, *, rate: float = DEFAULT_RATE, window: float = DEFAULT_WINDOW
) -> Verdict:
    writes = sdk_writes(records)
    figures: dict[str, float] = {
        "audit_events": len(records.audit),
        "sdk_writes": len(writes),
        "sdk_writes_accepted": sum(1 for w in writes if w.event.accepted),
        "sdk_writes_refused": sum(1 for w in writes if not w.event.accepted),
        "refused_foreign_writes": 0,
        "max_requests_per_second": 0.0,
    }
    violations = fencing(records, writes)
    violations += privilege(writes, figures)
    violations += budget(records, writes)
    violations += hot_loops(records, rate, window, figures)
    if not records.audit:
        violations.append("the audit log is empty: nothing could be checked")
    return verdict(NAME, violations, figures)
