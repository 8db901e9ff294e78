"""A step of a job: its cursor, progress and timings, the helpers that iterate for it, and the
steps' wire form, the checkpoint document (`status.checkpoint`).

`Step.set()` is the hot path of a job's inner loop, so it does no I/O and, for the common
integer cursor, no encoding: it stores the cursor and checks one flag. Writing is the
checkpointer's job (`checkpointing.py`); deciding what fits is the budgets' (`budgets.py`).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from continuable.errors import CursorError
from continuable.safepoints import attend
from continuable.watermarks import Watermark

if TYPE_CHECKING:
    from continuable.jobs import Job
    from continuable.mapping import Retry

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", bound="BaseStep")

# Integers this small encode in at most 20 bytes, which the job's budget always leaves room
# for, so set() stores them without measuring.
_SMALL_INT = 10**18

State = Literal["Started", "Completed"]


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class BaseStep:
    """What every step's code is handed: its name, cursor and progress, and the iteration
    helpers. `Step` (a `with` job's steps) and `AsyncStep` (an `async with` job's) add how the
    step stops at a safe point and runs items concurrently."""

    __slots__ = (
        "_advanced",
        "_cursor",
        "_done",
        "_duration",
        "_job",
        "_resumed",
        "_running_since",
        "_total",
        "attempt",
        "completed_at",
        "name",
        "started_at",
        "state",
    )

    def __init__(self, job: Job, name: str, *, attempt: int, cursor: Any = None) -> None:
        self._job = job
        self.name = name
        self.state: State = "Started"
        self.attempt = attempt
        self._cursor = cursor
        self._resumed = False
        self._advanced = False
        self._done: int | None = None
        self._total: int | None = None
        self._duration = 0.0
        self._running_since: float | None = None
        self.started_at: str | None = None
        self.completed_at: str | None = None

    def __repr__(self) -> str:
        return f"<Step {self.name!r} {self.state} cursor={self._cursor!r}>"

    @property
    def cursor(self) -> Any:
        """The last saved cursor (any JSON value), or None."""
        if isinstance(self._cursor, Watermark):
            return self._cursor.cursor()
        return self._cursor

    @property
    def resumed(self) -> bool:
        """True when an earlier attempt started this step and this attempt continues it."""
        return self._resumed

    @property
    def advanced(self) -> bool:
        """True once this attempt has moved the cursor."""
        return self._advanced

    def set(self, cursor: Any) -> None:
        raise NotImplementedError

    def _store(self, cursor: Any) -> None:
        """Keep the cursor in memory for the writer; a cursor the budget refuses raises."""
        if type(cursor) is not int or not -_SMALL_INT < cursor < _SMALL_INT:
            cursor = self._job._budgets.admit_cursor(self, cursor)
        self._cursor = cursor
        self._advanced = True

    def advance(self, from_: int | None = None) -> None:
        """Set the cursor to `from_ + 1`, or to the current cursor + 1."""
        base = from_ if from_ is not None else self._cursor
        if type(base) is not int:
            source = "from_" if from_ is not None else "the cursor"
            raise CursorError(
                f"step {self.name!r}: advance() needs an integer, but {source} is "
                f"{type(base).__name__} {base!r:.80}; use set() for other cursors, or give "
                "the step a start= value"
            )
        self.set(base + 1)

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress for the Progress column (`done/total`, or `done`)."""
        if type(done) is not int or done < 0:
            raise ValueError(f"step {self.name!r}: progress done must be an int >= 0, got {done!r}")
        if total is not None and (type(total) is not int or total < 0):
            raise ValueError(
                f"step {self.name!r}: progress total must be an int >= 0 or None, got {total!r}"
            )
        self._done = done
        self._total = total

    def range(self, start_or_stop: int, stop: int | None = None) -> Iterator[int]:
        """`range(stop)` or `range(start, stop)`, resumed at the cursor; after each item the
        cursor becomes the next index, so an interruption repeats nothing."""
        start, stop = (0, start_or_stop) if stop is None else (start_or_stop, stop)
        position = self._start_position(start)
        total = max(stop - start, 0)
        self.progress(max(position - start, 0), total)
        job = self._job
        for index in builtins.range(position, stop):
            yield index
            self._done = index + 1 - start
            if job._attention:
                job._item_done(self, index)
            self.set(index + 1)

    def each(self, sequence: Sequence[T]) -> Iterator[T]:
        """Yield the items of `sequence` from the saved position; the cursor is the index of the
        next item."""
        position = self._start_position(0)
        total = len(sequence)
        self.progress(min(position, total), total)
        job = self._job
        for index in builtins.range(position, total):
            yield sequence[index]
            self._done = index + 1
            if job._attention:
                job._item_done(self, index)
            self.set(index + 1)

    def _start_position(self, default: int) -> int:
        if self._cursor is None:
            return default
        if type(self._cursor) is not int:
            raise CursorError(
                f"step {self.name!r}: the iteration helpers keep an integer cursor, but the "
                f"saved cursor is {type(self._cursor).__name__} {self._cursor!r:.80}"
            )
        return int(self._cursor)

    # The job's side: lifecycle and the wire form.

    def _begin(self, now: float, *, resumed: bool) -> None:
        self._resumed = resumed
        self._running_since = now
        if self.started_at is None:
            self.started_at = utc_now()

    def _pause(self, now: float) -> None:
        if self._running_since is not None:
            self._duration += now - self._running_since
            self._running_since = None

    def _complete(self, now: float) -> None:
        self._pause(now)
        self.state = "Completed"
        self.completed_at = utc_now()

    def _duration_at(self, now: float) -> float:
        running = now - self._running_since if self._running_since is not None else 0.0
        return round(self._duration + running, 3)

    def _progress_wire(self) -> dict[str, Any] | None:
        if self._done is None:
            return None
        summary = f"{self._done}/{self._total}" if self._total is not None else f"{self._done}"
        wire: dict[str, Any] = {"done": self._done, "summary": summary}
        if self._total is not None:
            wire["total"] = self._total
        return wire

    def _wire(self, now: float) -> dict[str, Any]:
        wire: dict[str, Any] = {"name": self.name, "state": self.state, "attempt": self.attempt}
        if self._cursor is not None and self.state != "Completed":
            wire["cursor"] = self.cursor
        if self.started_at is not None:
            wire["startedAt"] = self.started_at
        if self.completed_at is not None:
            wire["completedAt"] = self.completed_at
        wire["durationSeconds"] = self._duration_at(now)
        return wire

    @classmethod
    def _from_wire(cls: type[S], job: Job, wire: dict[str, Any]) -> S:
        step = cls(
            job, wire["name"], attempt=int(wire.get("attempt", 1)), cursor=wire.get("cursor")
        )
        step.state = "Completed" if wire.get("state") == "Completed" else "Started"
        step.started_at = wire.get("startedAt")
        step.completed_at = wire.get("completedAt")
        step._duration = float(wire.get("durationSeconds") or 0.0)
        return step

    def _restore_progress(self, wire: dict[str, Any]) -> None:
        done, total = wire.get("done"), wire.get("total")
        if type(done) is int:
            self._done = done
            self._total = total if type(total) is int else None


class Step(BaseStep):
    """A step of a `with continuable.Job()` job: its code runs on the job's thread."""

    __slots__ = ()

    def set(self, cursor: Any) -> None:
        """Record the cursor; raises Interrupted (after saving it) when termination was asked.

        Back-pressure: once the store has taken no write for `HOLD_BACK_AFTER_INTERVALS` (3)
        checkpoint intervals, waits until it takes one, so the cursor never runs much further
        ahead of the last saved one than a SIGKILL may repeat.
        """
        self._store(cursor)
        if self._job._attention:
            attend(self._job, self)

    def checkpoint(self) -> None:
        """A safe point to stop: raises Interrupted (after saving) when termination was asked."""
        if self._job._attention:
            attend(self._job, self)

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        concurrency: int = 8,
        retry: Retry | None = None,
        drain_seconds: float | None = None,
    ) -> list[R]:
        """Call `fn` on each item not done by an earlier attempt, `concurrency` at a time on
        threads; returns this attempt's results in item order (an item done by an earlier
        attempt is not run again, so its result is not here: let `fn` store what later steps
        need). The cursor records every finished item, whatever order they finish in.

        On a stop request no item starts; those in flight get `drain_seconds` (default: the
        grace period minus a margin) to finish, then are abandoned and run again on resume.
        An item that raises (after `retry`) fails the step with `ItemFailed` once the items in
        flight have finished and been recorded. `fn` runs on worker threads: it must not call
        the step's methods."""
        from continuable.mapping import run_threads

        return run_threads(
            self,
            fn,
            items,
            concurrency=concurrency,
            retry=retry,
            drain_seconds=drain_seconds,
        )


class AsyncStep(BaseStep):
    """A step of an `async with continuable.Job()` job: its code runs on the event loop, and
    nothing the SDK does for it blocks the loop (writes and waits go to a thread)."""

    __slots__ = ()

    def set(self, cursor: Any) -> None:
        """Record the cursor (never blocks: the writer saves it within an interval). The step
        stops at its next `await step.checkpoint()` when termination was asked."""
        self._store(cursor)
        job = self._job
        if job._attention and job._observer is not None:
            job._observer.on_cursor(job, self)

    async def checkpoint(self) -> None:
        """A safe point to stop: raises Interrupted (after saving, on a thread) when termination
        was asked; waits (off the loop) while the store is overdue (back-pressure)."""
        if self._job._attention:
            await asyncio.to_thread(attend, self._job, self)

    async def amap(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Iterable[T],
        *,
        concurrency: int = 8,
        retry: Retry | None = None,
        drain_seconds: float | None = None,
    ) -> list[R]:
        """`Step.map` for coroutines: awaits `fn(item)` for each item not done by an earlier
        attempt, `concurrency` at a time as tasks on this loop; returns this attempt's results
        in item order. On a stop request no item starts, those in flight get `drain_seconds`
        to finish, then are cancelled and run again on resume."""
        from continuable.amapping import run_tasks

        return await run_tasks(
            self,
            fn,
            items,
            concurrency=concurrency,
            retry=retry,
            drain_seconds=drain_seconds,
        )


# The checkpoint document (status.checkpoint): every step's wire form, and where the job is.


def checkpoint_document(
    steps: Iterable[BaseStep], *, current: BaseStep | None, attempt: int, now: float
) -> dict[str, Any]:
    """`status.checkpoint` for `steps` (in the order they first ran) while `current` runs."""
    in_order = list(steps)
    document: dict[str, Any] = {
        "steps": [step._wire(now) for step in in_order],
        "attempt": attempt,
    }
    # The running step, else the one to resume, else the last one: once every step is done,
    # the Step and Progress columns still show where the job ended.
    last = in_order[-1] if in_order else None
    shown = current or next((s for s in reversed(in_order) if s.state != "Completed"), last)
    if shown is not None:
        document["currentStep"] = shown.name
        progress = shown._progress_wire()
        if progress is not None:
            document["progress"] = progress
    return document


def restored_steps(
    job: Job, checkpoint: dict[str, Any], kind: type[BaseStep]
) -> dict[str, BaseStep]:
    """The steps of a saved checkpoint, by name, in the order they first ran."""
    steps: dict[str, BaseStep] = {}
    for wire in checkpoint.get("steps", []):
        step = kind._from_wire(job, wire)
        steps[step.name] = step
    shown = checkpoint.get("currentStep")
    if shown in steps and isinstance(checkpoint.get("progress"), dict):
        steps[shown]._restore_progress(checkpoint["progress"])
    return steps
