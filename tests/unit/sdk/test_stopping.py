"""How an attempt stops when the store fails: transient errors are retried, a fenced attempt
stops whatever the job's code catches, and a long outage holds the job back (back-pressure)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from continuable import FencedOut, Interrupted, Job, Step
from continuable.backends import Settings, Snapshot
from continuable.backends.memory import MemoryBackend
from continuable.checkpointing import HOLD_BACK_AFTER_INTERVALS
from continuable.errors import BackendUnavailable
from continuable.testing import Run, run


class Flaky(MemoryBackend):
    """A store that can be down (429), refuse this attempt as fenced out, or fail the next
    writes made from the job's own thread (not the writer thread's)."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.down = False
        self.fenced = False
        self.main_thread_failures = 0
        # Called as a write fails: what else happens during the outage.
        self.when_down: Callable[[], None] = lambda: None
        # When everything in memory was last known saved: the load, or the last write.
        self.durable_at = time.monotonic()

    def load(self) -> Snapshot:
        self.durable_at = time.monotonic()
        return super().load()

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._refuse()
        super().save_checkpoint(checkpoint)
        self.durable_at = time.monotonic()

    def save_result(self, step: str, encoded: str) -> None:
        self._refuse()
        super().save_result(step, encoded)

    def _refuse(self) -> None:
        if self.fenced:
            raise FencedOut("attempt 2 owns the job now")
        if self.main_thread_failures and threading.current_thread() is threading.main_thread():
            self.main_thread_failures -= 1
        elif not self.down:
            return
        self.when_down()
        raise BackendUnavailable("HTTP 429: too many requests")


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("continuable.retrying.FIRST_DELAY", 0.01)
    monkeypatch.setattr("continuable.retrying.MAX_DELAY", 0.05)


# A non-idempotent step's start.


def test_a_transient_error_as_a_non_idempotent_step_starts_is_retried() -> None:
    backend = Flaky(Settings(interval_seconds=3600))
    charged: list[int] = []

    def job_fn(job: Job) -> None:
        job.step("prepare", lambda: None)
        backend.main_thread_failures = 1
        job.step("charge", lambda: charged.append(job.attempt), idempotent=False)

    result = run(job_fn, backend=backend)
    assert result.completed, result.attempts[-1].error
    assert charged == [1]


def test_a_non_idempotent_step_whose_start_cannot_be_saved_did_not_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store fails while termination runs out of time: the attempt ends as interrupted and
    the next one runs the step, never stopping with StepNotReplayable."""
    monkeypatch.setattr("continuable.stopping.GIVE_UP_AFTER_TERMINATION_SECONDS", 0.0)
    backend = Flaky(Settings(interval_seconds=3600))
    charged: list[int] = []

    def job_fn(job: Job) -> None:
        job.step("prepare", lambda: None)
        if job.attempt == 1:
            # SIGTERM arrives as a short outage swallows the write of the step's start.
            backend.main_thread_failures = 1
            backend.when_down = lambda: job._request_termination("SIGTERM received")
        else:
            backend.when_down = lambda: None
        job.step("charge", lambda: charged.append(job.attempt), idempotent=False)

    result = run(job_fn, backend=backend)
    first, second = result.attempts
    assert (first.stop_reason, first.exit_code) == ("Interrupted", 75)
    assert first.ran == ["prepare"]
    assert second.started == ["charge"]
    assert result.completed
    assert charged == [2]


# FencedOut.


def test_fenced_out_is_not_swallowed_by_except_exception() -> None:
    backend = Flaky(Settings(interval_seconds=0.02))
    after_fencing: list[int] = []

    def job_fn(job: Job) -> None:
        @job.step
        def careless(step: Step) -> None:
            backend.fenced = True
            deadline = time.monotonic() + 3
            for i in itertools.count():
                if time.monotonic() > deadline:
                    return
                try:
                    step.set(i)
                except Exception:
                    after_fencing.append(i)
                time.sleep(0.001)

    attempt = run(job_fn, backend=backend, max_attempts=1).attempts[0]
    assert isinstance(attempt.error, FencedOut)
    assert attempt.exit_code == 75
    assert after_fencing == [], "the job's code caught FencedOut and went on"


def test_the_save_before_stopping_is_retried() -> None:
    backend = Flaky(Settings(interval_seconds=3600))

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            step.set(4)
            written = backend.checkpoint_writes
            job._request_termination("SIGTERM received")
            deadline = time.monotonic() + 5
            while backend.checkpoint_writes == written and time.monotonic() < deadline:
                time.sleep(0.001)  # the writer thread's own save, woken by the request
            backend.main_thread_failures = 1
            try:
                step.set(5)
            except Exception as err:
                pytest.fail(f"a retryable error reached the job's code: {err!r}")

    result = run(job_fn, backend=backend, max_attempts=1)
    attempt = result.attempts[0]
    assert (attempt.stop_reason, attempt.exit_code) == ("Interrupted", 75)
    assert result.checkpoint is not None
    assert result.checkpoint["steps"][0]["cursor"] == 5


# Back-pressure.


INTERVAL = 0.1
# How far past the allowed lead a set() may still return: the loop's own pace and scheduling.
SLACK = INTERVAL


def _run_through_an_outage(
    then: Callable[[Flaky, Job], None], *, outage: float
) -> tuple[Run, list[float]]:
    """Run a job whose one step sets its cursor in a loop while the store is down, and after
    `outage` seconds calls `then`; also returns how far each set() ran ahead of the last write,
    which must never be much more than the lead allowed."""
    backend = Flaky(Settings(interval_seconds=INTERVAL))
    lead: list[float] = []

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            backend.down = True
            threading.Timer(outage, then, args=(backend, job)).start()
            deadline = time.monotonic() + outage * 2
            for i in itertools.count():
                step.set(i)
                lead.append(time.monotonic() - backend.durable_at)
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)

    result = run(job_fn, backend=backend, max_attempts=1)
    assert max(lead) < HOLD_BACK_AFTER_INTERVALS * INTERVAL + SLACK, "set() ran too far ahead"
    return result, lead


def test_set_is_held_back_until_a_write_succeeds() -> None:
    def recover(backend: Flaky, job: Job) -> None:
        backend.down = False

    result, lead = _run_through_an_outage(recover, outage=1.0)
    assert result.completed, result.attempts[0].error
    assert lead[-1] < INTERVAL + SLACK, "the job went on once the store was back"


def test_termination_while_held_back_ends_the_attempt_as_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("continuable.stopping.GIVE_UP_AFTER_TERMINATION_SECONDS", 0.0)

    def sigterm(backend: Flaky, job: Job) -> None:
        job._request_termination("SIGTERM received")

    attempt = _run_through_an_outage(sigterm, outage=0.8)[0].attempts[0]
    assert (attempt.stop_reason, attempt.exit_code) == ("Interrupted", 75)


def test_fenced_out_while_held_back_stops_without_writing() -> None:
    def fence(backend: Flaky, job: Job) -> None:
        backend.fenced = True

    attempt = _run_through_an_outage(fence, outage=0.8)[0].attempts[0]
    assert isinstance(attempt.error, FencedOut)
    assert attempt.exit_code == 75


def test_interrupted_and_fenced_out_are_both_base_exceptions() -> None:
    for stop in (Interrupted, FencedOut):
        assert issubclass(stop, BaseException)
        assert not issubclass(stop, Exception)


def test_interrupt_from_another_thread_stops_the_attempt_with_its_cursor_saved() -> None:
    """A job on a thread of its own (no signal handlers) is stopped by `interrupt()`, as SIGTERM
    stops one in a pod: the cursor reached is saved with the stop reason Interrupted."""
    backend = MemoryBackend(Settings(interval_seconds=60))
    started, done = threading.Event(), []
    job = Job(backend=backend, exit_process=False, handle_signals=False)

    def work() -> None:
        with job:

            @job.step
            def loop(step: Step) -> None:
                for i in step.range(1_000_000):
                    done.append(i)
                    started.set()
                    time.sleep(0.001)

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(5)
    job.interrupt("the bench evicted the pod")
    thread.join(5)
    assert not thread.is_alive()
    assert job.outcome is not None
    assert job.outcome.stop_reason == "Interrupted"
    assert job.outcome.exit_code == 75
    assert backend.checkpoint is not None
    assert backend.checkpoint["stopReason"] == "Interrupted"
    saved = backend.checkpoint["steps"][0]["cursor"]
    assert saved == len(done)  # every item done is saved: the next attempt repeats none


def test_interrupt_before_the_attempt_starts_stops_it_at_its_first_step() -> None:
    backend = MemoryBackend()
    job = Job(backend=backend, exit_process=False, handle_signals=False)
    job.interrupt("evicted while starting")
    ran: list[str] = []
    with job:

        @job.step
        def first(step: Step) -> None:
            ran.append("first")

    assert ran == []
    assert job.outcome is not None
    assert job.outcome.exit_code == 75
