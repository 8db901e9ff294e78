"""The liveness judge: every job ends as its faults allow, in time, leaving nothing behind."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest

from tests.soak.judges import liveness as judge
from tests.soak.records import Records

from .conftest import Ledger, clean_ledger, fault, job, pod, records


def succeeded() -> Records:
    return records(ledger=clean_ledger())


def not_replayable_after_kill_in_notify() -> Records:
    ledger = Ledger()
    ledger.add(1, ["fetch", *range(10)])
    killed = ledger.wait(0.1)
    failed = job(phase="Failed", conditions=[_failed("StepNotReplayable")])
    return records(jobs=[failed], ledger=ledger, faults=[fault("sigkill", killed)])


def not_replayable_without_a_kill() -> Records:
    ledger = Ledger()
    ledger.add(1, ["fetch", *range(10)])
    failed = job(phase="Failed", conditions=[_failed("StepNotReplayable")])
    return records(jobs=[failed], ledger=ledger, faults=[fault("pod-delete", ledger.t)])


def not_replayable_kill_before_the_loop_ended() -> Records:
    ledger = Ledger()
    killed = ledger.add(1, ["fetch", *range(5)])
    ledger.add(2, [*range(3, 10)])
    failed = job(phase="Failed", conditions=[_failed("StepNotReplayable")])
    return records(jobs=[failed], ledger=ledger, faults=[fault("sigkill", killed + 0.05)])


def backoff_exceeded_without_crashes() -> Records:
    failed = job(phase="Failed", conditions=[_failed("BackoffLimitExceeded")])
    return records(jobs=[failed])


def still_running() -> Records:
    return records(jobs=[job(phase="Running")])


def deleted_at_the_end() -> Records:
    return records(jobs=[job(phase=None)])


def leftover_finalizer() -> Records:
    return records(pods=[pod(9.0, 1, "Succeeded", finalizers=("continuable.dev/tracking",))])


def deleted_jobs_pod_left() -> Records:
    jobs = [job(uid="old", phase=None), job(uid="new", created=10.0)]
    pods = [pod(5.0, 1, "Running", job_uid="old"), pod(200.0, 1, "Succeeded", job_uid="new")]
    return records(jobs=jobs, pods=pods, faults=[fault("recreate", 9.0, 1)])


def _failed(reason: str) -> dict[str, str]:
    return {"type": "Failed", "status": "True", "reason": reason}


CASES: list[tuple[str, Callable[[], Records], str | None]] = [
    ("succeeded", succeeded, None),
    ("StepNotReplayable after a kill in notify", not_replayable_after_kill_in_notify, None),
    ("StepNotReplayable, no kill", not_replayable_without_a_kill, "do not justify"),
    ("StepNotReplayable, kill mid-loop", not_replayable_kill_before_the_loop_ended, "justify"),
    ("BackoffLimitExceeded, no crash", backoff_exceeded_without_crashes, "do not justify"),
    ("still running at the end", still_running, "ended the run Running"),
    ("gone at the end", deleted_at_the_end, "no longer exists"),
    ("a leftover tracking finalizer", leftover_finalizer, "still has continuable.dev/tracking"),
    ("a deleted job's pod left", deleted_jobs_pod_left, "is still there at the end"),
]


@pytest.mark.parametrize(("build", "violation"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_liveness(build: Callable[[], Records], violation: str | None) -> None:
    verdict = judge.judge(build())
    if violation is None:
        assert verdict.held, verdict.evidence
    else:
        assert not verdict.held
        assert any(violation in line for line in verdict.evidence), verdict.evidence


def test_bound() -> None:
    # The job was created at 0 and completed at 100 (conftest's completionTime).
    assert judge.judge(succeeded(), bound_seconds=120).held
    verdict = judge.judge(succeeded(), bound_seconds=60)
    assert any("took 100 s, more than 60 s" in line for line in verdict.evidence)


def test_the_bound_grows_by_the_time_no_operator_could_act_while_the_job_lived() -> None:
    # Completed at 100 s: 100 > 60, but 30 s without a leader and 15 s without an API server
    # during its life make its bound 105 s; a failover after its end (at 150 s) adds nothing.
    stalls = [
        fault("operator-kill", 20.0, None, job=None, reached=False, detail="took=20.000"),
        fault("leader-failover", 50.0, None, job=None, reached=False, detail="took=10.000"),
        fault("apiserver-restart", 70.0, None, job=None, reached=False, detail="back_after=15.0"),
        fault("leader-failover", 150.0, None, job=None, reached=False, detail="took=90.000"),
    ]
    run = records(ledger=clean_ledger(), faults=stalls)
    assert judge.judge(run, bound_seconds=60).held
    verdict = judge.judge(run, bound_seconds=50)
    assert any("took 100 s, more than 95 s (50 s" in line for line in verdict.evidence)


def _log(t: float) -> str:
    stamp = datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S,%f")[:23]
    message = "reconciling soak/j failed: timed out; retry in 2s"
    return f"{stamp} WARNING continuable_operator.reconciling: {message}"


@pytest.mark.parametrize(
    ("first", "last", "held"),
    [(5, 5, True), (0, 10, True), (2, 16, True), (2, 17, False), (0, 40, False)],
)
def test_reconcile_errors_must_not_grow(first: int, last: int, held: bool) -> None:
    # A 3-minute run: a minute per third.
    start = time.time() - 1000
    logs = [_log(start + 1 + i) for i in range(first)] + [
        _log(start + 125 + i) for i in range(last)
    ]
    logs.append("a line without a time")
    run = records(jobs=[job(created=start)], pods=[pod(start + 180, 1, "Succeeded")])
    run.operator_log = logs
    verdict = judge.judge(run, settle_seconds=1e9)
    grows = [line for line in verdict.evidence if "reconcile errors grow" in line]
    assert (not grows) == held, verdict.evidence
