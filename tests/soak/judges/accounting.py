"""Judge 4, accounting: the operator's counters against the fault log (the truth).

Per job uid that still exists at the end, `status.interruptions` and `status.failures` must be
what the faults that reached its pods make them:
- Each attempt ended once, so faults are grouped by the attempt they reached. An attempt hit
  only by interruption kinds (the graceful ones, and a partition: its pod is Lost) adds one
  interruption; only by SIGKILL, one failure (exit 137). An attempt hit by both, or by a kind
  whose effect on the pod depends on how it died (an agent restart that reached it), adds one
  of them or nothing (it depends on which the operator saw first), so the expectation is a
  range. A restart the person asked for counts in neither, and resets both to 0 in the write
  that raises the attempt: only faults on the attempts after the last restart count.
- An attempt whose pod said, in its last accepted status write (the audit log), that it stopped
  by itself (an isolated step's boundary, the job done) was not ended by the graceful faults
  that hit it as it did (a suspend or a rollout the operator acted on after): they count
  nothing; a SIGKILL then counts at most one.
- A rollout or suspend that found no live pod may still stop the pod whose launch was under way
  (the operator read the job just before the change, and stops that pod once it sees it): the
  first attempt whose pod appears within LAUNCH_RACE_SECONDS after it may count one
  interruption more, or none.
- Faults that reached no pod (operator kill, failover, API server restart) count nothing.
- Prometheus (`continuable_interruptions_total`, `continuable_failures_total`, summed over
  reasons and over every job) must equal the faults' totals over every uid, restarts not
  subtracted (counters never go down). Faults on a uid deleted before the end count only
  toward the upper bound (the operator records no outcome for an attempt the deletion ends
  before it saw the pod end). Counters live in the operator's process: after an operator kill
  or a leader failover only the upper bound is checked.

Cannot detect: a miscount that the fault log shares (a fault the harness logged as reaching a
pod it never reached, or missed a pod it did reach: the harness's `reached_pod` is trusted);
which of two faults on one attempt the operator should have counted; miscounts on uids deleted
before the end (their status is gone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from tests.soak.records import Fault, JobRecord, Records

from .faults import boundaries, counted_as, of_uid
from .verdict import Verdict, short, verdict
from .writes import stopped_by_itself

NAME = "accounting"
RESTARTING_KINDS = frozenset({"operator-kill", "leader-failover"})
# Job faults that act on whatever pod the job has next, even one not created yet.
RACING_KINDS = frozenset({"rollout", "suspend"})
# How long after such a change an operator may still create a pod from the job it read before.
LAUNCH_RACE_SECONDS = 30.0


@dataclass
class Expected:
    interruptions: tuple[int, int] = (0, 0)
    failures: tuple[int, int] = (0, 0)
    faults: list[Fault] = field(default_factory=list)

    def add(self, kinds: set[str], *, certain: bool = True) -> None:
        lo_i, hi_i = self.interruptions
        lo_f, hi_f = self.failures
        if kinds == {"interruption"}:
            self.interruptions = (lo_i + int(certain), hi_i + 1)
        elif kinds == {"failure"}:
            self.failures = (lo_f + int(certain), hi_f + 1)
        else:
            self.interruptions, self.failures = (lo_i, hi_i + 1), (lo_f, hi_f + 1)


def _groups(faults: list[Fault]) -> list[list[Fault]]:
    """Faults grouped by the attempt they reached (one group per fault without an attempt)."""
    groups: dict[object, list[Fault]] = {}
    for index, fault in enumerate(faults):
        key = fault.attempt if fault.attempt is not None else ("fault", index)
        groups.setdefault(key, []).append(fault)
    return list(groups.values())


def counted_faults(records: Records, job: JobRecord, *, since_restart: bool) -> list[Fault]:
    faults = [f for f in of_uid(records, job.uid) if counted_as(f) != "none"]
    bounds = boundaries(records, job)
    if since_restart and bounds:
        last = bounds[-1]
        faults = [
            f
            for f in faults
            if (f.attempt > last.before if f.attempt is not None else f.t > last.fault.t)
        ]
    return faults


def raced_launches(records: Records, job: JobRecord) -> list[Fault]:
    """A rollout or suspend that found no live pod may still stop the pod whose launch was
    under way (the operator read the job just before the change): each becomes a fault on the
    first attempt whose pod appeared within LAUNCH_RACE_SECONDS after it."""
    added = sorted(
        (p.t, p.attempt) for p in records.pods_of(job.uid) if p.type == "ADDED" and p.attempt
    )
    raced: list[Fault] = []
    for fault in of_uid(records, job.uid):
        if fault.kind not in RACING_KINDS or fault.reached_pod:
            continue
        attempt = next((a for t, a in added if fault.t <= t <= fault.t + LAUNCH_RACE_SECONDS), None)
        if attempt is not None:
            raced.append(replace(fault, attempt=attempt, reached_pod=True))
    return raced


def expected(records: Records, job: JobRecord, *, since_restart: bool = True) -> Expected:
    result = Expected()
    faults = counted_faults(records, job, since_restart=since_restart)
    raced = raced_launches(records, job)
    for group in _groups(faults + raced):
        kinds = {counted_as(f) for f in group}
        attempt = group[0].attempt
        if attempt is not None and stopped_by_itself(records, job.uid, attempt):
            if not all(f.graceful for f in group):
                result.add(kinds, certain=False)
            continue
        certain = job.final is not None and any(f not in raced for f in group)
        result.add(kinds, certain=certain)
    result.faults = faults
    return result


def _range(bounds: tuple[int, int]) -> str:
    return str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}..{bounds[1]}"


def _evidence(job: JobRecord, want: Expected) -> str:
    faults = "; ".join(
        f"{f.kind} at {f.t:.3f} on attempt {f.attempt} ({f.pod})" for f in want.faults
    )
    attempts = "; ".join(
        f"{a.get('attempt')}: {a.get('outcome')} {a.get('reason')}"
        for a in job.status.get("attempts") or []
    )
    return f"faults: [{faults or 'none'}]; status.attempts: [{attempts}]"


def judge_status(records: Records, job: JobRecord) -> list[str]:
    want = expected(records, job)
    violations: list[str] = []
    for counter in ("interruptions", "failures"):
        bounds: tuple[int, int] = getattr(want, counter)
        got = job.status.get(counter)
        if not isinstance(got, int) or not bounds[0] <= got <= bounds[1]:
            violations.append(
                f"{job.name} (uid {short(job.uid)}): status.{counter} is {got}, the faults make "
                f"it {_range(bounds)}; {_evidence(job, want)}"
            )
    return violations


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition (comments and unreadable lines skipped)."""
    samples: list[Sample] = []
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if line.startswith("#") or match is None:
            continue
        labels = {k: v.replace('\\"', '"') for k, v in _LABEL.findall(match.group(3) or "")}
        try:
            samples.append(Sample(match.group(1), labels, float(match.group(4))))
        except ValueError:
            continue
    return samples


def _total(records: Records, metric: str) -> float | None:
    samples = [s.value for s in parse_metrics(records.metrics or "") if s.name == metric]
    return sum(samples) if samples else None


def judge_metrics(records: Records, figures: dict[str, float]) -> list[str]:
    total = Expected()
    for job in records.jobs:
        want = expected(records, job, since_restart=False)
        lo_i, hi_i = total.interruptions
        lo_f, hi_f = total.failures
        total.interruptions = (lo_i + want.interruptions[0], hi_i + want.interruptions[1])
        total.failures = (lo_f + want.failures[0], hi_f + want.failures[1])
    restarted = any(f.kind in RESTARTING_KINDS for f in records.faults)
    violations: list[str] = []
    for counter, bounds in (("interruptions", total.interruptions), ("failures", total.failures)):
        metric = f"continuable_{counter}_total"
        got = _total(records, metric)
        if got is None:
            continue
        figures[f"prometheus_{counter}"] = got
        low = 0 if restarted else bounds[0]
        if not low <= got <= bounds[1]:
            why = " (the operator restarted: upper bound only)" if restarted else ""
            violations.append(f"{metric} is {got:g}, the faults make it {low}..{bounds[1]}{why}")
    return violations


def judge(records: Records) -> Verdict:
    figures: dict[str, float] = {"checked_uids": 0, "interruptions": 0, "failures": 0}
    violations: list[str] = []
    for job in records.jobs:
        if job.final is None:
            continue
        figures["checked_uids"] += 1
        figures["interruptions"] += int(job.status.get("interruptions") or 0)
        figures["failures"] += int(job.status.get("failures") or 0)
        violations += judge_status(records, job)
    violations += judge_metrics(records, figures)
    return verdict(NAME, violations, figures)
