from __future__ import annotations

import threading
from typing import Any

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError

from continuable_operator.caching import WATCHED_KINDS, Store
from continuable_operator.cluster import ApiError, ClusterApi
from continuable_operator.reconciling import Reconciler
from continuable_operator.scheduling import Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def manual(clock: Clock) -> tuple[Scheduler[str], list[str]]:
    """A scheduler with no threads of its own, driven by `run_due()` on the fake clock."""
    ran: list[str] = []
    return Scheduler(ran.append, workers=0, clock=clock), ran


def test_due_entries_run_in_order_of_their_time(clock: Clock) -> None:
    scheduler, ran = manual(clock)
    scheduler.schedule("ttl", 30)
    scheduler.schedule("backoff", 10)
    scheduler.schedule("retry", 1)
    assert scheduler.run_due() == 0
    clock.now += 10
    assert scheduler.run_due() == 2
    assert ran == ["retry", "backoff"]
    clock.now += 20
    scheduler.run_due()
    assert ran == ["retry", "backoff", "ttl"]
    assert len(scheduler) == 0


def test_a_key_is_pending_once_and_the_earlier_time_wins(clock: Clock) -> None:
    scheduler, ran = manual(clock)
    scheduler.schedule("job", 30)
    scheduler.schedule("job", 5)  # earlier: replaces
    scheduler.schedule("job", 60)  # later: the 5 s one stands
    assert len(scheduler) == 1
    clock.now += 5
    scheduler.run_due()
    assert ran == ["job"]
    clock.now += 100
    scheduler.run_due()
    assert ran == ["job"], "a replaced entry must not run as well"


def test_cancel_drops_the_pending_entry(clock: Clock) -> None:
    scheduler, ran = manual(clock)
    scheduler.schedule("gone", 1)
    scheduler.schedule("kept", 2)
    scheduler.cancel("gone")
    scheduler.cancel("never-scheduled")
    assert "gone" not in scheduler
    assert "kept" in scheduler
    clock.now += 5
    scheduler.run_due()
    assert ran == ["kept"]


def test_rescheduling_a_key_many_times_keeps_memory_bounded(clock: Clock) -> None:
    scheduler, _ = manual(clock)
    for i in range(10_000):
        scheduler.schedule("job", 10_000 - i)  # each one earlier: a replacement every time
        scheduler.schedule(f"other-{i % 10}", 1)
        scheduler.cancel(f"other-{i % 10}")
    assert len(scheduler) == 1
    assert len(scheduler._heap) < 200  # cancelled and replaced entries are compacted away


def test_a_failing_run_does_not_stop_the_others(clock: Clock) -> None:
    ran: list[str] = []

    def run(key: str) -> None:
        ran.append(key)
        if key == "bad":
            raise RuntimeError("boom")

    scheduler = Scheduler(run, workers=0, clock=clock)
    scheduler.schedule("bad", 0)
    scheduler.schedule("good", 0)
    scheduler.run_due()
    assert ran == ["bad", "good"]


def test_stalled_measures_how_long_due_work_has_not_been_started(clock: Clock) -> None:
    scheduler, _ = manual(clock)
    assert scheduler.stalled() == 0
    scheduler.schedule("later", 100)
    assert scheduler.stalled() == 0, "nothing is due yet"
    scheduler.schedule("a", 1)
    scheduler.schedule("b", 2)
    clock.now += 31
    assert scheduler.stalled() == 30
    # A backlog that drains is progress: it is measured from the last start, not the due time.
    scheduler.run_due(limit=1)
    clock.now += 5
    assert scheduler.stalled() == 5
    scheduler.run_due()
    assert scheduler.stalled() == 0


def test_a_thousand_pending_keys_use_one_thread() -> None:
    ran: list[int] = []
    done = threading.Event()

    def run(key: int) -> None:
        ran.append(key)
        if len(ran) == 1000:
            done.set()

    scheduler: Scheduler[int] = Scheduler(run, workers=4, name="test-requeue")
    try:
        for key in range(1000):
            scheduler.schedule(key, 3600)
        threads = [t for t in threading.enumerate() if t.name.startswith("test-requeue")]
        assert len(threads) == 1
        for key in range(1000):
            scheduler.schedule(key, 0)  # all due now: they all run, on at most 4 threads
        assert done.wait(10), f"only {len(ran)} of 1000 ran"
        threads = [t for t in threading.enumerate() if t.name.startswith("test-requeue")]
        assert 1 <= len(threads) <= 4
        assert sorted(ran) == list(range(1000))
    finally:
        scheduler.stop()


def test_nothing_runs_after_stop(clock: Clock) -> None:
    scheduler, ran = manual(clock)
    scheduler.schedule("job", 1)
    scheduler.stop()
    scheduler.schedule("late", 0)
    clock.now += 5
    assert scheduler.run_due() == 0
    assert ran == []


# The reconciler's use of it: every reconcile ends with the next one decided.


def _reconciler(api: Any, clock: Clock) -> Reconciler:
    store = Store()
    for kind in WATCHED_KINDS:
        store.replace(kind, [], None)
    return Reconciler(api, store, requeue_workers=0, monotonic=clock)


def _refusing_api() -> ClusterApi:
    refused = MaxRetryError(None, "/apis", NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]
    custom = type("Refusing", (), {"get_namespaced_custom_object": _raiser(refused)})()
    return ClusterApi(custom=custom, core=object(), rbac=object())


def _raiser(error: Exception) -> Any:
    def call(*_: Any, **__: Any) -> Any:
        raise error

    return call


def _runs_after(scheduler: Scheduler[Any], clock: Clock, seconds: float) -> bool:
    """Whether the pending requeue comes due `seconds` from now (not a moment sooner)."""
    clock.now += seconds - 0.01
    if scheduler.run_due():
        return False
    clock.now += 0.01
    return scheduler.run_due() == 1


def test_no_answer_from_the_api_server_is_retried(clock: Clock) -> None:
    reconciler = _reconciler(_refusing_api(), clock)
    reconciler.reconcile("batch", "report")  # must not raise
    assert ("batch", "report") in reconciler.scheduler
    assert _runs_after(reconciler.scheduler, clock, 1.0)


def test_repeated_errors_back_off_to_a_minute_and_a_success_resets(clock: Clock) -> None:
    reconciler = _reconciler(object(), clock)
    outcomes: list[Any] = [ApiError(0, "NoAnswer", "refused")] * 8 + [(None, False), KeyError("x")]

    def scripted(namespace: str, name: str, began: float, slot: Any) -> tuple[float | None, bool]:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    reconciler._reconcile = scripted  # type: ignore[method-assign]
    reconciler.reconcile("batch", "report")
    for delay in (1, 2, 4, 8, 16, 32, 60):
        assert _runs_after(reconciler.scheduler, clock, delay), delay
    assert _runs_after(reconciler.scheduler, clock, 60)  # the success: nothing more to do
    assert ("batch", "report") not in reconciler.scheduler
    assert len(reconciler.scheduler) == 0
    reconciler.reconcile("batch", "report")  # a bug this time: retried, from 1 s again
    assert _runs_after(reconciler.scheduler, clock, 1)


def test_a_reconcile_replaces_the_pending_requeue(clock: Clock) -> None:
    reconciler = _reconciler(object(), clock)
    reconciler._reconcile = lambda *_: (30.0, False)  # type: ignore[method-assign]
    reconciler.schedule("batch", "report", 5)
    reconciler.reconcile("batch", "report")
    assert _runs_after(reconciler.scheduler, clock, 30)


def test_a_job_found_gone_leaves_nothing_behind(clock: Clock) -> None:
    class Gone:
        def get_job(self, namespace: str, name: str, *, cached: bool = False) -> None:
            return None

    reconciler = _reconciler(Gone(), clock)
    for i in range(100):
        reconciler.schedule("batch", f"job-{i}", 1)
    clock.now += 1
    assert reconciler.scheduler.run_due() == 100
    assert len(reconciler.scheduler) == 0
    assert reconciler._slots == {}


def test_finished_jobs_looked_at_after_a_start_never_delay_a_pods_reconcile(clock: Clock) -> None:
    """After a restart thousands of finished jobs are due at once; a pod that ends meanwhile is
    reconciled first (the restart of the bench found relaunches waiting 5 s behind them)."""
    reconciler = _reconciler(object(), clock)
    ran: list[str] = []
    reconciler._reconcile = lambda ns, name, *_: (ran.append(name), (None, False))[1]  # type: ignore[method-assign]
    for index in range(1000):
        reconciler.schedule("batch", f"done-{index}", 10, background=True)
    clock.now += 20
    reconciler.schedule("batch", "running", 0)  # its pod just ended
    assert reconciler.scheduler.run_due() == 1
    assert ran == ["running"]
    assert reconciler.background.run_due() == 1000
