"""Run a job function attempt after attempt in memory, with interruptions where you want them.

    def my_job(job: continuable.Job) -> None:
        @job.step
        def work(step): ...

    run = continuable.testing.run(my_job, interrupt=interrupt_during_step("work", cursor=500))
    assert run.completed
    assert run.attempts[1].resumed == ["work"]
    assert run.items("work") == list(range(1000))     # every item exactly once

Nothing exits the process and no signal handler is installed, so it is safe inside pytest.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from continuable.backends import Settings
from continuable.backends.memory import MemoryBackend
from continuable.ending import StopReason
from continuable.jobs import Job
from continuable.steps import BaseStep


@dataclass
class Interruption:
    """Requests termination once, when its condition first holds."""

    step: str
    cursor: Any = None
    after_step: bool = False
    items: int | None = None
    fired: bool = False

    def __repr__(self) -> str:
        if self.after_step:
            return f"interrupt_after_step({self.step!r})"
        if self.items is not None:
            return f"interrupt_after_items({self.step!r}, {self.items})"
        return f"interrupt_during_step({self.step!r}, cursor={self.cursor!r})"


def interrupt_during_step(name: str, *, cursor: Any) -> Interruption:
    """Interrupt when step `name` saves `cursor` (an int cursor: reaches or passes it)."""
    return Interruption(step=name, cursor=cursor)


def interrupt_after_items(name: str, count: int) -> Interruption:
    """Interrupt a concurrent step (`Step.map`, `Step.amap`) once `count` of its items are done
    (over all attempts); the items then in flight finish or are cancelled as on a SIGTERM."""
    return Interruption(step=name, items=count)


def interrupt_after_step(name: str) -> Interruption:
    """Interrupt right after step `name` completes, before the next step starts."""
    return Interruption(step=name, after_step=True)


@dataclass
class Attempt:
    """What one attempt did."""

    number: int
    started: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    items: dict[str, list[Any]] = field(default_factory=dict)
    # The items of a concurrent step whose function this attempt started (done or not).
    started_items: dict[str, list[int]] = field(default_factory=dict)
    stop_reason: StopReason | None = None
    exit_code: int = 0
    error: BaseException | None = None

    @property
    def ran(self) -> list[str]:
        """Steps whose code ran in this attempt (started fresh or resumed)."""
        return [*self.started, *self.resumed]


@dataclass
class Run:
    """Every attempt of one run, and the backend they shared."""

    attempts: list[Attempt]
    backend: MemoryBackend

    @property
    def completed(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].stop_reason == "Completed"

    @property
    def checkpoint(self) -> dict[str, Any] | None:
        return self.backend.checkpoint

    def result(self, name: str) -> Any:
        return self.backend.results[name]

    def items(self, step: str) -> list[Any]:
        """Items of `step` processed over all attempts, in order (repeats included)."""
        return [item for attempt in self.attempts for item in attempt.items.get(step, [])]

    def times_ran(self, step: str) -> int:
        return sum(step in attempt.ran for attempt in self.attempts)

    def repeated(self, step: str) -> list[int]:
        """The items of a concurrent step started by more than one attempt: those an attempt
        cancelled in flight when it stopped."""
        starts = Counter(i for a in self.attempts for i in set(a.started_items.get(step, [])))
        return sorted(i for i, n in starts.items() if n > 1)

    def assert_each_item_once(self, step: str, count: int, *, repeated_at_most: int = 0) -> None:
        """Items 0..count-1 of a concurrent step were each done exactly once over all attempts;
        none was started again after an attempt finished it; and at most `repeated_at_most`
        items were started by more than one attempt (cancelled in flight, then run again)."""
        done = Counter(self.items(step))
        twice = sorted(i for i, n in done.items() if n > 1)
        missing = sorted(set(range(count)) - set(done))
        assert not twice, f"step {step!r}: items done more than once: {twice[:20]}"
        assert not missing, f"step {step!r}: items never done: {missing[:20]}"
        assert len(done) == count, f"step {step!r}: items outside 0..{count - 1} done"
        finished_in = {i: a.number for a in self.attempts for i in a.items.get(step, [])}
        redone = sorted(
            i
            for a in self.attempts
            for i in a.started_items.get(step, [])
            if finished_in.get(i, a.number) < a.number
        )
        assert not redone, f"step {step!r}: finished items started again: {redone[:20]}"
        repeats = self.repeated(step)
        assert len(repeats) <= repeated_at_most, (
            f"step {step!r}: {len(repeats)} items started again (at most {repeated_at_most} "
            f"allowed): {repeats[:20]}"
        )


class _Recorder:
    def __init__(self, attempt: Attempt, interruptions: Sequence[Interruption]) -> None:
        self.attempt = attempt
        self.interruptions = interruptions

    def on_step(self, job: Job, event: str, step: str) -> None:
        getattr(self.attempt, event).append(step)
        if event == "completed":
            for interruption in self._pending(step, after_step=True):
                interruption.fired = True
                job._request_termination(f"{interruption!r} (testing)")

    def on_cursor(self, job: Job, step: BaseStep) -> None:
        for interruption in self._pending(step.name, after_step=False):
            if interruption.items is None and _reached(step.cursor, interruption.cursor):
                interruption.fired = True
                job._request_termination(f"{interruption!r} (testing)")

    def on_item(self, job: Job, step: BaseStep, position: int) -> None:
        self.attempt.items.setdefault(step.name, []).append(position)
        for interruption in self._pending(step.name, after_step=False):
            if interruption.items is not None and (step._done or 0) >= interruption.items:
                interruption.fired = True
                job._request_termination(f"{interruption!r} (testing)")

    def on_item_start(self, job: Job, step: BaseStep, position: int) -> None:
        self.attempt.started_items.setdefault(step.name, []).append(position)

    def _pending(self, step: str, *, after_step: bool) -> list[Interruption]:
        return [
            i
            for i in self.interruptions
            if not i.fired and i.step == step and i.after_step == after_step
        ]


def _reached(cursor: Any, target: Any) -> bool:
    if type(cursor) is int and type(target) is int:
        return cursor >= target
    return bool(cursor == target)


async def _run_async(job: Job, job_fn: Callable[[Job], Awaitable[Any]]) -> None:
    async with job:
        await job_fn(job)


def run(
    job_fn: Callable[[Job], Any] | Callable[[Job], Awaitable[Any]],
    *,
    interrupt: Interruption | Sequence[Interruption] = (),
    backend: MemoryBackend | None = None,
    settings: Settings | None = None,
    max_attempts: int = 10,
) -> Run:
    """Run `job_fn` until it completes or fails (at most `max_attempts` attempts), each
    interruption firing once; pass `backend` from an earlier Run to go on from its state.
    An `async def job_fn` runs each attempt in `async with job` on a loop of its own."""
    interruptions = [interrupt] if isinstance(interrupt, Interruption) else list(interrupt)
    store = backend or MemoryBackend(settings)
    attempts: list[Attempt] = []
    for _ in range(max_attempts):
        record = Attempt(number=store.attempt + 1)
        job = Job(
            backend=store,
            exit_process=False,
            handle_signals=False,
            observer=_Recorder(record, interruptions),
        )
        if inspect.iscoroutinefunction(job_fn):
            asyncio.run(_run_async(job, job_fn))
        else:
            with job:
                job_fn(job)
        assert job.outcome is not None
        record.stop_reason = job.outcome.stop_reason
        record.exit_code = job.outcome.exit_code
        record.error = job.outcome.error
        attempts.append(record)
        if record.stop_reason not in ("Interrupted", "Isolated"):
            break
    return Run(attempts=attempts, backend=store)


__all__ = [
    "Attempt",
    "Interruption",
    "Run",
    "interrupt_after_items",
    "interrupt_after_step",
    "interrupt_during_step",
    "run",
]
