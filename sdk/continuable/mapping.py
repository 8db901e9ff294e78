"""Concurrent steps: an item function run over items N at a time, resumable at item grain.

`Dispatch` is what a concurrent step decides, whatever runs its items: which item starts next
(the first not done, while the items in flight and the done ones above the watermark number
fewer than N, so the cursor stays within its budget), what a finished item changes (the
watermark, which the checkpoint writer reads; progress; the result), and when to stop.
`run_threads` drives it with a pool of threads (`Step.map`); `amapping.run_tasks` with asyncio
tasks (`AsyncStep.amap`).

Stopping (SIGTERM, an isolated step next): no item starts any more; the items in flight get
`drain_seconds` to finish (default: the pod's grace period minus a margin that leaves the final
checkpoint write inside it), then are abandoned; their results are dropped and they run again
on resume (at least once), never a finished one. An item that raises (after its retries): no
item starts any more, the ones in flight finish and are recorded, then the step fails with
`ItemFailed` naming the index; the job's retry resumes without redoing them.
"""

from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from continuable import logs
from continuable.errors import CheckpointTooLarge, InvalidStepError, ItemFailed
from continuable.safepoints import raise_if_stopping
from continuable.watermarks import Watermark, widest_cursor

if TYPE_CHECKING:
    from continuable.steps import BaseStep

T = TypeVar("T")
R = TypeVar("R")

MAX_CONCURRENCY = 1024
# An unsized iterable's indexes are assumed to stay below this when the cursor's size is
# checked against the budget (13 digits).
UNSIZED_LAST_INDEX = 10**12
# How often the dispatcher looks at the stop request while it waits for an item (a signal
# handler cannot wake its wait).
POLL_SECONDS = 0.05


def drain_budget(grace_seconds: float) -> float:
    """The default time items in flight get to finish once a stop is asked: the grace period
    minus a quarter of it (at least 5 s), left for the final checkpoint write and the exit."""
    return max(grace_seconds - max(grace_seconds / 4, 5.0), 0.0)


@dataclass(frozen=True)
class Retry:
    """Retry an item that raises one of `on` (say a model API's rate limit), up to `attempts`
    tries in all, waiting an exponential backoff with jitter between them: `backoff_seconds`,
    doubling, at most `max_backoff_seconds`. A stop request cuts a wait short (the item then
    runs again on resume)."""

    on: tuple[type[BaseException], ...]
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0

    def __post_init__(self) -> None:
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        object.__setattr__(self, "on", on)
        if not on or not all(isinstance(t, type) and issubclass(t, BaseException) for t in on):
            raise ValueError(f"Retry(on=...): expected exception classes, got {self.on!r}")
        if type(self.attempts) is not int or self.attempts < 1:
            raise ValueError(f"Retry(attempts=...): expected an int >= 1, got {self.attempts!r}")
        if not self.backoff_seconds >= 0 or not self.max_backoff_seconds >= 0:
            raise ValueError("Retry: backoff_seconds and max_backoff_seconds must be >= 0")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure: half fixed, half jitter, so items
        that failed together do not all retry together."""
        base = min(self.backoff_seconds * 2.0 ** (failures - 1), self.max_backoff_seconds)
        return base / 2 + random.uniform(0, base / 2)


Outcome = tuple[Literal["ok", "error", "cancelled"], Any]


class Dispatch(Generic[T]):
    """The decisions of one concurrent step's run in this attempt (see the module's doc)."""

    def __init__(
        self,
        step: BaseStep,
        items: Iterable[T],
        *,
        concurrency: int,
        drain_seconds: float | None,
    ) -> None:
        if type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(
                f"step {step.name!r}: concurrency must be an int from 1 to {MAX_CONCURRENCY}, "
                f"got {concurrency!r}"
            )
        if isinstance(items, set | frozenset):
            raise ValueError(
                f"step {step.name!r}: items must come in the same order in every attempt (an "
                "item is known by its position), and a set's order changes from process to "
                "process; pass sorted(items)"
            )
        if drain_seconds is not None and not drain_seconds >= 0:
            raise ValueError(f"step {step.name!r}: drain_seconds must be >= 0, got {drain_seconds}")
        self.step = step
        self.job = step._job
        self.concurrency = concurrency
        grace = self.job._settings.grace_seconds
        self.drain_seconds = drain_budget(grace) if drain_seconds is None else drain_seconds
        if isinstance(step._cursor, Watermark):
            raise InvalidStepError(
                f"step {step.name!r}: a step runs one concurrent map; split the work into steps"
            )
        self.watermark = Watermark.from_cursor(step._cursor, step=step.name)
        self.total = len(items) if isinstance(items, Sized) else None
        self._admit(concurrency)
        with self.job._checkpointer.lock:
            step._cursor = self.watermark
        self.results: dict[int, Any] = {}
        self.in_flight: set[int] = set()
        self.error: tuple[int, BaseException] | None = None
        self.draining_since: float | None = None
        self.abandoned = False
        self.exhausted = False
        self._pending = self._not_done(items)
        self._report_progress()

    def _admit(self, concurrency: int) -> None:
        """The widest cursor this run can write must fit the checkpoint budget: checked now, so
        it fails here, naming the concurrency, never mid-run."""
        last = self.total - 1 if self.total is not None else UNSIZED_LAST_INDEX
        widest = widest_cursor(max(concurrency, self.watermark.ahead + 1), max(last, 0))
        try:
            self.job._budgets.admit_cursor(self.step, widest)
        except CheckpointTooLarge as err:
            raise CheckpointTooLarge(
                f"{err} (at concurrency {concurrency}, a concurrent step's cursor lists up to "
                f"{concurrency - 1} done items; lower the concurrency or raise the budget)"
            ) from None

    def _not_done(self, items: Iterable[T]) -> Iterator[tuple[int, T]]:
        start = self.watermark.next
        if isinstance(items, Sequence):
            pairs: Iterable[tuple[int, T]] = ((i, items[i]) for i in range(start, len(items)))
        else:
            pairs = itertools.islice(enumerate(items), start, None)
        return ((i, item) for i, item in pairs if not self.watermark.is_done(i))

    # Deciding.

    @property
    def stopping(self) -> bool:
        return self.job._stopping.asked or self.error is not None

    def to_start(self) -> list[tuple[int, T]]:
        """The items to start now."""
        self._look_at_stop()
        if self.stopping or self.abandoned or self.job._checkpointer.overdue():
            return []
        started: list[tuple[int, T]] = []
        while not self.exhausted and (
            len(self.in_flight) + self.watermark.ahead < self.concurrency or not self.in_flight
        ):
            found = next(self._pending, None)
            if found is None:
                self.exhausted = True
                break
            self.in_flight.add(found[0])
            started.append(found)
            if self.job._observer is not None:
                self.job._observer.on_item_start(self.job, self.step, found[0])
        return started

    def settled(self) -> bool:
        """Nothing is in flight and nothing more will start (or the rest is abandoned)."""
        if self.abandoned:
            return True
        return not self.in_flight and (self.exhausted or self.stopping)

    def wait_seconds(self) -> float:
        if self.draining_since is None:
            return POLL_SECONDS
        left = self.draining_since + self.drain_seconds - time.monotonic()
        return min(POLL_SECONDS, max(left, 0.0))

    def finish(self, index: int, outcome: Outcome) -> None:
        """An item came back: done (recorded), failed, or cancelled (runs again on resume)."""
        if self.abandoned or index not in self.in_flight:
            return
        self.in_flight.discard(index)
        kind, value = outcome
        if kind == "ok":
            self.watermark.mark(index)
            self.results[index] = value
            self._report_progress()
            if self.job._observer is not None:
                self.job._observer.on_item(self.job, self.step, index)
        elif kind == "error" and self.error is None:
            self.error = (index, value)
            logs.event(
                "step.item_failed",
                f"step {self.step.name}: item {index} raised {type(value).__name__}: {value}; "
                f"no more items start, {len(self.in_flight)} in flight finish first",
                level=logging.WARNING,
                step=self.step.name,
                item=index,
            )

    def _look_at_stop(self) -> None:
        stopping = self.job._stopping
        if stopping.failure is not None:
            self.abandoned = True  # fenced out, or the writer failed: nothing more is saved
            return
        now = time.monotonic()
        if stopping.why is not None and self.draining_since is None:
            self.draining_since = now
            logs.event(
                "step.draining",
                f"step {self.step.name}: stopping; {len(self.in_flight)} items in flight get "
                f"{self.drain_seconds:.1f}s to finish",
                step=self.step.name,
            )
        deadline = None if self.draining_since is None else self.draining_since + self.drain_seconds
        if deadline is not None and self.in_flight and now >= deadline:
            self.abandoned = True
            logs.event(
                "step.cancelled",
                f"step {self.step.name}: {len(self.in_flight)} items still in flight after "
                f"{self.drain_seconds:.1f}s were cancelled; they run again on resume",
                level=logging.WARNING,
                step=self.step.name,
                items=sorted(self.in_flight),
            )

    def _report_progress(self) -> None:
        self.step._done = self.watermark.done_count()
        self.step._total = self.total

    def outcome(self) -> list[Any]:
        """This attempt's results in item order; or raises: the stop (after saving the
        cursor), the first item's error, or what stopped the writer."""
        self._look_at_stop()
        if self.error is not None and not self.job._stopping.asked:
            index, error = self.error
            raise ItemFailed(self.step.name, index, error) from error
        if self.job._stopping.asked:
            raise_if_stopping(self.job)
        return [self.results[i] for i in sorted(self.results)]


def call_item(
    fn: Callable[[T], R], item: T, retry: Retry | None, cancelled: threading.Event
) -> Outcome:
    """One item on a worker thread, with its retries; a stop cuts a retry's wait short."""
    failures = 0
    while True:
        try:
            return "ok", fn(item)
        except BaseException as err:
            failures += 1
            if retry is None or not isinstance(err, retry.on) or failures >= retry.attempts:
                return "error", err
            if cancelled.wait(retry.delay(failures)):
                return "cancelled", None


class _Pool(Generic[T, R]):
    """Daemon worker threads: an item still running when the attempt ends does not hold up
    the process's exit (its result is dropped, and it runs again on resume)."""

    def __init__(self, fn: Callable[[T], R], retry: Retry | None, workers: int) -> None:
        self._fn = fn
        self._retry = retry
        self._tasks: queue.SimpleQueue[tuple[int, T] | None] = queue.SimpleQueue()
        self.finished: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
        self.cancelled = threading.Event()
        self._wanted = workers
        self._threads: list[threading.Thread] = []

    def submit(self, index: int, item: T) -> None:
        if len(self._threads) < self._wanted:
            thread = threading.Thread(
                target=self._work, name=f"continuable-item-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._tasks.put((index, item))

    def take(self, timeout: float) -> tuple[int, Outcome] | None:
        try:
            return self.finished.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.cancelled.set()
        for _ in self._threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None or self.cancelled.is_set():
                return
            index, item = task
            self.finished.put((index, call_item(self._fn, item, self._retry, self.cancelled)))


def run_threads(
    step: BaseStep,
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    concurrency: int,
    retry: Retry | None,
    drain_seconds: float | None,
) -> list[R]:
    """`Step.map`: the items not done yet, `concurrency` at a time on threads."""
    dispatch = Dispatch(step, items, concurrency=concurrency, drain_seconds=drain_seconds)
    pool: _Pool[T, R] = _Pool(fn, retry, concurrency)
    try:
        while True:
            for index, item in dispatch.to_start():
                pool.submit(index, item)
            if dispatch.settled():
                break
            finished = pool.take(dispatch.wait_seconds())
            while finished is not None:
                dispatch.finish(*finished)
                try:
                    finished = pool.finished.get_nowait()
                except queue.Empty:
                    finished = None
    finally:
        pool.close()
    return dispatch.outcome()
