"""What to do next for one ContinuableJob: a pure function of the job, its pods and the time.

`plan()` reads the job as the API server returns it and the pods labelled with its name, and
returns ordered actions for `reconciling.py` to carry out. The order is the safety argument:
  - an attempt's outcome is written to status before its pod's tracking finalizer is removed,
    so how a pod ended is never lost (invariant 7);
  - `status.attempt` is raised (fenced on its old value) before the next pod is created, and a
    pod is created only once the previous one is terminal or gone, so two pods of one job never
    run at once and a zombie's checkpoint writes are refused (invariant 3);
  - interruptions relaunch at once and count against maxResumptions only; failures count
    against backoffLimit and wait out an exponential backoff (invariant 5).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from continuable.names import (
    ATTEMPT_HISTORY_LENGTH,
    ATTEMPT_LABEL,
    RESTART_FROM_FIRST_STEP,
    RESTART_FROM_STEP_ANNOTATION,
    TEMPLATE_HASH_ANNOTATION,
    TRACKING_FINALIZER,
    pod_name,
)

from . import conditions as c
from .classifying import Ending, classify, is_terminal
from .launching import build_pod, build_results_config_map, template_hash
from .permissions import (
    build_role,
    build_role_binding,
    build_service_account,
    needs_own_service_account,
)

Object = dict[str, Any]

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
)
COUNTERS = ("attempt", "interruptions", "failures", "resumptions")
# A refused pod creation is retried after this long (the condition says why meanwhile).
POD_CREATE_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class PatchStatus:
    """Write these operator-owned status fields; fenced on `expected_attempt` (None: the very
    first status write, when there is nothing to fence on yet)."""

    fields: dict[str, Any]
    expected_attempt: int | None


@dataclass(frozen=True)
class EnsureObject:
    """Create the object, or bring an existing one to this content."""

    manifest: Object


@dataclass(frozen=True)
class CreatePod:
    manifest: Object


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    # Stamped on the pod as a DisruptionTarget condition before the delete, so every
    # termination the operator causes has a recorded reason (invariant 8).
    disruption: tuple[str, str] | None = None


@dataclass(frozen=True)
class RemoveFinalizer:
    name: str
    uid: str


@dataclass(frozen=True)
class DeleteJob:
    """ttlSecondsAfterFinished has passed: the job goes, and with it all it owns."""

    name: str
    uid: str


@dataclass(frozen=True)
class ResetCheckpoint:
    """Replace status.checkpoint (None: remove it), drop these steps' results, and clear the
    restart request; fenced on the attempt like every checkpoint write."""

    checkpoint: dict[str, Any] | None
    dropped_steps: tuple[str, ...]
    expected_attempt: int


@dataclass(frozen=True)
class Emit:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = (
    PatchStatus
    | EnsureObject
    | CreatePod
    | DeletePod
    | RemoveFinalizer
    | DeleteJob
    | ResetCheckpoint
    | Emit
)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def attempt_of(pod: Mapping[str, Any]) -> int | None:
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(ATTEMPT_LABEL, "")
    return int(label) if str(label).isdigit() else None


def has_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def _uid(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["uid"])


def backoff_delay(failures: int, backoff: Mapping[str, Any]) -> float:
    """Delay before relaunching after the `failures`-th counted failure."""
    initial = float(backoff.get("initialSeconds", 10))
    factor = float(backoff.get("factor", 2.0))
    ceiling = float(backoff.get("maxSeconds", 360))
    return float(min(initial * factor ** max(failures - 1, 0), ceiling))


def plan_orphans(pods: Sequence[Mapping[str, Any]]) -> Plan:
    """The job is gone: release its pods so garbage collection can finish them."""
    return Plan([RemoveFinalizer(p["metadata"]["name"], _uid(p)) for p in pods if has_finalizer(p)])


def plan(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: datetime) -> Plan:
    return _Planner(job, pods, now).run()


def plan_create_failure(job: Mapping[str, Any], status: int, message: str, now: datetime) -> Plan:
    """The API server refused the attempt's pod: say why in a condition, and either retry later
    or, for a template it calls invalid (which only a spec change can fix), fail the job."""
    planner = _Planner(job, [], now)
    if "exceeded quota" in message:
        reason = "ExceededQuota"
    else:
        reason = {403: "Forbidden", 422: "Invalid", 400: "BadRequest"}.get(status, "Refused")
    planner._condition(c.POD_CREATE_FAILED, True, reason, message)
    if status == 422:
        planner._fail(c.INVALID_POD_TEMPLATE, f"the API server refused the pod: {message}")
    else:
        planner._emit("Warning", c.POD_CREATE_FAILED, f"creating the pod failed: {message}")
        planner.result.requeue_after = POD_CREATE_RETRY_SECONDS
    return planner._done()


class _Planner:
    def __init__(
        self, job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: datetime
    ) -> None:
        self.job = job
        self.spec: Mapping[str, Any] = job["spec"]
        self.generation: int | None = job["metadata"].get("generation")
        status = job.get("status") or {}
        self.checkpoint: Mapping[str, Any] = status.get("checkpoint") or {}
        self.first_write = "attempt" not in status
        self.draft: dict[str, Any] = {
            k: copy.deepcopy(status[k]) for k in OPERATOR_FIELDS if k in status
        }
        for counter in COUNTERS:
            self.draft.setdefault(counter, 0)
        self.draft.setdefault("attempts", [])
        self.draft.setdefault("conditions", [])
        self.written = copy.deepcopy(self.draft) if not self.first_write else {}
        self.written_attempt = int(self.draft["attempt"])
        self.now = now
        self.stamp = timestamp(now)
        self.pods = {attempt_of(p): p for p in pods}
        self.result = Plan()
        annotations = job["metadata"].get("annotations") or {}
        self.restart_from: str | None = annotations.get(RESTART_FROM_STEP_ANNOTATION)
        self.events: list[Action] = []

    # Entry point.

    def run(self) -> Plan:
        if self.job["metadata"].get("deletionTimestamp"):
            return self.result
        attempt = int(self.draft["attempt"])
        self._tidy_older_pods(attempt)
        pod = self.pods.get(attempt)
        finished = self.draft.get("phase") in ("Succeeded", "Failed")
        if finished and not (self.restart_from is not None and self._no_live_pod(pod)):
            self._settle_finished(attempt)
            self._flush()
            self._expire_when_due()
            return self._done()
        if not finished and self._past_deadline():
            self._fail(c.DEADLINE_EXCEEDED, self._deadline_message())
            self._settle_finished(attempt, (c.DEADLINE_EXCEEDED, self._deadline_message()))
            return self._done()
        if pod is not None and not is_terminal(pod):
            self._stop_if_asked(pod)
            self._observe_live(pod)
            self._requeue_at_deadline()
            return self._done()
        record = self._record(attempt)
        if pod is not None and (record is None or record.get("outcome") == "Running"):
            self._record_ending(attempt, pod)
        if pod is not None:
            self._flush()
            if has_finalizer(pod):
                self._act(RemoveFinalizer(pod["metadata"]["name"], _uid(pod)))
        if self.restart_from is not None:
            self._restart()
            return self._suspend() if self.spec.get("suspend") else self._launch()
        if attempt > 0 and pod is None and (record is None or record.get("outcome") == "Running"):
            if self.spec.get("suspend"):
                return self._suspend()
            return self._create_current_pod(attempt)
        if self.draft.get("phase") in ("Succeeded", "Failed"):
            return self._done()
        if self.spec.get("suspend"):
            return self._suspend()
        return self._after_ending(attempt)

    # Lifecycle asked for in the spec: suspend, rollout, restart, deadline, TTL.

    @staticmethod
    def _no_live_pod(pod: Mapping[str, Any] | None) -> bool:
        return pod is None or is_terminal(pod)

    def _stop_if_asked(self, pod: Mapping[str, Any]) -> None:
        """Stop a running pod gracefully when the spec asks for it; the stamp says why."""
        if pod["metadata"].get("deletionTimestamp"):
            return
        name = pod["metadata"]["name"]
        why: tuple[str, str] | None = None
        if self.spec.get("suspend"):
            why = (c.SUSPENDED_BY_USER, "the job was suspended (spec.suspend)")
        elif self.restart_from is not None:
            why = (c.RESTART_REQUESTED, f"a restart from step {self.restart_from} was requested")
        elif self._template_changed(pod):
            why = (c.TEMPLATE_CHANGED, "the pod template changed; resuming on the new one")
        if why is not None:
            self._act(DeletePod(name, _uid(pod), why))
            self._emit("Normal", why[0], f"stopping pod {name}: {why[1]}")

    def _template_changed(self, pod: Mapping[str, Any]) -> bool:
        if self.spec.get("restartPolicyOnTemplateChange", "Resume") != "Resume":
            return False
        annotations = pod["metadata"].get("annotations") or {}
        running = annotations.get(TEMPLATE_HASH_ANNOTATION)
        return running is not None and running != template_hash(self.spec["template"])

    def _suspend(self) -> Plan:
        self.draft["phase"] = "Suspended"
        if not c.is_true(self.draft["conditions"], c.SUSPENDED):
            self._condition(c.SUSPENDED, True, c.SUSPENDED_BY_USER, "spec.suspend is true")
            self._condition(c.RUNNING, False, c.SUSPENDED_BY_USER, "the job is suspended")
            self._emit("Normal", c.SUSPENDED_BY_USER, "the job is suspended")
        return self._done()

    def _past_deadline(self) -> bool:
        remaining = self._deadline_remaining()
        return remaining is not None and remaining <= 0

    def _deadline_remaining(self) -> float | None:
        deadline = self.spec.get("activeDeadlineSeconds")
        started = parse_time(self.draft.get("startTime"))
        if deadline is None or started is None:
            return None
        return (started + timedelta(seconds=int(deadline)) - self.now).total_seconds()

    def _deadline_message(self) -> str:
        deadline = self.spec.get("activeDeadlineSeconds")
        return f"the job ran longer than activeDeadlineSeconds ({deadline} s)"

    def _requeue_at_deadline(self) -> None:
        remaining = self._deadline_remaining()
        if remaining is not None:
            self._requeue(remaining)

    def _requeue(self, seconds: float) -> None:
        current = self.result.requeue_after
        self.result.requeue_after = seconds if current is None else min(current, seconds)

    def _expire_when_due(self) -> None:
        ttl = self.spec.get("ttlSecondsAfterFinished")
        finished = parse_time(self.draft.get("completionTime"))
        if ttl is None or finished is None:
            return
        if any(not is_terminal(p) for p in self.pods.values()):
            return
        remaining = (finished + timedelta(seconds=int(ttl)) - self.now).total_seconds()
        if remaining > 0:
            self._requeue(remaining)
            return
        metadata = self.job["metadata"]
        self._act(DeleteJob(metadata["name"], str(metadata["uid"])))

    def _restart(self) -> None:
        """A person asked to run the job again from a step: reset the checkpoint from that step
        on (the operator's one write to it), drop those steps' results, and go on."""
        steps = self.checkpoint.get("steps") or []
        names = [s.get("name") for s in steps]
        start = self.restart_from
        keep = 0 if start == RESTART_FROM_FIRST_STEP or start not in names else names.index(start)
        dropped = [n for n in names[keep:] if n]
        kept = steps[:keep]
        checkpoint = {"steps": kept, "attempt": self.checkpoint.get("attempt")} if kept else None
        self._flush()
        self._act(ResetCheckpoint(checkpoint, tuple(dropped), int(self.draft["attempt"])))
        self.checkpoint = checkpoint or {}
        if self.draft.get("phase") in ("Succeeded", "Failed"):
            self.draft["completionTime"] = None
            for kind in (c.COMPLETE, c.FAILED):
                if c.is_true(self.draft["conditions"], kind):
                    self._condition(kind, False, c.RESTART_REQUESTED, "restarted")
        self.draft["failures"] = 0
        self.draft["phase"] = "Pending"
        where = "the first step" if keep == 0 else f"step {start}"
        self._emit(
            "Normal",
            c.RESTART_REQUESTED,
            f"restarting from {where}; dropped: {', '.join(dropped) or 'nothing'}",
        )

    # Pods.

    def _tidy_older_pods(self, attempt: int) -> None:
        for number, pod in self.pods.items():
            if number == attempt:
                continue
            if is_terminal(pod):
                if has_finalizer(pod):
                    self._act(RemoveFinalizer(pod["metadata"]["name"], _uid(pod)))
            elif not pod["metadata"].get("deletionTimestamp"):
                self._act(
                    DeletePod(
                        pod["metadata"]["name"],
                        _uid(pod),
                        ("Superseded", f"attempt {attempt} has replaced attempt {number}"),
                    )
                )

    def _settle_finished(
        self, attempt: int, why: tuple[str, str] = ("JobFinished", "the job has finished")
    ) -> None:
        """The job is over: stop its pod if one still runs, record how it ended, release it."""
        pod = self.pods.get(attempt)
        if pod is None:
            return
        if not is_terminal(pod):
            if not pod["metadata"].get("deletionTimestamp"):
                self._act(DeletePod(pod["metadata"]["name"], _uid(pod), why))
            return
        record = self._record(attempt)
        if record is not None and record.get("outcome") == "Running":
            ending = self._classify(attempt, pod)
            self._close_record(
                record, ending, "Failed" if ending.kind != "Succeeded" else "Succeeded"
            )
            self._flush()
        if has_finalizer(pod):
            self._act(RemoveFinalizer(pod["metadata"]["name"], _uid(pod)))

    def _observe_live(self, pod: Mapping[str, Any]) -> None:
        running = (pod.get("status") or {}).get("phase") == "Running"
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        if running and not deleting:
            if self.draft.get("phase") != "Running":
                node = (pod.get("spec") or {}).get("nodeName")
                self._emit("Normal", "Running", f"pod {pod['metadata']['name']} runs on {node}")
            self.draft["phase"] = "Running"
            self._condition(
                c.RUNNING, True, c.POD_RUNNING, f"pod {pod['metadata']['name']} is running"
            )
            for kind in (c.INTERRUPTED, c.SUSPENDED):
                if c.is_true(self.draft["conditions"], kind):
                    self._condition(kind, False, c.RESUMED, "a new attempt is running")
        elif not running:
            self.draft["phase"] = "Pending"
            self._condition(
                c.RUNNING, False, c.POD_PENDING, f"pod {pod['metadata']['name']} is pending"
            )
        if c.is_true(self.draft["conditions"], c.POD_CREATE_FAILED):
            self._condition(c.POD_CREATE_FAILED, False, c.POD_CREATED, "the pod was created")

    def _create_current_pod(self, attempt: int) -> Plan:
        """The attempt's pod does not exist yet (a crash after raising the attempt, or a refused
        creation): create it, same attempt; no other pod of the job can be running."""
        failed = c.find(self.draft["conditions"], c.POD_CREATE_FAILED)
        if failed is not None and failed.get("status") == "True":
            since = parse_time(failed.get("lastTransitionTime")) or self.now
            due = since + timedelta(seconds=POD_CREATE_RETRY_SECONDS)
            if self.now < due:
                self.result.requeue_after = (due - self.now).total_seconds()
                return self._done()
        self._flush()
        self._launch_objects(attempt)
        return self.result

    # Outcomes.

    def _record(self, attempt: int) -> dict[str, Any] | None:
        return next((r for r in self.draft["attempts"] if r.get("attempt") == attempt), None)

    def _classify(self, attempt: int, pod: Mapping[str, Any]) -> Ending:
        policy = (self.spec.get("podFailurePolicy") or {}).get("rules") or []
        return classify(pod, attempt=attempt, policy_rules=policy, checkpoint=self.checkpoint)

    def _close_record(self, record: dict[str, Any], ending: Ending, outcome: str) -> None:
        record.update(outcome=outcome, reason=ending.reason, message=ending.message[:4096])
        finished = parse_time(ending.finished_at)
        record["endTime"] = timestamp(finished) if finished else self.stamp
        if ending.exit_code is not None:
            record["exitCode"] = ending.exit_code

    def _record_ending(self, attempt: int, pod: Mapping[str, Any]) -> None:
        record = self._record(attempt)
        if record is None:
            record = {"attempt": attempt, "podName": pod["metadata"]["name"], "outcome": "Running"}
            self.draft["attempts"].append(record)
        ending = self._classify(attempt, pod)
        outcome = {
            "Succeeded": "Succeeded",
            "Interrupted": "Interrupted",
            "Ignored": "Interrupted",
            "Isolated": "Isolated",
        }.get(ending.kind, "Failed")
        self._close_record(record, ending, outcome)
        where = f"attempt {attempt} (pod {pod['metadata']['name']})"
        if ending.kind == "Succeeded":
            self.draft["phase"] = "Succeeded"
            self.draft["completionTime"] = self.stamp
            self._condition(c.COMPLETE, True, c.COMPLETED, f"{where} completed the job")
            self._condition(c.RUNNING, False, c.COMPLETED, "the job completed")
            self._emit("Normal", c.COMPLETED, f"{where} completed the job")
        elif ending.kind in ("Interrupted", "Ignored"):
            # A restart a person asked for is not an interruption of the job's budget.
            counted = ending.kind == "Interrupted" and ending.reason != c.RESTART_REQUESTED
            self.draft["interruptions"] += int(counted)
            limit = self.spec.get("maxResumptions")
            if limit is not None and self.draft["interruptions"] > limit:
                self._fail(
                    c.RESUME_LIMIT_EXCEEDED,
                    f"interrupted {self.draft['interruptions']} times, more than maxResumptions "
                    f"({limit}); last: {ending.reason}: {ending.message}",
                )
                return
            self.draft["phase"] = "Interrupted"
            self._condition(c.INTERRUPTED, True, ending.reason, f"{where}: {ending.message}")
            self._condition(c.RUNNING, False, ending.reason, f"{where} was interrupted")
            self._emit(
                "Normal", "Interrupted", f"{where} interrupted: {ending.reason}: {ending.message}"
            )
        elif ending.kind == "Isolated":
            self.draft["phase"] = "Pending"
            self._condition(c.RUNNING, False, c.ISOLATED, f"{where}: {ending.message}")
            self._emit("Normal", c.ISOLATED, f"{where} stopped so an isolated step starts afresh")
        elif ending.kind == "FailJob":
            self._fail(c.POD_FAILURE_POLICY, f"{where}: {ending.message}")
        elif ending.kind == "NotReplayable":
            self._fail(
                c.STEP_NOT_REPLAYABLE,
                f"{where}: {ending.message} Decide, then `continuable restart --from-step`.",
            )
        else:
            self.draft["failures"] += 1
            limit = int(self.spec.get("backoffLimit", 6))
            if self.draft["failures"] > limit:
                self._fail(
                    c.BACKOFF_LIMIT_EXCEEDED,
                    f"failed {self.draft['failures']} times, more than backoffLimit ({limit}); "
                    f"last: {ending.reason}: {ending.message}",
                )
                return
            self.draft["phase"] = "Pending"
            self._condition(c.RUNNING, False, ending.reason, f"{where} failed: {ending.message}")
            self._emit("Warning", ending.reason, f"{where} failed: {ending.message}")

    def _fail(self, reason: str, message: str) -> None:
        self.draft["phase"] = "Failed"
        self.draft["completionTime"] = self.stamp
        self._condition(c.FAILED, True, reason, message)
        self._condition(c.RUNNING, False, reason, "the job failed")
        self._emit("Warning", reason, message)

    def _after_ending(self, attempt: int) -> Plan:
        if self.draft.get("phase") in ("Succeeded", "Failed"):
            return self._done()
        record = self._record(attempt) or {}
        if record.get("outcome") == "Failed":
            ended = parse_time(record.get("endTime")) or self.now
            delay = backoff_delay(int(self.draft["failures"]), self.spec.get("backoff") or {})
            due = ended + timedelta(seconds=delay)
            if self.now < due:
                self._condition(
                    c.RUNNING,
                    False,
                    c.WAITING_FOR_BACKOFF,
                    f"relaunching at {timestamp(due)} after failure {self.draft['failures']}",
                )
                self.result.requeue_after = (due - self.now).total_seconds()
                return self._done()
        return self._launch()

    # Launching.

    def _launch(self) -> Plan:
        attempt = int(self.draft["attempt"]) + 1
        name = pod_name(self.job["metadata"]["name"], attempt)
        saved = _checkpointed_seconds(self.checkpoint)
        if attempt > 1 and saved is not None:
            self.draft["resumptions"] += 1
            self.draft["savedSeconds"] = round(
                float(self.draft.get("savedSeconds") or 0) + saved, 3
            )
        self.draft.update(attempt=attempt, podName=name, phase="Pending")
        self.draft.setdefault("startTime", self.stamp)
        self.draft["attempts"] = [
            *self.draft["attempts"],
            {"attempt": attempt, "podName": name, "startTime": self.stamp, "outcome": "Running"},
        ][-ATTEMPT_HISTORY_LENGTH:]
        self._flush()
        self._launch_objects(attempt)
        resume = _resume_point(self.checkpoint)
        self._act(Emit("Normal", "Launched", f"attempt {attempt}: pod {name}{resume}"))
        return self.result

    def _launch_objects(self, attempt: int) -> None:
        if needs_own_service_account(self.job):
            self._act(EnsureObject(build_service_account(self.job)))
        self._act(EnsureObject(build_role(self.job, attempt)))
        self._act(EnsureObject(build_role_binding(self.job)))
        self._act(EnsureObject(build_results_config_map(self.job, attempt)))
        self._act(CreatePod(build_pod(self.job, attempt)))

    # Bookkeeping.

    def _condition(self, kind: str, status: bool, reason: str, message: str) -> None:
        self.draft["conditions"] = c.with_condition(
            self.draft["conditions"],
            kind,
            status,
            reason,
            message,
            generation=self.generation,
            now=self.stamp,
        )

    def _emit(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Emit(type_, reason, message))

    def _act(self, action: Action) -> None:
        self.result.actions.append(action)

    def _flush(self) -> None:
        """Queue a status write of what changed since the last one."""
        if self.generation is not None:
            self.draft["observedGeneration"] = self.generation
        keys = [*self.draft, *(k for k in self.written if k not in self.draft)]
        changed = {k: self.draft.get(k) for k in keys if self.written.get(k) != self.draft.get(k)}
        if not changed:
            return
        fence = None if self.first_write else self.written_attempt
        self._act(PatchStatus(copy.deepcopy(changed), fence))
        # Events describe the transition just written: posted only once it is.
        self.result.actions.extend(self.events)
        self.events.clear()
        self.written = copy.deepcopy(self.draft)
        self.written_attempt = int(self.draft["attempt"])
        self.first_write = False

    def _done(self) -> Plan:
        self._flush()
        self.result.actions.extend(self.events)
        return self.result


def _checkpointed_seconds(checkpoint: Mapping[str, Any]) -> float | None:
    """Seconds of work a checkpoint lets the next attempt skip; None when it holds nothing."""
    steps = checkpoint.get("steps") or []
    saved = [s for s in steps if s.get("state") == "Completed" or s.get("cursor") is not None]
    if not saved:
        return None
    return float(sum(float(s.get("durationSeconds") or 0) for s in saved))


def _resume_point(checkpoint: Mapping[str, Any]) -> str:
    steps = checkpoint.get("steps") or []
    done = [s["name"] for s in steps if s.get("state") == "Completed"]
    current = next((s for s in steps if s.get("state") != "Completed"), None)
    parts = []
    if done:
        parts.append(f"skipping {', '.join(done)}")
    if current is not None:
        parts.append(f"resuming {current['name']} at cursor {current.get('cursor')!r}")
    return f" ({'; '.join(parts)})" if parts else ""
