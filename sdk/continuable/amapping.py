"""`AsyncStep.amap`: a coroutine function over items, N tasks at a time on the caller's loop.

The decisions are `mapping.Dispatch`'s, as for threads; here they are driven by asyncio: each
item is a task, the loop waits for the first to finish (or a short poll, to notice a stop
request, which a signal handler cannot await), and what writes (the cursor saved before the
step stops) runs on a thread. Items still running after the drain budget are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from continuable.mapping import Dispatch, Outcome, Retry

if TYPE_CHECKING:
    from continuable.steps import BaseStep

T = TypeVar("T")
R = TypeVar("R")

# How long cancelled tasks get to unwind (their `finally` blocks) before the step stops.
CANCEL_WAIT_SECONDS = 1.0


async def call_item(fn: Callable[[T], Awaitable[R]], item: T, retry: Retry | None) -> Outcome:
    """One item, with its retries; a cancellation (the step stopping) is not an outcome."""
    failures = 0
    while True:
        try:
            return "ok", await fn(item)
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            failures += 1
            if retry is None or not isinstance(err, retry.on) or failures >= retry.attempts:
                return "error", err
            await asyncio.sleep(retry.delay(failures))


async def run_tasks(
    step: BaseStep,
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    *,
    concurrency: int,
    retry: Retry | None,
    drain_seconds: float | None,
) -> list[R]:
    """The items not done yet, `concurrency` at a time as tasks on the running loop."""
    dispatch: Dispatch[T] = await asyncio.to_thread(
        Dispatch, step, items, concurrency=concurrency, drain_seconds=drain_seconds
    )
    tasks: dict[asyncio.Task[Outcome], int] = {}
    try:
        while True:
            for index, item in dispatch.to_start():
                tasks[asyncio.create_task(call_item(fn, item, retry))] = index
            if dispatch.settled():
                break
            if not tasks:  # held back while the store is overdue
                await asyncio.sleep(dispatch.wait_seconds())
                continue
            done, _ = await asyncio.wait(
                tasks, timeout=dispatch.wait_seconds(), return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                index = tasks.pop(task)
                dispatch.finish(index, ("cancelled", None) if task.cancelled() else task.result())
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_SECONDS)
    results: list[Any] = await asyncio.to_thread(dispatch.outcome)
    return results
