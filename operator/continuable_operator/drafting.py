"""The planner's working state: the job's operator-owned status as a plan changes it, the
job's own pods, and the actions and events gathered so far.

Every decision module takes a `Draft` and adds to it; `flush()` turns what changed into one
fenced status write, and events follow the write that makes them true.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from continuable.names import (
    ATTEMPT_LABEL,
    DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
    TRACKING_FINALIZER,
)

from . import conditions as c
from .actions import Action, Emit, PatchStatus, Plan, RemoveFinalizer
from .ownership import controlled_by
from .queueing import Queue

OPERATOR_FIELDS = (
    "observedGeneration",
    "phase",
    "attempt",
    "podName",
    "startTime",
    "completionTime",
    "interruptions",
    "failures",
    "resumptions",
    "attempts",
    "conditions",
    "savedSeconds",
    "lastRestart",
)
COUNTERS = ("attempt", "interruptions", "failures", "resumptions")
FINISHED = ("Succeeded", "Failed")


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_interval(spec: Mapping[str, Any]) -> float:
    """Seconds between the SDK's checkpoint writes for a job of this spec."""
    checkpoint = spec.get("checkpoint") or {}
    return float(checkpoint.get("intervalSeconds", DEFAULT_CHECKPOINT_INTERVAL_SECONDS))


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def attempt_of(pod: Mapping[str, Any]) -> int | None:
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(ATTEMPT_LABEL, "")
    return int(label) if str(label).isdigit() else None


def has_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def release(pod: Mapping[str, Any]) -> RemoveFinalizer:
    return RemoveFinalizer(str(pod["metadata"]["name"]), str(pod["metadata"]["uid"]))


class Draft:
    def __init__(
        self,
        job: Mapping[str, Any],
        pods: Sequence[Mapping[str, Any]],
        now: datetime,
        queue: Queue | None = None,
    ) -> None:
        """`queue`: the job's Kueue Workload and what it needs, for a job Kueue queues."""
        self.job = job
        self.queue = queue
        self.name = str(job["metadata"]["name"])
        self.uid = str(job["metadata"]["uid"])
        self.spec: Mapping[str, Any] = job["spec"]
        self.generation: int | None = job["metadata"].get("generation")
        status = job.get("status") or {}
        self.checkpoint: Mapping[str, Any] = status.get("checkpoint") or {}
        self.first_write = "attempt" not in status
        self.status: dict[str, Any] = {
            k: copy.deepcopy(status[k]) for k in OPERATOR_FIELDS if k in status
        }
        for counter in COUNTERS:
            self.status.setdefault(counter, 0)
        self.status.setdefault("attempts", [])
        self.status.setdefault("conditions", [])
        self.written = copy.deepcopy(self.status) if not self.first_write else {}
        self.written_attempt = int(self.status["attempt"])
        # A checkpoint reset rides along with the next status write (a restart).
        self.checkpoint_reset: dict[str, Any] | None = None
        self.now = now
        self.stamp = timestamp(now)
        # Pods labelled with the job's name but controlled by another object (a deleted job of
        # the same name, something else entirely) are never this job's attempts.
        self.pods = {attempt_of(p): p for p in pods if controlled_by(p, self.uid)}
        self.foreign = [p for p in pods if not controlled_by(p, self.uid)]
        self.result = Plan()
        self.events: list[Action] = []
        self._after_next_write: list[Action] = []
        # Written-after actions whose write is queued: they run at the end of the plan.
        self._at_end: list[Action] = []

    @property
    def attempt(self) -> int:
        return int(self.status["attempt"])

    @property
    def finished(self) -> bool:
        return self.status.get("phase") in FINISHED

    def record(self, attempt: int) -> dict[str, Any] | None:
        return next((r for r in self.status["attempts"] if r.get("attempt") == attempt), None)

    def is_open(self, attempt: int) -> bool:
        """Whether `attempt`'s outcome is still to be recorded."""
        record = self.record(attempt)
        return record is None or record.get("outcome") == "Running"

    def condition(self, kind: str, status: bool, reason: str, message: str) -> None:
        self.status["conditions"] = c.with_condition(
            self.status["conditions"],
            kind,
            status,
            reason,
            message,
            generation=self.generation,
            now=self.stamp,
        )

    def clear(self, kind: str, reason: str, message: str) -> None:
        """Set `kind` False, if it is True now."""
        if c.is_true(self.status["conditions"], kind):
            self.condition(kind, False, reason, message)

    def emit(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Emit(type_, c.reason_of(reason), message))

    def act(self, action: Action) -> None:
        self.result.actions.append(action)

    def after_write(self, action: Action) -> None:
        """An action that must follow the write of the status as the draft holds it now (a pod
        released only once its end is recorded). It waits for the next write, which may carry
        more (the next attempt's launch): one status write per relaunch, not two; and it runs
        at the end of the plan, so the next attempt's pod is not kept waiting for it."""
        if self._changed() or self.checkpoint_reset is not None:
            self._after_next_write.append(action)
        else:
            self.act(action)

    def released(self) -> set[str]:
        """The pods whose finalizer this plan removes, now or after its next write."""
        actions = [*self.result.actions, *self._after_next_write, *self._at_end]
        return {a.name for a in actions if isinstance(a, RemoveFinalizer)}

    def requeue(self, seconds: float) -> None:
        current = self.result.requeue_after
        self.result.requeue_after = seconds if current is None else min(current, seconds)

    def fail(self, reason: str, message: str) -> None:
        self.status["phase"] = "Failed"
        self.status["completionTime"] = self.stamp
        self.condition(c.FAILED, True, reason, message)
        self.condition(c.RUNNING, False, reason, "the job failed")
        self.emit("Warning", reason, message)

    def _changed(self) -> dict[str, Any]:
        """The status fields that differ from the last write."""
        keys = [*self.status, *(k for k in self.written if k not in self.status)]
        return {k: self.status.get(k) for k in keys if self.written.get(k) != self.status.get(k)}

    def flush(self) -> None:
        """Queue a status write of what changed since the last one."""
        if self.generation is not None:
            self.status["observedGeneration"] = self.generation
        changed = self._changed()
        if self.checkpoint_reset is not None:
            changed["checkpoint"] = self.checkpoint_reset.get("checkpoint")
            self.checkpoint_reset = None
        if changed:
            fence = None if self.first_write else self.written_attempt
            self.act(PatchStatus(copy.deepcopy(changed), fence))
            # Events describe the transition just written: posted only once it is.
            self.result.actions.extend(self.events)
            self.events.clear()
            self.written = copy.deepcopy(self.status)
            self.written_attempt = int(self.status["attempt"])
            self.first_write = False
        self._at_end.extend(self._after_next_write)
        self._after_next_write.clear()

    def done(self) -> Plan:
        self.flush()
        self.result.actions.extend(self._at_end)
        self._at_end.clear()
        self.result.actions.extend(self.events)
        self.events.clear()
        return self.result
