"""One job uid's ledger read as work: which step each line belongs to, which pass over that
step it is in, and which lines repeat an earlier one.

Steps: `fetch` and `notify` lines are those steps; item lines belong to the loop steps (the
job's steps other than fetch and notify), the items split evenly over them in order as
`ledger_job.py` does (`items_a` takes 0 .. K//2-1, `items_b` the rest).

Passes: a `restart` from step S runs S and every later step again, so their lines after the
restart are a new pass (see `faults.boundaries`); a repeat is only looked for within a pass.

Repeats: within a pass, every occurrence of an item (or of fetch, or of notify) after the
first repeats the one before it. The attempt *charged* with the repeat is the older of the
two: the one whose work was redone, because it ended without saving it (a SIGKILL), or it ran
on after its replacement started (a zombie on a partitioned node redoing what the new attempt
did first). Same attempt on both sides means the loop itself went back.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from tests.soak.records import Fault, JobRecord, LedgerLine, Records

from .faults import Boundary, boundaries, lossy, of_uid, resets

NAMED_STEPS = ("fetch", "notify")
# The loop's step when jobs.json lists none: the judge still splits nothing.
DEFAULT_LOOP = "items"


@dataclass(frozen=True)
class Repeat:
    job: str
    uid: str
    step: str
    what: str
    attempt: int
    previous: int
    t: float
    previous_t: float

    @property
    def charged(self) -> int:
        return min(self.attempt, self.previous)


class Run:
    """The ledger of one uid, with its restart boundaries."""

    def __init__(self, records: Records, job: JobRecord) -> None:
        self.job = job
        lines = records.ledger.get(job.name, [])
        self.lines = sorted(
            (x for x in lines if records.line_uid(x) == job.uid), key=lambda x: (x.t, x.index)
        )
        self.bounds: list[Boundary] = boundaries(records, job)
        loops = [s for s in job.steps if s not in NAMED_STEPS]
        self.loops = loops or [DEFAULT_LOOP]
        self.order = job.steps if loops else ("fetch", DEFAULT_LOOP, "notify")

    def step_of(self, line: LedgerLine) -> str:
        item = line.item
        if item is None:
            return line.what
        n, k = len(self.loops), max(self.job.items, 1)
        return self.loops[sum(1 for j in range(1, n) if item >= k * j // n)]

    def pass_of(self, line: LedgerLine, step: str | None = None) -> int:
        """The pass of `step` (default: the line's own) the line falls in."""
        step = step or self.step_of(line)
        return sum(
            1 for b in self.bounds if resets(b.step, step, self.order) and line.attempt > b.before
        )

    def last_pass(self, step: str) -> int:
        return sum(1 for b in self.bounds if resets(b.step, step, self.order))

    def attempts(self) -> list[int]:
        return sorted({x.attempt for x in self.lines})

    def items_of(self, attempt: int) -> list[LedgerLine]:
        return [x for x in self.lines if x.attempt == attempt and x.item is not None]

    def rate(self, attempt: int) -> float | None:
        """Items per second the attempt did (first to last item), None with fewer than two."""
        items = self.items_of(attempt)
        span = items[-1].t - items[0].t if len(items) >= 2 else 0.0
        return (len(items) - 1) / span if span > 0 else None

    def pooled_rate(self) -> float | None:
        """Items per second over all the uid's attempts, for an attempt too short to tell."""
        count, seconds = 0, 0.0
        for attempt in self.attempts():
            items = self.items_of(attempt)
            if len(items) >= 2:
                count += len(items) - 1
                seconds += items[-1].t - items[0].t
        return count / seconds if seconds > 0 else None

    def repeats(self) -> list[Repeat]:
        seen: dict[tuple[str, int, str], LedgerLine] = {}
        found: list[Repeat] = []
        for line in self.lines:
            step = self.step_of(line)
            key = (step, self.pass_of(line, step), line.what)
            before = seen.get(key)
            if before is not None:
                found.append(
                    Repeat(
                        job=self.job.name,
                        uid=self.job.uid,
                        step=step,
                        what=line.what,
                        attempt=line.attempt,
                        previous=before.attempt,
                        t=line.t,
                        previous_t=before.t,
                    )
                )
            seen[key] = line
        return found

    def reruns(self) -> list[tuple[LedgerLine, LedgerLine]]:
        """Lines of a step done by an attempt after an older attempt had moved on to a later
        step in the same pass (so the step's completion had been saved), each with such a
        later line: the first per step and pass."""
        found: list[tuple[LedgerLine, LedgerLine]] = []
        for step in self.order:
            rank = self.order.index(step)
            # The later steps' lines by pass of `step`, in time order, with the lowest attempt
            # seen so far: an older attempt had moved on by then.
            later: dict[int, list[tuple[float, LedgerLine]]] = {}
            for m in self.lines:
                other = self.step_of(m)
                if other in self.order and self.order.index(other) > rank:
                    timeline = later.setdefault(self.pass_of(m, step), [])
                    kept = timeline[-1][1] if timeline else m
                    timeline.append((m.t, kept if kept.attempt <= m.attempt else m))
            reported: set[int] = set()
            for line in self.lines:
                if self.step_of(line) != step:
                    continue
                where = self.pass_of(line, step)
                timeline = later.get(where, [])
                index = bisect.bisect_right(timeline, line.t, key=lambda e: e[0])
                if (
                    where not in reported
                    and index
                    and timeline[index - 1][1].attempt < line.attempt
                ):
                    found.append((line, timeline[index - 1][1]))
                    reported.add(where)
        return found

    def last_pass_lines(self, step: str) -> list[LedgerLine]:
        last = self.last_pass(step)
        return [x for x in self.lines if self.step_of(x) == step and self.pass_of(x, step) == last]

    def loop_done_at(self) -> float | None:
        """When every item had been done once in its step's last pass; None if some never was."""
        first: dict[int, float] = {}
        for step in self.loops:
            for line in self.last_pass_lines(step):
                if line.item is not None and line.item not in first:
                    first[line.item] = line.t
        if any(i not in first for i in range(self.job.items)):
            return None
        return max(first.values(), default=None)


def running_at(records: Records, run: Run, t: float) -> int | None:
    """The attempt of this uid running at time t, by the pod watch (else the ledger)."""
    pods = [p for p in records.pods_of(run.job.uid) if p.t <= t and p.attempt]
    if pods:
        return max(p.attempt for p in pods if p.attempt is not None)
    lines = [x.attempt for x in run.lines if x.t <= t]
    return max(lines) if lines else None


def faults_on(records: Records, run: Run, attempt: int) -> list[Fault]:
    """The faults that reached this attempt's pod: by their `attempt`, else by time."""
    found = []
    for fault in of_uid(records, run.job.uid):
        if not fault.reached_pod:
            continue
        hit = fault.attempt if fault.attempt is not None else running_at(records, run, fault.t)
        if hit == attempt:
            found.append(fault)
    return found


def lossy_on(records: Records, run: Run, attempt: int) -> list[Fault]:
    return [f for f in faults_on(records, run, attempt) if lossy(f)]


def ceil_items(rate: float, seconds: float) -> int:
    return math.ceil(rate * seconds - 1e-9)
