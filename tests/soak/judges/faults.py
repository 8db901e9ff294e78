"""What each fault kind should do to a job, by the README's table, and where a restart from a
step starts a new pass over the job's work.

These are the judges' expectations, written down once and independently of the operator's
classifier (`classifying.py`): if the two disagree, a judge says so.

A `restart` resets the checkpoint from its step and the counters, in the operator's status
write that raises the attempt (restarting.py) and records the request's nonce and the new run's
first attempt in `status.lastRestart`. Where that write is in the audit log, that attempt is the
first of the new pass; without it, the pass starts after the attempt the fault names (the one
whose pod the restart stopped), else after the highest attempt the ledger or the pod watch had
seen when the restart was requested. The fallbacks can put an attempt launched in
the same instant as the request on the wrong side (the restart then stops it), so the audit log
is preferred.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from tests.soak.records import Fault, JobRecord, Records

# SIGTERM within the grace period: zero repeated items, counted as interruptions.
GRACEFUL_KINDS: Final = frozenset(
    {"pod-delete", "evict", "preempt", "drain", "rollout", "suspend", "interrupt", "restart"}
)
# The process dies without saving (SIGKILL), or runs on unseen (a partition): up to one
# checkpoint interval of items may repeat.
LOSSY_KINDS: Final = frozenset({"sigkill", "partition"})
# A Lost pod (partition) counts as an interruption; a restart a person asked for does not.
INTERRUPTION_KINDS: Final = (GRACEFUL_KINDS - {"restart"}) | {"partition"}
FAILURE_KINDS: Final = frozenset({"sigkill"})
# The job object is deleted: its uid's counters are gone with it.
DELETING_KINDS: Final = frozenset({"recreate", "foreground-delete"})
# Faults that make the SDK's checkpoint writes fail for a while, so the cursor in memory runs
# ahead of the saved one (checkpointing.py lets it run up to HOLD_BACK_INTERVALS ahead).
OUTAGE_KINDS: Final = frozenset({"apiserver-restart"})
# The SDK's back-pressure: past this many intervals without a save, `set()` waits for one
# (HOLD_BACK_AFTER_INTERVALS in continuable/checkpointing.py; not imported, so a change there
# shows up here as a violation to look at).
HOLD_BACK_INTERVALS: Final = 3
# How long an API server restart keeps writes failing: its down time (the plan holds it up to
# 5 s), its start, and the SDK's retry delay after it.
OUTAGE_SECONDS: Final = 30.0

Counted = Literal["interruption", "failure", "either", "none"]


def lossy(fault: Fault) -> bool:
    """Whether the fault may cost the attempt its unsaved lead (items may repeat)."""
    return fault.kind in LOSSY_KINDS or (fault.reached_pod and not fault.graceful)


def counted_as(fault: Fault) -> Counted:
    """Which status counter the attempt the fault ended should raise. `either`: a kind whose
    outcome depends on how the pod died (an agent restart that reached a pod), so the judge
    accepts an interruption, a failure or neither."""
    if not fault.reached_pod or fault.kind == "restart" or fault.kind in DELETING_KINDS:
        return "none"
    if fault.kind in INTERRUPTION_KINDS:
        return "interruption"
    if fault.kind in FAILURE_KINDS:
        return "failure"
    return "either"


def of_uid(records: Records, uid: str) -> list[Fault]:
    """The faults that hit this uid, in time order."""

    def by_uid() -> dict[str | None, list[Fault]]:
        found: dict[str | None, list[Fault]] = {}
        for fault in sorted(records.faults, key=lambda f: f.t):
            if fault.job:
                found.setdefault(records.fault_uid(fault), []).append(fault)
        return found

    return records.memo("faults_by_uid", by_uid).get(uid, [])


_FROM_STEP = re.compile(r"from[-_ ]?step[=: ]+([A-Za-z0-9_.*-]+)")


def restart_step(fault: Fault, steps: tuple[str, ...]) -> str | None:
    """The step a `restart` fault named: `detail` is the step (or `*`), or says
    `from-step=<step>`; else the first of the job's steps it mentions."""
    detail = fault.detail.strip()
    if detail in steps or detail == "*":
        return detail
    match = _FROM_STEP.search(detail)
    if match:
        return match.group(1)
    words = set(re.findall(r"[A-Za-z0-9_.-]+", detail))
    return next((s for s in steps if s in words), None)


def resets(restart_from: str, step: str, steps: tuple[str, ...]) -> bool:
    """Whether a restart from `restart_from` makes `step` run again."""
    if restart_from == "*" or restart_from not in steps or step not in steps:
        # A boundary always names one of the job's steps (a restart from a step the job does
        # not have is refused and resets nothing); a step the judge cannot place is taken as
        # reset, which excuses rather than accuses.
        return True
    return steps.index(restart_from) <= steps.index(step)


@dataclass(frozen=True)
class Boundary:
    """A restart from `step`: attempts up to `before` ran the old pass, later ones the new."""

    fault: Fault
    step: str
    before: int


def _reset_attempt(records: Records, job: JobRecord, fault: Fault) -> int | None:
    """The first attempt of the run the restart began, as the operator's status write that acted
    on the request records it (`status.lastRestart` with the request's nonce; the write may
    raise the attempt, or, for a suspended job, leave that to the resume)."""
    nonce = fault.said("nonce")
    if nonce is None:
        return None
    for event in records.audit:
        if not (
            event.accepted
            and event.received >= fault.t
            and event.resource == "continuablejobs"
            and event.subresource == "status"
            and event.name == job.name
            and isinstance(event.request, list)
        ):
            continue
        for op in event.request:
            if not isinstance(op, dict) or op.get("path") != "/status/lastRestart":
                continue
            value = op.get("value") if op.get("op") != "test" else None
            if isinstance(value, dict) and value.get("nonce") == nonce:
                attempt = value.get("attempt")
                return attempt if isinstance(attempt, int) else None
    return None


def _running_at(records: Records, job: JobRecord, t: float) -> int:
    """The highest attempt of this uid the ledger or the pod watch had seen by time t."""
    lines = records.ledger.get(job.name, [])
    seen = [x.attempt for x in lines if x.t <= t and records.line_uid(x) == job.uid]
    seen += [p.attempt for p in records.pods_of(job.uid) if p.t <= t and p.attempt]
    return max(seen, default=0)


def boundaries(records: Records, job: JobRecord) -> list[Boundary]:
    """The restarts of this uid that reset a step, in time order."""
    found: list[Boundary] = []
    for fault in of_uid(records, job.uid):
        if fault.kind != "restart":
            continue
        step = restart_step(fault, job.steps)
        if step is None or not (step == "*" or step in job.steps):
            continue
        raised = _reset_attempt(records, job, fault)
        if raised is not None:
            before = raised - 1
        elif fault.attempt is not None:
            before = fault.attempt  # the attempt the restart stopped, as the harness saw it
        else:
            before = _running_at(records, job, fault.t)
        found.append(Boundary(fault, step, before))
    return found
