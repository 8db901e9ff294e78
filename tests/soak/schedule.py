"""The soak's plan, drawn from one seed: which jobs run, and which faults hit them when.

Pure: `draw_plan(seed=...)` touches no cluster and no clock, so a seed printed by a run
reproduces the same jobs and the same fault schedule (what the cluster then does with them is
not reproducible, as in any chaos run). The runner (`running.py`) turns the plan into actions.

Faults come in three lanes, each run in time order:
- job faults hit one job (its pod, its spec, or the job object itself); there are about
  `faults_per_job` of them per job, spread over the fault window with a minimum gap, so a job
  has relaunched before the next one hits it;
- node faults (drain, agent restart, partition) hit one node and every job pod on it; one at a
  time, so another node is always there for the replacements;
- cluster faults (operator kill, leader failover, API server restart) hit no pod; one at a time.
Node and cluster faults are few (their count follows the window's length, at least one of each
kind); the job faults make up the rest of `jobs x faults_per_job`. Kinds that throw a job's
progress away (a re-creation, a restart from a step) fall early in the window and at most once
per job, so every job can still finish within the run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

JOB_KINDS: Final = (
    "pod-delete",
    "sigkill",
    "evict",
    "preempt",
    "rollout",
    "suspend",
    "interrupt",
    "restart",
    "recreate",
    "foreground-delete",
)
NODE_KINDS: Final = ("drain", "agent-restart", "partition")
CLUSTER_KINDS: Final = ("operator-kill", "leader-failover", "apiserver-restart")
ALL_KINDS: Final = JOB_KINDS + NODE_KINDS + CLUSTER_KINDS
# Faults after which the job does work again that it had finished: a new job of the same name,
# or a restart from a step (all later steps run again).
RESETTING: Final = frozenset({"restart", "recreate", "foreground-delete"})
# A resetting fault falls in this first part of the window, so the work it throws away is small
# enough for the job to finish anyway.
EARLY_FRACTION: Final = 0.35
# One node or cluster fault of a kind per this many seconds of window (at least one each): a
# partition holds a node for about a minute, the others take 10-30 s.
SECONDS_PER_GLOBAL_FAULT: Final = {
    "partition": 300.0,
    "drain": 200.0,
    "agent-restart": 200.0,
    "operator-kill": 150.0,
    "leader-failover": 200.0,
    "apiserver-restart": 200.0,
}
# Nothing hits before the first pods have had the time to start.
LEAD_IN_FRACTION: Final = 0.08
# Seconds one item takes, and checkpoint intervals: spread so some jobs save after every item
# and others only every few dozen.
ITEM_SECONDS: Final = (0.2, 0.6)
INTERVAL_SECONDS: Final = (1, 10)
ISOLATED_SHARE: Final = 0.4


@dataclass(frozen=True)
class JobPlan:
    name: str
    items: int
    item_seconds: float
    interval_seconds: int
    isolated: bool

    @property
    def steps(self) -> list[str]:
        """In order; `items_b` (the second half of the items) is isolated when `isolated`."""
        loops = ["items_a", "items_b"] if self.isolated else ["items"]
        return ["fetch", *loops, "notify"]


@dataclass(frozen=True)
class Fault:
    """One planned fault: `at` seconds after the jobs were created."""

    at: float
    kind: str
    lane: str  # "job" | "node" | "cluster"
    job: str | None = None
    # restart: the step planned for --from-step (faults/jobs.py takes the last step the job
    # has reported before it when the job has not reached it yet, as the CLI requires).
    step: str | None = None
    # Seconds before the fault is undone: suspend -> resume, drain -> uncordon, partition ->
    # agent continued (counted from the force deletion), operator kill -> restart, API server
    # down time, agent down time, failover: the killed replica's time down.
    hold: float = 0.0


@dataclass(frozen=True)
class Plan:
    seed: int
    window_seconds: float
    work_seconds: float
    jobs: list[JobPlan] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def lane(self, lane: str) -> list[Fault]:
        return [f for f in self.faults if f.lane == lane]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "window_seconds": self.window_seconds,
            "work_seconds": self.work_seconds,
            "jobs": [{**asdict(j), "steps": j.steps} for j in self.jobs],
            "faults": [asdict(f) for f in self.faults],
        }


def draw_plan(
    *,
    seed: int,
    jobs: int,
    faults_per_job: int,
    window_seconds: float,
    work_seconds: float,
) -> Plan:
    """Jobs of about `work_seconds` of work each, and their faults within `window_seconds`.

    Every kind appears at least once when there are enough job faults for every job kind
    (`jobs * faults_per_job` minus the node and cluster faults >= len(JOB_KINDS)), and always
    when `jobs * faults_per_job >= len(ALL_KINDS)`.
    """
    if jobs < 1 or faults_per_job < 0 or window_seconds <= 0 or work_seconds <= 0:
        raise ValueError("jobs >= 1, faults_per_job >= 0, and positive seconds are needed")
    rng = random.Random(seed)
    job_plans = [_draw_job(rng, index, work_seconds, jobs) for index in range(jobs)]
    total = jobs * faults_per_job
    faults: list[Fault] = []
    if total > 0:
        global_faults = _draw_global(rng, window_seconds)
        job_count = max(total - len(global_faults), min(total, len(JOB_KINDS)))
        faults = global_faults + _draw_job_faults(rng, job_plans, job_count, window_seconds)
    faults.sort(key=lambda f: (f.at, f.lane, f.job or ""))
    return Plan(seed, window_seconds, work_seconds, job_plans, faults)


def _draw_job(rng: random.Random, index: int, work_seconds: float, jobs: int) -> JobPlan:
    item_seconds = round(rng.uniform(*ITEM_SECONDS), 3)
    # At least one isolated job whenever there are two or more.
    isolated = rng.random() < ISOLATED_SHARE or (jobs > 1 and index == 1)
    items = max(4, round(work_seconds / item_seconds))
    return JobPlan(
        name=f"soak-{index:02d}",
        items=items,
        item_seconds=item_seconds,
        interval_seconds=rng.randint(*INTERVAL_SECONDS),
        isolated=isolated,
    )


def _draw_global(rng: random.Random, window: float) -> list[Fault]:
    faults: list[Fault] = []
    for lane, kinds in (("node", NODE_KINDS), ("cluster", CLUSTER_KINDS)):
        order: list[str] = []
        for kind in kinds:
            order += [kind] * max(1, math.floor(window / SECONDS_PER_GLOBAL_FAULT[kind]))
        rng.shuffle(order)
        for at, kind in zip(_spread(rng, len(order), window, window * 0.1), order, strict=True):
            faults.append(Fault(at=at, kind=kind, lane=lane, hold=_hold(rng, kind)))
    return faults


def _draw_job_faults(
    rng: random.Random, jobs: Sequence[JobPlan], count: int, window: float
) -> list[Fault]:
    per_job = [count // len(jobs)] * len(jobs)
    for index in rng.sample(range(len(jobs)), count % len(jobs)):
        per_job[index] += 1
    # (job index, time) for every job fault.
    slots: list[tuple[int, float]] = []
    for index, n in enumerate(per_job):
        slots += [(index, at) for at in _spread(rng, n, window, min(10.0, window / (2 * n or 1)))]
    kinds: dict[int, str] = {}
    resets: set[int] = set()  # jobs that already have a resetting fault
    early = [s for s, (_, at) in enumerate(slots) if at <= window * EARLY_FRACTION]
    rng.shuffle(early)
    # The resetting kinds first, on early slots of distinct jobs when possible.
    for kind in sorted(RESETTING):
        if len(kinds) >= len(slots):
            break
        candidates = [s for s in early if s not in kinds]
        fresh = [s for s in candidates if slots[s][0] not in resets]
        pool = fresh or candidates or [s for s in range(len(slots)) if s not in kinds]
        slot = rng.choice(pool)
        kinds[slot] = kind
        resets.add(slots[slot][0])
    # Then every other job kind once, then the rest at random.
    others = [k for k in JOB_KINDS if k not in RESETTING]
    free = [s for s in range(len(slots)) if s not in kinds]
    rng.shuffle(free)
    for kind, slot in zip(others, free, strict=False):
        kinds[slot] = kind
    for slot in range(len(slots)):
        if slot in kinds:
            continue
        job = slots[slot][0]
        if slot in early and job not in resets and rng.random() < 0.5:
            kinds[slot] = rng.choice(sorted(RESETTING))
            resets.add(job)
        else:
            kinds[slot] = rng.choice(others)
    faults = []
    for slot, (index, at) in enumerate(slots):
        kind = kinds[slot]
        step = rng.choice(jobs[index].steps) if kind == "restart" else None
        faults.append(
            Fault(at, kind, "job", job=jobs[index].name, step=step, hold=_hold(rng, kind))
        )
    return faults


def _spread(rng: random.Random, n: int, window: float, gap: float) -> list[float]:
    """n times in (lead-in, window], one in each of n equal segments, at least `gap` apart."""
    if n <= 0:
        return []
    start = window * LEAD_IN_FRACTION
    width = (window - start) / n
    margin = min(gap / 2, width / 2)
    return [
        round(start + i * width + rng.uniform(margin, max(margin, width - margin)), 3)
        for i in range(n)
    ]


def _hold(rng: random.Random, kind: str) -> float:
    bounds = {
        "suspend": (2.0, 8.0),
        "drain": (5.0, 20.0),
        "partition": (5.0, 25.0),
        "operator-kill": (1.0, 12.0),
        "apiserver-restart": (0.0, 5.0),
        "agent-restart": (0.5, 3.0),
        "leader-failover": (2.0, 10.0),
    }.get(kind)
    return round(rng.uniform(*bounds), 2) if bounds else 0.0
