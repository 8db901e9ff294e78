"""The soak's plan is a pure function of its seed: same seed, same jobs and faults; the counts
add up; every kind appears once the plan is big enough; faults that throw work away come early
and at most once per job; a job's faults are spread out, not bunched."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from tests.soak.schedule import (
    ALL_KINDS,
    CLUSTER_KINDS,
    EARLY_FRACTION,
    JOB_KINDS,
    NODE_KINDS,
    RESETTING,
    Plan,
    draw_plan,
)

SMOKE = {"jobs": 3, "faults_per_job": 4, "window_seconds": 82.0, "work_seconds": 32.0}
FULL = {"jobs": 30, "faults_per_job": 20, "window_seconds": 825.0, "work_seconds": 505.0}


def _plan(seed: int = 1, **overrides: float) -> Plan:
    return draw_plan(seed=seed, **{**FULL, **overrides})  # type: ignore[arg-type]


def test_the_same_seed_draws_the_same_plan_and_another_seed_another() -> None:
    assert _plan(7).to_json() == _plan(7).to_json()
    assert _plan(7).to_json() != _plan(8).to_json()


@pytest.mark.parametrize("seed", range(20))
def test_the_smoke_plan_has_every_kind_exactly_once(seed: int) -> None:
    plan = draw_plan(seed=seed, **SMOKE)  # type: ignore[arg-type]
    assert Counter(f.kind for f in plan.faults) == Counter(ALL_KINDS)


@pytest.mark.parametrize("seed", range(5))
def test_the_full_plan_has_jobs_times_faults_and_every_kind(seed: int) -> None:
    plan = _plan(seed)
    assert len(plan.jobs) == 30
    assert len(plan.faults) == 30 * 20
    assert set(ALL_KINDS) <= {f.kind for f in plan.faults}
    # Node and cluster faults are a few, not a share of 600.
    assert sum(f.lane != "job" for f in plan.faults) < 40


def test_lanes_hold_their_kinds_and_job_faults_name_a_planned_job() -> None:
    plan = _plan(3)
    names = {j.name for j in plan.jobs}
    for fault in plan.faults:
        expected = (
            "job" if fault.kind in JOB_KINDS else "node" if fault.kind in NODE_KINDS else "cluster"
        )
        assert fault.lane == expected
        assert (fault.job in names) if fault.lane == "job" else fault.job is None
    assert {f.kind for f in plan.lane("cluster")} == set(CLUSTER_KINDS)


def test_faults_fall_inside_the_window_after_a_lead_in_and_in_time_order() -> None:
    plan = _plan(4)
    times = [f.at for f in plan.faults]
    assert times == sorted(times)
    assert all(0 < t <= FULL["window_seconds"] for t in times)
    assert min(times) >= FULL["window_seconds"] * 0.05


def test_job_faults_are_spread_over_the_window_per_job() -> None:
    plan = _plan(5)
    for job in plan.jobs:
        times = [f.at for f in plan.faults if f.job == job.name]
        assert len(times) in (19, 20)  # the node/cluster faults come out of the 600
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 5.0, f"{job.name}: faults bunched: {gaps}"


@pytest.mark.parametrize("seed", range(10))
def test_resetting_faults_come_early_and_at_most_once_per_job(seed: int) -> None:
    plan = _plan(seed)
    resetting = [f for f in plan.faults if f.kind in RESETTING]
    assert resetting, "the plan has restarts and re-creations"
    per_job = Counter(f.job for f in resetting)
    assert max(per_job.values()) == 1
    assert all(f.at <= FULL["window_seconds"] * EARLY_FRACTION for f in resetting)


def test_a_restart_names_one_of_its_jobs_steps_and_holds_are_set_where_needed() -> None:
    plan = _plan(6)
    steps = {j.name: j.steps for j in plan.jobs}
    for fault in plan.faults:
        if fault.kind == "restart":
            assert fault.job is not None
            assert fault.step in steps[fault.job]
        else:
            assert fault.step is None
        if fault.kind in ("suspend", "drain", "partition", "operator-kill", "leader-failover"):
            assert fault.hold > 0, fault
        if fault.kind in ("pod-delete", "sigkill", "evict", "interrupt", "rollout"):
            assert fault.hold == 0, fault


def test_jobs_have_the_work_asked_for_and_isolated_ones_split_their_items() -> None:
    plan = _plan(9)
    for job in plan.jobs:
        assert abs(job.items * job.item_seconds - FULL["work_seconds"]) < 1.0
        assert 1 <= job.interval_seconds <= 10
        loops = ["items_a", "items_b"] if job.isolated else ["items"]
        assert job.steps == ["fetch", *loops, "notify"]
    assert any(j.isolated for j in plan.jobs)
    assert not all(j.isolated for j in plan.jobs)


def test_a_plan_without_faults_is_only_jobs_and_bad_sizes_are_refused() -> None:
    plan = draw_plan(seed=1, jobs=2, faults_per_job=0, window_seconds=60, work_seconds=30)
    assert plan.faults == []
    assert len(plan.jobs) == 2
    with pytest.raises(ValueError, match="jobs >= 1"):
        draw_plan(seed=1, jobs=0, faults_per_job=1, window_seconds=60, work_seconds=30)
