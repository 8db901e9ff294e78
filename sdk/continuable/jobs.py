"""`Job`: runs a script's steps in order, skips what earlier attempts finished, and ends the
process with an exit code the operator can read.

    with continuable.Job() as job:
        @job.step
        def fetch(step): ...

Exit codes: 0 completed; 75 (EX_TEMPFAIL) interrupted with the cursor saved, stopped so an
isolated step starts in a fresh attempt, or fenced out (a newer attempt owns the job, or the job
is gone); 1 the job failed (user code raised, a step was misused, or a non-idempotent step would
have run twice).

The job holds the attempt's state (its steps and results) and runs each step; the decisions
around it live beside it: `ordering` (which step may come next), `budgets` (what fits),
`stopping` (termination requests and signals), `checkpointing` (when to write, and when the job
must wait for a write) and `ending` (how the attempt ends).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeVar, overload

from continuable import logs
from continuable.backends import Backend, default_backend
from continuable.budgets import Budgets
from continuable.checkpointing import HOLD_BACK_AFTER_INTERVALS, Checkpointer
from continuable.ending import Ending, Outcome, stop_fenced_out
from continuable.errors import (
    BackendError,
    BackendUnavailable,
    CheckpointTooLarge,
    FencedOut,
    Interrupted,
    InterruptReason,
    InvalidStepError,
    StepNotReplayable,
)
from continuable.ordering import check_reached
from continuable.retrying import retrying
from continuable.steps import Step, checkpoint_document, restored_steps
from continuable.stopping import Stopping

T = TypeVar("T")

# While held back, how often the job looks again whether it must stop instead (a signal cannot
# wake the wait safely: its handler may run while this thread holds the event's lock).
_HOLD_BACK_POLL_SECONDS = 0.1


class Observer(Protocol):
    """What `continuable.testing` watches; a job without one pays nothing for the hook."""

    def on_step(self, job: Job, event: str, step: str) -> None: ...

    def on_cursor(self, job: Job, step: Step) -> None: ...

    def on_item(self, job: Job, step: Step, position: int) -> None: ...


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
        if self._entered:
            raise InvalidStepError("a Job runs once; create a new Job for another run")
        self._entered = True
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
        self._steps = restored_steps(self, snapshot.checkpoint or {})
        self._budgets = Budgets(
            snapshot.settings, results=self._results, document=self._checkpoint_document
        )
        self._reached: list[str] = []
        self._current: Step | None = None
        # The step being started or skipped: errors before it runs are still about it.
        self._step_in_hand: str | None = None
        self._ran_this_attempt = False
        self._checkpointer = Checkpointer(
            self._backend,
            interval_seconds=snapshot.settings.interval_seconds,
            build=self._checkpoint_document,
            on_failure=self._stopping.writer_failed,
            on_overdue=self._hold_back_next,
        )
        if self._handle_signals:
            self._stopping.install_signal_handlers()
        self._checkpointer.start()
        self._writing = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        try:
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
        finally:
            self._stopping.restore_signal_handlers()
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
    def step(self, fn: Callable[[Step], T], /) -> T: ...

    @overload
    def step(
        self,
        name: str | None = None,
        *,
        start: Any = None,
        isolated: bool = False,
        idempotent: bool = True,
    ) -> Callable[[Callable[[Step], T]], T]: ...

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

        `@job.step`, `@job.step("name", isolated=True)` and `job.step("name", fn)`.
        """
        if callable(name) and fn is None:
            return self._run_step(name.__name__, name, start, isolated, idempotent)
        if fn is not None:
            return self._run_step(name, fn, start, isolated, idempotent)

        def decorate(function: Callable[[Step], T]) -> T:
            step_name = name if name is not None else function.__name__
            result: T = self._run_step(step_name, function, start, isolated, idempotent)
            return result

        return decorate

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
        check_reached(name, current=self._current, reached=self._reached, recorded=self._steps)
        self._step_in_hand = name
        step = self._steps.get(name)
        if step is not None and step.state == "Completed":
            self._reached.append(name)
            logs.event(
                "step.skipped",
                f"step {name} skipped: completed by attempt {step.attempt}",
                step=name,
                attempt=self.attempt,
            )
            self._notify("skipped", name)
            self._step_in_hand = None
            return self.result(name)
        self._raise_if_stopping()
        if isolated and self._ran_this_attempt:
            self._request_termination("the next step is isolated", reason="Isolated")
            self._raise_if_stopping()
        if step is not None and not idempotent:
            raise StepNotReplayable(name, step.attempt)
        self._reached.append(name)
        resumed = step is not None
        with self._checkpointer.lock:
            if step is None:
                step = Step(self, name, attempt=self.attempt, cursor=start)
                self._steps[name] = step
            try:
                self._budgets.make_room(step)
            except CheckpointTooLarge:
                if not resumed:
                    del self._steps[name]
                raise
            self._current = step
            step._begin(time.monotonic(), resumed=resumed)
            if not idempotent:
                # Under the lock, so the writer thread never saves a start this did not save.
                self._record_start(step)
        self._ran_this_attempt = True
        if resumed:
            logs.event(
                "step.resumed",
                f"step {name} resumed at cursor {step.cursor!r}",
                step=name,
                cursor=step.cursor,
                attempt=self.attempt,
            )
        else:
            logs.event("step.started", f"step {name} started", step=name, attempt=self.attempt)
        self._notify("resumed" if resumed else "started", name)
        began = time.monotonic()
        try:
            result = fn(step) if _takes_step(fn) else fn()
        finally:
            with self._checkpointer.lock:
                step._pause(time.monotonic())
        text = self._budgets.admit_result(name, result)
        try:
            self._durably(lambda: self._backend.save_result(name, text), f"saving result {name}")
            self._results[name] = json.loads(text)
            self._budgets.count_result(name, text)
            with self._checkpointer.lock:
                step._complete(time.monotonic())
                self._current = None
            self._durably(self._checkpointer.flush, f"recording the completion of step {name}")
        except BackendUnavailable as err:
            with self._checkpointer.lock:
                step.state, step.completed_at = "Started", None
                self._current = step
            raise Interrupted(
                f"the completion of step {name} could not be saved before the grace period "
                f"ran out ({err}); the step runs again"
            ) from None
        logs.event(
            "step.completed",
            f"step {name} completed in {time.monotonic() - began:.3f}s",
            step=name,
            seconds=round(time.monotonic() - began, 3),
            attempt=self.attempt,
        )
        self._notify("completed", name)
        self._step_in_hand = None
        return self._results[name]

    def _record_start(self, step: Step) -> None:
        """Save that a non-idempotent step started before its side effect runs; if that cannot
        be saved, the step did not start, so the next attempt runs it instead of refusing it."""
        try:
            self._durably(self._checkpointer.flush, f"recording the start of step {step.name}")
        except BackendUnavailable as err:
            # Always a new step: one an earlier attempt recorded stopped at StepNotReplayable.
            del self._steps[step.name]
            self._reached.remove(step.name)
            self._current = None
            raise Interrupted(
                f"the start of step {step.name} could not be saved before the grace period ran "
                f"out ({err}); it did not start and runs in the next attempt"
            ) from None

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

    def _raise_if_stopping(self) -> None:
        stopping = self._stopping
        if stopping.failure is not None:
            raise stopping.failure
        if stopping.why is not None:
            try:
                self._durably(self._checkpointer.flush, "saving the cursor before stopping")
            except BackendUnavailable as err:
                # The job stops all the same; the next attempt resumes at the last saved cursor.
                why = f"{stopping.why}; the cursor could not be saved ({err})"
                raise Interrupted(why, reason=stopping.kind) from None
            raise Interrupted(stopping.why, reason=stopping.kind)

    def _attend(self, step: Step) -> None:
        """What set() and checkpoint() do when the flag is raised."""
        if self._observer is not None:
            self._observer.on_cursor(self, step)
        if self._checkpointer.overdue():
            self._hold_back()
        self._raise_if_stopping()
        # Lowered first and raised again if still needed: a request that comes in between is
        # seen by the check, never lost.
        self._attention = False
        if self._observer is not None or self._checkpointer.overdue() or self._stopping.asked:
            self._attention = True

    def _hold_back(self) -> None:
        """Back-pressure: wait until the writer saves the cursor, or the attempt must stop."""
        logs.event(
            "checkpoint.overdue",
            f"no checkpoint saved for {HOLD_BACK_AFTER_INTERVALS} intervals; the job waits for "
            "the store so it does not run further ahead of its last saved cursor",
            level=logging.WARNING,
        )
        began = time.monotonic()
        while self._checkpointer.overdue() and not self._stopping.asked:
            self._checkpointer.wait_for_save(_HOLD_BACK_POLL_SECONDS)
        if not self._stopping.asked:
            logs.event(
                "checkpoint.saved",
                f"the checkpoint is saved again; the job goes on after waiting "
                f"{time.monotonic() - began:.1f}s",
            )

    def _item_done(self, step: Step, position: int) -> None:
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
