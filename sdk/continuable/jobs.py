"""`Job`: runs a script's steps in order, skips what earlier attempts finished, and ends the
process with an exit code the operator can read.

    with continuable.Job() as job:
        @job.step
        def fetch(step): ...

    async with continuable.Job() as job:    # steps are async def, run on the caller's loop
        @job.step
        async def fetch(step): ...
        ids = await fetch

Exit codes: 0 completed; 75 (EX_TEMPFAIL) interrupted with the cursor saved, stopped so an
isolated step starts in a fresh attempt, or fenced out (a newer attempt owns the job, or the job
is gone); 1 the job failed (user code raised, a step was misused, or a non-idempotent step would
have run twice).

The job holds the attempt's state (its steps and results) and runs each step; the decisions
around it live beside it: `ordering` (which step may come next), `budgets` (what fits),
`stopping` (termination requests and signals), `checkpointing` (when to write, and when the job
must wait for a write), `safepoints` (stopping or holding back at a step's safe point),
`running` (a step's start and completion), `mapping`/`amapping` (concurrent steps) and `ending`
(how the attempt ends).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Protocol, TypeVar, overload

from continuable import logs, running
from continuable.backends import Backend, default_backend
from continuable.budgets import Budgets
from continuable.checkpointing import Checkpointer
from continuable.ending import Ending, Outcome, stop_fenced_out
from continuable.errors import (
    BackendError,
    FencedOut,
    InterruptReason,
    InvalidStepError,
)
from continuable.retrying import retrying
from continuable.steps import AsyncStep, BaseStep, Step, checkpoint_document, restored_steps
from continuable.stopping import Stopping

T = TypeVar("T")


class Observer(Protocol):
    """What `continuable.testing` watches; a job without one pays nothing for the hook."""

    def on_step(self, job: Job, event: str, step: str) -> None: ...

    def on_cursor(self, job: Job, step: BaseStep) -> None: ...

    def on_item(self, job: Job, step: BaseStep, position: int) -> None: ...

    def on_item_start(self, job: Job, step: BaseStep, position: int) -> None: ...


class Job:
    """A run of a job script: one attempt. Use it as a context manager."""

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        exit_process: bool = True,
        handle_signals: bool = True,
        observer: Observer | None = None,
    ) -> None:
        self._backend_given = backend
        self._exit_process = exit_process
        self._handle_signals = handle_signals
        self._observer = observer
        self.outcome: Outcome | None = None
        self._entered = False
        # Made here, so that `interrupt()` may come before the attempt has started.
        self._stopping = Stopping(on_request=self._raise_attention)
        self._writing = False  # whether the checkpoint writer exists (to be woken)

    # Lifecycle.

    def __enter__(self) -> Job:
        self._open(Step)
        if self._handle_signals:
            self._stopping.install_signal_handlers()
        return self

    async def __aenter__(self) -> Job:
        """`async with continuable.Job() as job`: the checkpoint is loaded on a thread, and the
        signal handlers go on the loop's thread."""
        await asyncio.to_thread(self._open, AsyncStep)
        if self._handle_signals:
            self._stopping.install_signal_handlers()
        return self

    def _open(self, kind: type[BaseStep]) -> None:
        """Load what earlier attempts saved and start the checkpoint writer."""
        if self._entered:
            raise InvalidStepError("a Job runs once; create a new Job for another run")
        self._entered = True
        self._step_kind = kind
        logs.configure()
        self._backend = self._backend_given or default_backend()
        # The one flag the hot path reads: raised when set() must do more than store a cursor.
        self._attention = self._observer is not None or self._stopping.asked
        try:
            snapshot = retrying(
                self._backend.load, what="loading the checkpoint", give_up=self._stopping.give_up
            )
        except FencedOut as fenced:
            # This pod's job is gone or a newer attempt runs: nothing ran, nothing is written.
            self.outcome = stop_fenced_out(self._backend, fenced)
            if self._exit_process:
                raise SystemExit(self.outcome.exit_code) from None
            raise
        self.attempt = snapshot.attempt
        self._results: dict[str, Any] = snapshot.results
        self._settings = snapshot.settings
        self._steps = restored_steps(self, snapshot.checkpoint or {}, kind)
        self._budgets = Budgets(
            snapshot.settings, results=self._results, document=self._checkpoint_document
        )
        self._reached: list[str] = []
        self._current: BaseStep | None = None
        # The step being started or skipped: errors before it runs are still about it.
        self._step_in_hand: str | None = None
        self._step_began = 0.0
        # An async job's steps declared but not awaited yet: the job fails if one never is.
        self._unawaited: dict[str, Coroutine[Any, Any, Any]] = {}
        self._ran_this_attempt = False
        self._checkpointer = Checkpointer(
            self._backend,
            interval_seconds=snapshot.settings.interval_seconds,
            build=self._checkpoint_document,
            on_failure=self._stopping.writer_failed,
            on_overdue=self._hold_back_next,
        )
        self._checkpointer.start()
        self._writing = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        try:
            self._end(exc)
        finally:
            self._stopping.restore_signal_handlers()
        return self._leave(exc)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        ended = exc
        if ended is None and self._unawaited:
            names = ", ".join(sorted(self._unawaited))
            for never in self._unawaited.values():
                never.close()  # said below, in the job's own words
            ended = InvalidStepError(
                f"step {names} was declared but never awaited, so it never ran: in an async "
                "job, await each step (`result = await job.step(fn)`, or `await name` after "
                "`@job.step`)"
            )
        try:
            await asyncio.to_thread(self._end, ended)
        finally:
            self._stopping.restore_signal_handlers()
        return self._leave(ended)

    def _end(self, exc: BaseException | None) -> None:
        """Write how the attempt ended (on a thread for an async job: it writes)."""
        # The timer's writer stops first: a late write of its own must never replace the
        # final checkpoint, which carries the stop reason the operator classifies by.
        self._checkpointer.stop()
        ending = Ending(
            attempt=self.attempt,
            backend=self._backend,
            checkpointer=self._checkpointer,
            budgets=self._budgets,
            stopping=self._stopping,
            durably=self._durably,
        )
        self.outcome = ending.end(exc, current=self._current, step_in_hand=self._step_in_hand)

    def _leave(self, exc: BaseException | None) -> bool:
        """Whether to swallow the exception the attempt ended with; SystemExit to end the
        process with the outcome's exit code."""
        assert self.outcome is not None
        if self.outcome.stop_reason is None:
            return False  # SystemExit, KeyboardInterrupt: the job's own way out, kept as is
        if self._exit_process and self.outcome.exit_code != 0:
            raise SystemExit(self.outcome.exit_code) from None
        return exc is not None

    def interrupt(self, why: str = "interrupt() was called") -> None:
        """Ask this attempt to stop at its next safe point, as SIGTERM does: the cursor is saved
        with the stop reason `Interrupted`, and the job exits 75 (with `exit_process=False`:
        `outcome` says Interrupted). For a job that signals do not reach (one run on a thread
        with `handle_signals=False`, or embedded in a harness); safe from any thread, and before
        the attempt has started (it then stops at its first step)."""
        self._request_termination(why)

    @property
    def resumed(self) -> bool:
        """True when this attempt continues from a checkpoint (a completed step or a cursor)."""
        return any(s.state == "Completed" or s.cursor is not None for s in self._steps.values())

    # Steps.

    @overload
    def step(
        self, fn: Callable[[AsyncStep], Coroutine[Any, Any, T]], /
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def step(self, fn: Callable[[Step], T], /) -> T: ...

    @overload
    def step(
        self,
        name: str | None = None,
        *,
        start: Any = None,
        isolated: bool = False,
        idempotent: bool = True,
    ) -> StepDecorator: ...

    @overload
    def step(
        self,
        name: str,
        fn: Callable[[AsyncStep], Coroutine[Any, Any, T]],
        *,
        start: Any = None,
        isolated: bool = False,
        idempotent: bool = True,
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def step(
        self,
        name: str,
        fn: Callable[[Step], T] | Callable[[], T],
        *,
        start: Any = None,
        isolated: bool = False,
        idempotent: bool = True,
    ) -> T: ...

    def step(
        self,
        name: Any = None,
        fn: Any = None,
        *,
        start: Any = None,
        isolated: bool = False,
        idempotent: bool = True,
    ) -> Any:
        """Run a step now, or skip it if an earlier attempt completed it; returns its result.

        `@job.step`, `@job.step("name", isolated=True)` and `job.step("name", fn)`. In an
        `async with` job the steps are `async def` and this returns an awaitable of the result:
        `result = await job.step(fn)`, or `await name` after `@job.step`.
        """
        if callable(name) and fn is None:
            return self._take_step(name.__name__, name, start, isolated, idempotent)
        if fn is not None:
            return self._take_step(name, fn, start, isolated, idempotent)
        return StepDecorator(self, name, start=start, isolated=isolated, idempotent=idempotent)

    def _take_step(
        self, name: str, fn: Callable[..., Any], start: Any, isolated: bool, idempotent: bool
    ) -> Any:
        if self._step_kind is not AsyncStep:
            return self._run_step(name, fn, start, isolated, idempotent)
        if not inspect.iscoroutinefunction(fn):
            raise InvalidStepError(
                f"step {name!r}: an async job's steps are async def (run blocking code in one "
                "with asyncio.to_thread)"
            )
        running_it = self._run_async_step(name, fn, start, isolated, idempotent)
        self._unawaited[name] = running_it
        return running_it

    def result(self, name: str) -> Any:
        """The result of a completed step, from this attempt or an earlier one."""
        step = self._steps.get(name)
        if step is None or step.state != "Completed":
            raise InvalidStepError(f"step {name!r} has not completed, so it has no result yet")
        if name not in self._results:
            raise BackendError(f"the result of completed step {name!r} is missing from the store")
        return self._results[name]

    def _run_step(
        self, name: str, fn: Callable[..., Any], start: Any, isolated: bool, idempotent: bool
    ) -> Any:
        if inspect.iscoroutinefunction(fn):
            raise InvalidStepError(
                f"step {name!r} is an async def: run it in an `async with continuable.Job()` job"
            )
        opened = running.open_step(self, name, start, isolated, idempotent)
        if isinstance(opened, running.Skipped):
            return opened.result
        try:
            result = fn(opened) if _takes_step(fn) else fn()
        finally:
            running.pause(self, opened)
        return running.close_step(self, opened, result)

    async def _run_async_step(
        self, name: str, fn: Callable[..., Any], start: Any, isolated: bool, idempotent: bool
    ) -> Any:
        """An async job's step: its code on the loop, the SDK's writes on a thread."""
        self._unawaited.pop(name, None)
        opened = await asyncio.to_thread(running.open_step, self, name, start, isolated, idempotent)
        if isinstance(opened, running.Skipped):
            return opened.result
        try:
            result = await (fn(opened) if _takes_step(fn) else fn())
        finally:
            running.pause(self, opened)
        return await asyncio.to_thread(running.close_step, self, opened, result)

    # Stopping at a safe point.

    def _request_termination(self, why: str, *, reason: InterruptReason = "Interrupted") -> None:
        self._stopping.request(why, reason=reason)

    def _raise_attention(self) -> None:
        self._attention = True
        if self._writing:
            self._checkpointer.wake()

    def _hold_back_next(self) -> None:
        """The writer says the job is overdue: the next set() holds back. Not `_raise_attention`:
        waking the writer from its own retry loop would retry at once, a write every few ms."""
        self._attention = True

    def _durably(self, write: Callable[[], None], what: str) -> None:
        retrying(write, what=what, give_up=self._stopping.give_up)

    def _item_done(self, step: BaseStep, position: int) -> None:
        if self._observer is not None:
            self._observer.on_item(self, step, position)

    def _notify(self, event: str, name: str) -> None:
        if self._observer is not None:
            self._observer.on_step(self, event, name)

    def _checkpoint_document(self) -> dict[str, Any]:
        return checkpoint_document(
            self._steps.values(), current=self._current, attempt=self.attempt, now=time.monotonic()
        )


def _takes_step(fn: Callable[..., Any]) -> bool:
    """Whether `fn` wants the Step: method-reference steps may take no argument at all."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )


class StepDecorator:
    """`@job.step("name", ...)`: runs the decorated function as that step (see `Job.step`)."""

    def __init__(
        self, job: Job, name: str | None, *, start: Any, isolated: bool, idempotent: bool
    ) -> None:
        self._job = job
        self._name = name
        self._options = (start, isolated, idempotent)

    @overload
    def __call__(
        self, function: Callable[[AsyncStep], Coroutine[Any, Any, T]]
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def __call__(self, function: Callable[[Step], T]) -> T: ...

    def __call__(self, function: Callable[..., Any]) -> Any:
        name = self._name if self._name is not None else function.__name__
        return self._job._take_step(name, function, *self._options)
