"""Async jobs: `async with continuable.Job()`, async steps on the caller's loop, `amap`; and
nothing the SDK does for them runs on the loop's thread."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest

import continuable
from continuable.backends.memory import MemoryBackend
from continuable.errors import InvalidStepError, ItemFailed
from continuable.testing import interrupt_after_items, interrupt_during_step, run


def test_async_steps_run_in_order_and_a_resume_skips_the_completed_ones() -> None:
    calls: list[str] = []

    async def job_fn(job: continuable.Job) -> None:
        @job.step
        async def fetch(step: continuable.AsyncStep) -> list[int]:
            calls.append("fetch")
            return [1, 2, 3]

        ids = await fetch

        async def total(step: continuable.AsyncStep) -> int:
            calls.append("total")
            for i in step.range(len(ids)):
                await step.checkpoint()
                await asyncio.sleep(0)
                assert i < 3
            return sum(ids)

        assert await job.step(total) == 6

    result = run(job_fn, interrupt=interrupt_during_step("total", cursor=2))
    assert [a.stop_reason for a in result.attempts] == ["Interrupted", "Completed"]
    assert calls == ["fetch", "total", "total"]
    assert result.attempts[1].skipped == ["fetch"]
    assert result.result("total") == 6


def _amapping(count: int, fn: Any, **options: Any) -> tuple[Any, list[list[Any]]]:
    returned: list[list[Any]] = []

    async def job_fn(job: continuable.Job) -> None:
        @job.step
        async def work(step: continuable.AsyncStep) -> None:
            returned.append(await step.amap(fn, range(count), **options))

        await work

    return job_fn, returned


def test_amap_runs_every_item_once_and_returns_the_results_in_item_order() -> None:
    async def square(i: int) -> int:
        await asyncio.sleep(random.uniform(0, 0.002))
        return i * i

    job_fn, returned = _amapping(300, square, concurrency=32)
    result = run(job_fn)
    assert result.completed
    assert returned == [[i * i for i in range(300)]]
    result.assert_each_item_once("work", 300)


def test_amap_stopped_lets_the_items_in_flight_finish_so_none_repeats() -> None:
    async def uneven(i: int) -> int:
        await asyncio.sleep(0.003 if i % 3 else 0.0005)
        return i

    job_fn, _ = _amapping(400, uneven, concurrency=32)
    result = run(job_fn, interrupt=interrupt_after_items("work", 200))
    assert [a.stop_reason for a in result.attempts] == ["Interrupted", "Completed"]
    result.assert_each_item_once("work", 400, repeated_at_most=0)


def test_amap_cancels_what_outlasts_the_drain_and_only_that_repeats() -> None:
    concurrency = 16
    cancelled: list[int] = []
    first_attempt = {"on": True}

    async def slow_after_100(i: int) -> int:
        if i >= 100 and first_attempt["on"]:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
        return i

    mapped, _ = _amapping(200, slow_after_100, concurrency=concurrency, drain_seconds=0.05)

    async def job_fn(job: continuable.Job) -> None:
        first_attempt["on"] = job.attempt == 1
        await mapped(job)

    result = run(job_fn, interrupt=interrupt_after_items("work", 100))
    assert [a.stop_reason for a in result.attempts] == ["Interrupted", "Completed"]
    assert 0 < len(cancelled) <= concurrency
    result.assert_each_item_once("work", 200, repeated_at_most=concurrency)
    assert result.repeated("work") == sorted(cancelled)


def test_an_amap_item_error_fails_the_step_naming_the_item() -> None:
    async def bad_7(i: int) -> int:
        if i == 7:
            raise ValueError("no such document")
        return i

    job_fn, _ = _amapping(20, bad_7, concurrency=4)
    (attempt,) = run(job_fn).attempts
    assert attempt.stop_reason == "Failed"
    assert isinstance(attempt.error, ItemFailed)
    assert attempt.error.index == 7


def test_an_amap_retry_backs_off_on_the_named_error() -> None:
    class RateLimited(Exception):
        pass

    seen: dict[int, int] = {}

    async def limited(i: int) -> int:
        seen[i] = seen.get(i, 0) + 1
        if i == 3 and seen[i] < 3:
            raise RateLimited("429")
        return i

    retry = continuable.Retry(on=(RateLimited,), attempts=3, backoff_seconds=0.001)
    job_fn, returned = _amapping(10, limited, retry=retry)
    assert run(job_fn).completed
    assert returned == [list(range(10))]
    assert seen[3] == 3


def test_a_step_declared_but_never_awaited_fails_the_job_saying_so() -> None:
    async def job_fn(job: continuable.Job) -> None:
        @job.step
        async def forgotten(step: continuable.AsyncStep) -> None:
            return None

    (attempt,) = run(job_fn).attempts
    assert attempt.stop_reason == "Failed"
    assert isinstance(attempt.error, InvalidStepError)
    assert "step forgotten was declared but never awaited" in str(attempt.error)


def test_a_sync_step_in_an_async_job_and_the_reverse_are_refused() -> None:
    async def async_job(job: continuable.Job) -> None:
        job.step("blocking", lambda: 1)

    (attempt,) = run(async_job).attempts
    assert "an async job's steps are async def" in str(attempt.error)

    async def coroutine_step(step: continuable.AsyncStep) -> int:
        return 1

    def sync_job(job: continuable.Job) -> None:
        job.step("work", coroutine_step)  # type: ignore[call-overload]

    (attempt,) = run(sync_job).attempts
    assert "is an async def: run it in an `async with continuable.Job()` job" in str(attempt.error)


class _ThreadNoting(MemoryBackend):
    """Notes the thread of every call that reads or writes the store."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def load(self) -> Any:
        self.threads.add(threading.get_ident())
        return super().load()

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.threads.add(threading.get_ident())
        super().save_checkpoint(checkpoint)

    def save_result(self, step: str, encoded: str) -> None:
        self.threads.add(threading.get_ident())
        super().save_result(step, encoded)


def test_no_store_call_runs_on_the_loops_thread() -> None:
    backend = _ThreadNoting()
    loop_threads: set[int] = set()

    async def main() -> None:
        loop_threads.add(threading.get_ident())
        job = continuable.Job(backend=backend, exit_process=False, handle_signals=False)
        job.interrupt("stop in the middle")  # the stop path writes too
        async with job:

            async def first(step: continuable.AsyncStep) -> int:
                return 1

            await job.step(first)

    asyncio.run(main())
    assert backend.threads
    assert not backend.threads & loop_threads


@pytest.mark.parametrize("concurrency", [1, 8, 256])
def test_the_cursor_stays_within_n_minus_one_listed_items(concurrency: int) -> None:
    widest: list[int] = []

    async def job_fn(job: continuable.Job) -> None:
        @job.step
        async def work(step: continuable.AsyncStep) -> None:
            async def item(i: int) -> None:
                await asyncio.sleep(random.uniform(0, 0.001))
                widest.append(len(step.cursor.get("done", [])))

            await step.amap(item, range(1000), concurrency=concurrency)

        await work

    assert run(job_fn).completed
    assert max(widest) <= concurrency - 1
