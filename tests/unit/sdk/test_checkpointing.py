"""Coalesced writes: at most one per interval from the writer thread, at once when it matters."""

from __future__ import annotations

import time
from typing import Any

import pytest

from continuable import FencedOut, Job, Step
from continuable.backends import Settings
from continuable.backends.memory import MemoryBackend
from continuable.checkpointing import Checkpointer
from continuable.errors import ContinuableError


class Recording(MemoryBackend):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.times: list[float] = []
        self.fail_with: ContinuableError | FencedOut | None = None

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.times.append(time.monotonic())
        super().save_checkpoint(checkpoint)


def test_flush_writes_only_changes() -> None:
    backend = Recording()
    state = {"steps": [], "n": 0}
    checkpointer = Checkpointer(
        backend,
        interval_seconds=60,
        build=lambda: dict(state),
        on_failure=lambda e: None,
        on_overdue=lambda: None,
    )
    checkpointer.flush()
    checkpointer.flush()
    state["n"] = 1
    checkpointer.flush()
    assert backend.checkpoint_writes == 2
    assert backend.checkpoint is not None
    assert "updatedAt" in backend.checkpoint


def test_writer_thread_writes_at_most_once_per_interval_while_the_cursor_moves() -> None:
    interval = 0.1
    backend = Recording(Settings(interval_seconds=interval))
    sets = 0

    def job_fn(job: Job) -> None:
        @job.step
        def loop(step: Step) -> None:
            nonlocal sets
            deadline = time.monotonic() + 0.65
            while time.monotonic() < deadline:
                step.set(sets)
                sets += 1

    with Job(backend=backend, exit_process=False, handle_signals=False) as job:
        job_fn(job)
    assert sets > 10_000
    gaps = [b - a for a, b in zip(backend.times, backend.times[1:], strict=False)]
    # Writes: the step's completion, the end of the attempt, and the timer's at most one per
    # interval (the first timer write may follow the step's start by a full interval).
    timer_writes = backend.checkpoint_writes - 2
    assert 3 <= timer_writes <= 0.65 / interval + 1
    assert min(gaps[:-2]) >= interval * 0.9


def test_termination_wakes_the_writer_even_if_the_job_never_calls_in() -> None:
    backend = Recording(Settings(interval_seconds=60))
    written: list[Any] = []

    def job_fn(job: Job) -> None:
        @job.step
        def stuck(step: Step) -> None:
            step.set(41)
            before = backend.checkpoint_writes
            job._request_termination("SIGTERM received")
            deadline = time.monotonic() + 5
            while backend.checkpoint_writes == before and time.monotonic() < deadline:
                time.sleep(0.01)
            assert backend.checkpoint is not None
            written.append(backend.checkpoint["steps"][0]["cursor"])
            step.checkpoint()

    with Job(backend=backend, exit_process=False, handle_signals=False) as job:
        job_fn(job)
    assert written == [41]
    assert job.outcome is not None
    assert job.outcome.exit_code == 75


def test_fenced_out_in_the_writer_stops_the_job_at_the_next_set() -> None:
    backend = Recording(Settings(interval_seconds=0.05))
    reached: list[int] = []

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            backend.fail_with = FencedOut("attempt 3 owns the job")
            deadline = time.monotonic() + 5
            i = 0
            while time.monotonic() < deadline:
                step.set(i)
                reached.append(i)
                i += 1
                time.sleep(0.001)

    with Job(backend=backend, exit_process=False, handle_signals=False) as job:
        job_fn(job)
    assert job.outcome is not None
    assert isinstance(job.outcome.error, FencedOut)
    assert job.outcome.exit_code == 75
    assert len(reached) < 1000, "the job went on after being fenced out"


def test_exit_codes_of_the_process() -> None:
    with pytest.raises(SystemExit) as exited, Job(backend=MemoryBackend()) as job:
        job.step("boom", lambda: 1 / 0)
    assert exited.value.code == 1


def test_the_final_checkpoint_is_the_last_write() -> None:
    """The stop reason must survive: the timer's writer may not write after it."""
    backend = Recording(Settings(interval_seconds=0.01))

    def job_fn(job: Job) -> None:
        job.step("first", lambda: None)
        job.step("second", lambda: None, isolated=True)

    for _ in range(20):
        backend.checkpoint = None
        with Job(backend=backend, exit_process=False, handle_signals=False) as job:
            job_fn(job)
        assert job.outcome is not None
        if job.outcome.stop_reason == "Completed":
            continue
        assert backend.checkpoint is not None
        assert backend.checkpoint["stopReason"] == "Isolated"
        time.sleep(0.05)
        assert backend.checkpoint["stopReason"] == "Isolated"


def test_an_outage_past_the_hold_back_does_not_make_the_writer_hammer_the_store() -> None:
    """Once the job is held back (no save for 3 intervals) the writer keeps retrying at its
    pace: being overdue must not wake it again at once (it did: a write every few ms)."""
    import threading

    from continuable.errors import BackendUnavailable

    interval = 0.05
    outage = 0.8
    backend = Recording(Settings(interval_seconds=interval))
    attempts: list[float] = []
    save = backend.save_checkpoint

    def counting(checkpoint: dict[str, Any]) -> None:
        attempts.append(time.monotonic())
        save(checkpoint)

    backend.save_checkpoint = counting  # type: ignore[method-assign]
    during: list[int] = []

    def outage_ends() -> None:
        during.append(len(attempts))
        backend.fail_with = None

    def job_fn(job: Job) -> None:
        @job.step
        def loop(step: Step) -> None:
            backend.fail_with = BackendUnavailable("the API server is down")
            attempts.clear()
            timer = threading.Timer(outage, outage_ends)
            timer.start()
            began, i = time.monotonic(), 0
            while time.monotonic() - began < outage + 0.2:
                step.set(i)  # blocks once overdue, until a save succeeds
                i += 1
            timer.join()

    with Job(backend=backend, exit_process=False, handle_signals=False) as job:
        job_fn(job)
    # Retried about once per interval; the hot loop made hundreds of attempts.
    assert during, "the outage never ended"
    assert during[0] <= outage / interval * 2 + 5, during
