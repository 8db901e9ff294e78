"""Concurrent steps (issue 26), printed as tables; `make bench` runs it. Not a test.

1. Wall time of 2,000 items of 50 ms: sequential (`step.range`), `amap` at concurrency 32, and
   the least the same work can take, a bare `asyncio.gather` behind a semaphore of 32 (goal:
   `amap` within 5 % of it); `map` on threads against `ThreadPoolExecutor.map`.
2. The SDK's cost per item with no-op items (goal: under 20 us), against the same bare runs.
3. Items run again after an interruption at 50 % (items of 25 to 75 ms, so the stop finds them
   at every stage): the items in flight let finish (0 run again), or cancelled (at most N).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tabulating import print_table

import continuable
from continuable.backends import Settings
from continuable.backends.memory import MemoryBackend
from continuable.testing import interrupt_after_items, run

ITEMS, SLEEP, CONCURRENCY = 2000, 0.05, 32
NOOP_ITEMS = 50_000
SETTINGS = Settings(interval_seconds=1)


def _job() -> continuable.Job:
    return continuable.Job(
        backend=MemoryBackend(SETTINGS), exit_process=False, handle_signals=False
    )


async def _amap(items: int, fn: Callable[[int], Any], concurrency: int) -> float:
    job = _job()
    async with job:

        async def work(step: continuable.AsyncStep) -> None:
            await step.amap(fn, range(items), concurrency=concurrency)

        began = time.perf_counter()
        await job.step(work)
        return time.perf_counter() - began


async def _gather(items: int, fn: Callable[[int], Any], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with gate:
            return await fn(i)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(items)))
    return time.perf_counter() - began


def _map(items: int, fn: Callable[[int], Any], concurrency: int) -> float:
    with _job() as job:

        def work(step: continuable.Step) -> float:
            began = time.perf_counter()
            step.map(fn, range(items), concurrency=concurrency)
            return time.perf_counter() - began

        return float(job.step(work))


def _pool(items: int, fn: Callable[[int], Any], concurrency: int) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(fn, range(items)))
    return time.perf_counter() - began


def _sequential(items: int, seconds: float) -> float:
    with _job() as job:

        def work(step: continuable.Step) -> float:
            began = time.perf_counter()
            for _ in step.range(items):
                time.sleep(seconds)
            return time.perf_counter() - began

        return float(job.step(work))


async def _sleep(i: int) -> None:
    await asyncio.sleep(SLEEP)


async def _jittered(i: int) -> None:
    """25 to 75 ms: items in flight at a stop are at every stage of their call."""
    await asyncio.sleep(SLEEP * (0.5 + (i * 7919 % 100) / 100))


async def _noop(i: int) -> None:
    return None


def _sleep_thread(i: int) -> None:
    time.sleep(SLEEP)


def _median(measure: Callable[[], float], runs: int = 3) -> float:
    return statistics.median(measure() for _ in range(runs))


def wall_times() -> None:
    sequential = _sequential(ITEMS, SLEEP)
    amap = _median(lambda: asyncio.run(_amap(ITEMS, _sleep, CONCURRENCY)))
    gather = _median(lambda: asyncio.run(_gather(ITEMS, _sleep, CONCURRENCY)))
    threads = _median(lambda: _map(ITEMS, _sleep_thread, CONCURRENCY))
    pool = _median(lambda: _pool(ITEMS, _sleep_thread, CONCURRENCY))
    print(f"\n{ITEMS:,} items of {SLEEP * 1000:.0f} ms, concurrency {CONCURRENCY} (medians of 3)")
    print_table(
        [
            ["run", "wall s", "against the bare run"],
            ["sequential step.range", f"{sequential:.2f}", f"{sequential / gather:.1f}x gather"],
            ["step.amap", f"{amap:.3f}", f"{amap / gather:.3f}x gather (goal <= 1.05)"],
            ["asyncio.gather + semaphore", f"{gather:.3f}", "1"],
            ["step.map (threads)", f"{threads:.3f}", f"{threads / pool:.3f}x pool"],
            ["ThreadPoolExecutor.map", f"{pool:.3f}", "1"],
        ]
    )


def per_item_cost() -> None:
    amap = _median(lambda: asyncio.run(_amap(NOOP_ITEMS, _noop, CONCURRENCY)))
    gather = _median(lambda: asyncio.run(_gather(NOOP_ITEMS, _noop, CONCURRENCY)))
    threads = _median(lambda: _map(NOOP_ITEMS, lambda i: None, CONCURRENCY))
    pool = _median(lambda: _pool(NOOP_ITEMS, lambda i: None, CONCURRENCY))

    def us(seconds: float) -> str:
        return f"{seconds / NOOP_ITEMS * 1e6:.1f}"

    # The whole cost of a no-op item, the event loop's or the threads' own work included: an
    # upper bound of what the SDK adds (the goal), next to the bare runs of the same items.
    print(f"\nno-op items: {NOOP_ITEMS:,} at concurrency {CONCURRENCY}, us per item (medians of 3)")
    print_table(
        [
            ["run", "us/item, all in (goal < 20)", "against the bare run"],
            ["step.amap", us(amap), f"{amap / gather:.2f}x gather"],
            ["asyncio.gather + semaphore", us(gather), "1"],
            ["step.map (threads)", us(threads), f"{threads / pool:.2f}x pool"],
            ["ThreadPoolExecutor.map", us(pool), "1"],
        ]
    )


def _draining(drain: float | None) -> Callable[[continuable.Job], Any]:
    async def job_fn(job: continuable.Job) -> None:
        async def work(step: continuable.AsyncStep) -> None:
            await step.amap(_jittered, range(ITEMS), concurrency=CONCURRENCY, drain_seconds=drain)

        await job.step(work)

    return job_fn


def redone_after_interruption() -> None:
    rows = [["stop at 50 %", "drain", "items run again", "bound"]]
    for drain, label in ((None, "default (grace - margin)"), (0.0, "0 s: cancel in flight")):
        result = run(
            _draining(drain),
            interrupt=interrupt_after_items("work", ITEMS // 2),
            settings=SETTINGS,
        )
        rows.append(["amap", label, str(len(result.repeated("work"))), f"<= {CONCURRENCY}"])
    print(f"\nitems run again after an interruption at 50 % ({ITEMS:,} items of 25 to 75 ms)")
    print_table(rows)


if __name__ == "__main__":
    wall_times()
    per_item_cost()
    redone_after_interruption()
