"""The accounting judge: the operator's counters against the fault log."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.soak.judges import accounting as judge
from tests.soak.records import Fault, Records

from .conftest import fault, job, pod, records, sdk_status


def faults() -> list[Fault]:
    return [
        fault("pod-delete", 2.0, 1),
        fault("sigkill", 4.0, 2),
        fault("partition", 6.0, 3, node="n1"),
        fault("operator-kill", 7.0, None, job=None, reached=False),
        fault("evict", 8.0, 4, reached=False),  # the pod had ended: not an interruption
    ]


def counted_right() -> Records:
    return records(jobs=[job(interruptions=2, failures=1)], faults=faults())


def interruption_missed() -> Records:
    return records(jobs=[job(interruptions=1, failures=1)], faults=faults())


def crash_counted_as_interruption() -> Records:
    return records(jobs=[job(interruptions=3, failures=0)], faults=faults())


def restart_resets() -> Records:
    restart = fault("restart", 7.5, 3, detail="items")
    return records(jobs=[job(interruptions=0, failures=0)], faults=[*faults(), restart])


def after_restart_counts() -> Records:
    later = [fault("restart", 7.5, 3, detail="fetch"), fault("sigkill", 9.0, 4)]
    return records(jobs=[job(interruptions=0, failures=1)], faults=[*faults(), *later])


def two_faults_one_attempt() -> Records:
    # A graceful delete then a SIGKILL during the grace: one ending, either counter.
    both = [fault("pod-delete", 2.0, 1), fault("sigkill", 2.5, 1)]
    return records(jobs=[job(interruptions=1, failures=0)], faults=both)


def stopped_by_itself(reason: str, *, refused: bool = False) -> Records:
    # A suspend reached attempt 1 as its pod was stopping at an isolated step's boundary: the
    # pod's own accepted write says so, and the operator rightly counted nothing.
    said = [
        sdk_status(1.0, 1),
        sdk_status(2.1, 1, stop_reason=reason, code=409 if refused else 200),
    ]
    return records(
        jobs=[job(interruptions=0, failures=0)], faults=[fault("suspend", 2.0, 1)], audit=said
    )


def raced_launch(interruptions: int, *, launched_after: float = 2.0) -> Records:
    # A rollout found no live pod (attempt 1 had ended); attempt 2's pod appeared right after,
    # created from the template read before the rollout: the operator may stop it.
    rollout = fault("rollout", 10.0, None, reached=False)
    launched = pod(10.0 + launched_after, 2, "Pending", type="ADDED")
    return records(
        jobs=[job(interruptions=interruptions, failures=0)], faults=[rollout], pods=[launched]
    )


def deleted_uid_not_checked() -> Records:
    return records(jobs=[job(phase=None)], faults=faults())


def prometheus(interruptions: int, failures: int, *, operator_killed: bool) -> Records:
    exposition = (
        "# TYPE continuable_interruptions_total counter\n"
        f'continuable_interruptions_total{{reason="PodDeleted"}} {interruptions - 1}.0\n'
        'continuable_interruptions_total{reason="PodLost"} 1.0\n'
        f'continuable_failures_total{{reason="Error"}} {failures}.0\n'
    )
    kept = [f for f in faults() if operator_killed or f.kind != "operator-kill"]
    return records(jobs=[job(interruptions=2, failures=1)], faults=kept, metrics=exposition)


CASES: list[tuple[str, Callable[[], Records], str | None]] = [
    ("counted right", counted_right, None),
    ("an interruption missed", interruption_missed, "status.interruptions is 1"),
    ("a crash counted as interruption", crash_counted_as_interruption, "status.failures is 0"),
    ("a restart resets both", restart_resets, None),
    ("faults after the restart count", after_restart_counts, None),
    ("two faults on one attempt", two_faults_one_attempt, None),
    ("a deleted uid is not checked", deleted_uid_not_checked, None),
    ("a launch raced by a rollout, stopped", lambda: raced_launch(1), None),
    ("a launch raced by a rollout, kept", lambda: raced_launch(0), None),
    (
        "a launch long after the rollout",
        lambda: raced_launch(1, launched_after=60.0),
        "status.interruptions is 1",
    ),
    ("a pod that stopped by itself", lambda: stopped_by_itself("Isolated"), None),
    ("a pod that finished", lambda: stopped_by_itself("Completed"), None),
    (
        "a pod stopped by the fault",
        lambda: stopped_by_itself("Interrupted"),
        "status.interruptions is 0",
    ),
    (
        "a refused write says nothing",
        lambda: stopped_by_itself("Isolated", refused=True),
        "status.interruptions is 0",
    ),
    ("prometheus agrees", lambda: prometheus(2, 1, operator_killed=False), None),
    ("prometheus disagrees", lambda: prometheus(3, 1, operator_killed=False), "is 3"),
    ("prometheus after an operator kill", lambda: prometheus(1, 0, operator_killed=True), None),
    ("prometheus above the faults", lambda: prometheus(1, 5, operator_killed=True), "is 5"),
]


@pytest.mark.parametrize(("build", "violation"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_accounting(build: Callable[[], Records], violation: str | None) -> None:
    verdict = judge.judge(build())
    if violation is None:
        assert verdict.held, verdict.evidence
    else:
        assert not verdict.held
        assert any(violation in line for line in verdict.evidence), verdict.evidence


def test_a_miscount_names_the_faults() -> None:
    (line,) = judge.judge(interruption_missed()).evidence
    assert "pod-delete at 2.000 on attempt 1" in line
    assert "partition at 6.000 on attempt 3" in line
    assert "evict" not in line
