"""`Job`: runs a script's steps in order, skips what earlier attempts finished, and ends the
process with an exit code the operator can read.

    with continuable.Job() as job:
        @job.step
        def fetch(step): ...

Exit codes: 0 completed; 75 (EX_TEMPFAIL) interrupted with the cursor saved, or stopped so an
isolated step starts in a fresh attempt; 1 the job failed (user code raised, a step was misused,
or a non-idempotent step would have run twice).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Literal, Protocol, TypeVar, overload

from continuable import logs
from continuable.backends import Backend, Settings
from continuable.budgets import encoded, over_budget
from continuable.checkpointing import Checkpointer
from continuable.errors import (
    BackendError,
    BackendUnavailable,
    CheckpointTooLarge,
    ContinuableError,
    CursorError,
    FencedOut,
    Interrupted,
    InterruptReason,
    InvalidStepError,
    ResultError,
    ResultTooLarge,
    StepNotReplayable,
)
from continuable.names import (
    ENV_CHECKPOINT_INTERVAL,
    ENV_JOB,
    EXIT_INTERRUPTED,
    STEP_NAME_MAX_LENGTH,
    STEP_NAME_PATTERN,
)
from continuable.retrying import retrying
from continuable.steps import Step

T = TypeVar("T")
StopReason = Literal["Completed", "Interrupted", "Isolated", "Failed", "NotReplayable"]

_STEP_NAME = re.compile(STEP_NAME_PATTERN)
# Room kept in the checkpoint budget for progress numbers and timestamps that grow as a step
# runs, so a write that passed the budget at set() still passes it later.
_GROWTH_RESERVE = 160
# After termination is requested, how long a write may be retried: well inside the default
# 30 s grace period, so the pod still exits by itself with code 75.
GIVE_UP_AFTER_TERMINATION_SECONDS = 15.0


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    stop_reason: StopReason | None
    exit_code: int
    error: BaseException | None = None


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

    # Lifecycle.

    def __enter__(self) -> Job:
        if self._entered:
            raise InvalidStepError("a Job runs once; create a new Job for another run")
        self._entered = True
        logs.configure()
        self._backend = self._backend_given or _default_backend()
        self._terminating_since: float | None = None
        snapshot = retrying(
            self._backend.load, what="loading the checkpoint", give_up=self._give_up
        )
        self.attempt = snapshot.attempt
        self._settings = snapshot.settings
        self._results: dict[str, Any] = snapshot.results
        self._results_bytes = sum(len(k) + len(encoded(v)) for k, v in self._results.items())
        self._steps: dict[str, Step] = {}
        self._restore(snapshot.checkpoint or {})
        self._reached: list[str] = []
        self._current: Step | None = None
        # The step being started or skipped: errors before it runs are still about it.
        self._step_in_hand: str | None = None
        self._ran_this_attempt = False
        self._terminating: str | None = None
        self._stop_kind: InterruptReason = "Interrupted"
        self._signalled = False
        self._failure: ContinuableError | None = None
        self._attention = self._observer is not None
        self._cursor_room = self._settings.max_bytes
        self._previous_handlers: dict[int, Any] = {}
        self._checkpointer = Checkpointer(
            self._backend,
            interval_seconds=self._settings.interval_seconds,
            build=self._checkpoint_document,
            on_failure=self._writer_failed,
        )
        self._install_signal_handlers()
        self._checkpointer.start()
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
            self.outcome = self._end(exc)
        finally:
            self._restore_signal_handlers()
        if self.outcome.stop_reason is None:
            return False  # SystemExit, KeyboardInterrupt: the job's own way out, kept as is
        if self._exit_process and self.outcome.exit_code != 0:
            raise SystemExit(self.outcome.exit_code) from None
        return exc is not None

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
        self._check_reached(name)
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
        self._raise_if_stopping(step)
        if isolated and self._ran_this_attempt:
            self._request_termination("the next step is isolated", reason="Isolated")
            self._raise_if_stopping(step)
        if step is not None and not idempotent:
            raise StepNotReplayable(name, step.attempt)
        self._reached.append(name)
        resumed = step is not None
        with self._checkpointer.lock:
            if step is None:
                step = Step(self, name, attempt=self.attempt, cursor=start)
                self._steps[name] = step
            try:
                self._cursor_room = self._measure_room(step)
            except CheckpointTooLarge:
                if not resumed:
                    del self._steps[name]
                raise
            self._current = step
            step._begin(time.monotonic(), resumed=resumed)
        self._ran_this_attempt = True
        if not idempotent:
            self._checkpointer.flush()  # durable before a side effect that must not repeat
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
        text = self._admit_result(name, result)
        try:
            self._durably(lambda: self._backend.save_result(name, text), f"saving result {name}")
            self._results[name] = json.loads(text)
            self._results_bytes += len(name) + len(text)
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

    def _check_reached(self, name: str) -> None:
        if (
            not isinstance(name, str)
            or not _STEP_NAME.match(name)
            or len(name) > STEP_NAME_MAX_LENGTH
        ):
            raise InvalidStepError(
                f"step name {name!r} is invalid: use 1-{STEP_NAME_MAX_LENGTH} letters, digits, "
                "'_', '.' or '-', starting with a letter, digit or '_'"
            )
        if self._current is not None:
            raise InvalidStepError(
                f"step {name!r} was started inside step {self._current.name!r}; steps cannot nest"
            )
        if name in self._reached:
            raise InvalidStepError(
                f"step {name!r} appears twice in this job; step names must be unique"
            )
        recorded = list(self._steps)
        position = len(self._reached)
        completed = [n for n in recorded if self._steps[n].state == "Completed"]
        if position < len(completed) and name != completed[position]:
            raise InvalidStepError(
                f"step {name!r} was reached where the checkpoint has completed step "
                f"{completed[position]!r} (completed, in order: {', '.join(completed)}); the "
                "job's steps changed since it started: restart it from a step"
            )
        unfinished = [n for n in recorded if self._steps[n].state != "Completed"]
        if position == len(completed) and unfinished and name != unfinished[0]:
            raise InvalidStepError(
                f"step {name!r} was reached where step {unfinished[0]!r} should resume at cursor "
                f"{self._steps[unfinished[0]].cursor!r}; the job's steps changed since it "
                "started: restart it from a step"
            )

    # Budgets.

    def _measure_room(self, step: Step) -> int:
        """Bytes left for `step`'s cursor; CheckpointTooLarge if even an empty cursor won't fit."""
        cursor, step._cursor = step._cursor, None
        try:
            fixed = len(encoded(self._checkpoint_document()).encode()) + _GROWTH_RESERVE
        finally:
            step._cursor = cursor
        room = self._settings.max_bytes - fixed - len(',"cursor":')
        if room < 32:
            raise CheckpointTooLarge(
                f"step {step.name!r}: status.checkpoint would need {fixed} bytes before any "
                f"cursor, over its budget of {self._settings.max_bytes} (spec.checkpoint.maxBytes);"
                " use fewer or shorter step names, or raise the budget"
            )
        if cursor is not None:
            self._admit_cursor_size(step, cursor, room)
        return room

    def _admit_cursor(self, step: Step, cursor: Any) -> Any:
        try:
            text = encoded(cursor)
        except (TypeError, ValueError) as err:
            raise CursorError(
                f"step {step.name!r}: cursor {cursor!r:.80} is not JSON-serialisable ({err}); "
                "use a number, a string, or a list/dict of them"
            ) from None
        self._admit_cursor_size(step, cursor, self._cursor_room, len(text.encode()))
        if cursor is None or type(cursor) in (str, int, float, bool):
            return cursor
        return json.loads(text)  # a copy, so later changes to the caller's object don't leak in

    def _admit_cursor_size(
        self, step: Step, cursor: Any, room: int, size: int | None = None
    ) -> None:
        size = len(encoded(cursor).encode()) if size is None else size
        if size > room:
            raise CheckpointTooLarge(
                f"step {step.name!r}: a cursor of {size} bytes leaves no room in status.checkpoint "
                f"({over_budget(size, room)}; spec.checkpoint.maxBytes is "
                f"{self._settings.max_bytes}); keep cursors small: an id, an offset, a page token"
            )

    def _admit_result(self, name: str, result: Any) -> str:
        try:
            text = encoded(result)
        except (TypeError, ValueError) as err:
            raise ResultError(
                f"step {name!r} returned {type(result).__name__} {result!r:.80}, which is not "
                f"JSON-serialisable ({err}); return JSON data, or store it and return its URI"
            ) from None
        total = self._results_bytes + len(name) + len(text.encode())
        problem = over_budget(total, self._settings.results_max_bytes)
        if problem:
            raise ResultTooLarge(
                f"step {name!r}: its result of {len(text.encode())} bytes brings the step results "
                f"to {problem} (spec.checkpoint.resultsMaxBytes); store large data yourself and "
                "return its URI"
            )
        return text

    # Termination.

    def _install_signal_handlers(self) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            # A second Ctrl-C interrupts at once, as Python does without us.
            signal.signal(
                signal.SIGINT, self._previous_handlers.get(signum, signal.default_int_handler)
            )
        self._signalled = True
        self._request_termination(f"{signal.Signals(signum).name} received")

    def _request_termination(self, why: str, *, reason: InterruptReason = "Interrupted") -> None:
        if self._terminating is None:
            self._terminating = why
            self._terminating_since = time.monotonic()
            self._stop_kind = reason
        self._attention = True
        self._checkpointer.wake()

    def _give_up(self) -> bool:
        """Whether to stop retrying the store: only once termination has been running a while."""
        since = self._terminating_since
        return since is not None and time.monotonic() - since > GIVE_UP_AFTER_TERMINATION_SECONDS

    def _durably(self, write: Callable[[], None], what: str) -> None:
        retrying(write, what=what, give_up=self._give_up)

    def _writer_failed(self, error: ContinuableError) -> None:
        self._failure = error
        self._attention = True

    def _raise_if_stopping(self, step: Step | None) -> None:
        if self._failure is not None:
            raise self._failure
        if self._terminating is not None:
            self._checkpointer.flush()
            raise Interrupted(self._terminating, reason=self._stop_kind)

    def _attend(self, step: Step) -> None:
        if self._observer is not None:
            self._observer.on_cursor(self, step)
        self._raise_if_stopping(step)

    def _item_done(self, step: Step, position: int) -> None:
        if self._observer is not None:
            self._observer.on_item(self, step, position)

    def _notify(self, event: str, name: str) -> None:
        if self._observer is not None:
            self._observer.on_step(self, event, name)

    # The end of an attempt.

    def _end(self, exc: BaseException | None) -> Outcome:
        current = self._current
        if current is not None:
            with self._checkpointer.lock:
                current._pause(time.monotonic())
        fenced = exc if isinstance(exc, FencedOut) else self._failure
        if isinstance(fenced, FencedOut):
            # Nothing more is written: the newer attempt's progress must stay as it is.
            logs.event("job.fenced", f"stopping without writing: {fenced}", level=logging.WARNING)
            self._backend.finish(completed=False)
            return Outcome("Interrupted", EXIT_INTERRUPTED, fenced)
        if exc is None:
            return self._stop("Completed", 0, None)
        if isinstance(exc, Interrupted):
            where = f" in step {current.name} at cursor {current.cursor!r}" if current else ""
            why = self._termination_reason() if self._signalled else None
            logs.event(
                "job.interrupted",
                f"interrupted{where}: {why or exc}",
                reason=exc.reason,
                step=current.name if current else None,
                cursor=current.cursor if current else None,
            )
            return self._stop(exc.reason, EXIT_INTERRUPTED, exc)
        if isinstance(exc, StepNotReplayable):
            logs.event("job.failed", f"stopping: {exc}", level=logging.ERROR, step=exc.step)
            return self._stop("NotReplayable", 1, exc, step_name=exc.step)
        if isinstance(exc, (SystemExit, KeyboardInterrupt)) or not isinstance(exc, Exception):
            self._save_quietly()
            self._backend.finish(completed=False)
            return Outcome(None, 0, exc)
        step_name = current.name if current else self._step_in_hand
        where = f"step {step_name} failed" if step_name else "job failed outside any step"
        logs.event(
            "job.failed",
            f"{where}: {type(exc).__name__}: {exc}",
            level=logging.ERROR,
            exc=not isinstance(exc, ContinuableError),
            step=step_name,
        )
        return self._stop("Failed", 1, exc, step_name=step_name)

    def _stop(
        self,
        reason: StopReason,
        exit_code: int,
        exc: BaseException | None,
        *,
        step_name: str | None = None,
    ) -> Outcome:
        extra: dict[str, Any] = {"stopReason": reason}
        if reason in ("Failed", "NotReplayable") and exc is not None:
            extra["error"] = self._error_that_fits(step_name, exc)
        try:
            self._durably(lambda: self._checkpointer.flush(extra), "saving the final checkpoint")
        except (BackendUnavailable, FencedOut) as err:
            # Never report success that was not recorded: the next attempt resumes instead.
            logs.event(
                "job.interrupted",
                f"could not save the final checkpoint ({err}); ending as interrupted",
                level=logging.WARNING,
            )
            self._backend.finish(completed=False)
            return Outcome("Interrupted", EXIT_INTERRUPTED, err)
        except ContinuableError as err:
            logs.event(
                "job.failed", f"could not save the final checkpoint: {err}", level=logging.ERROR
            )
            self._backend.finish(completed=False)
            return Outcome("Failed", 1, err)
        self._backend.finish(completed=reason == "Completed")
        if reason == "Completed":
            logs.event(
                "job.completed", f"job completed (attempt {self.attempt})", attempt=self.attempt
            )
        return Outcome(reason, exit_code, exc)

    def _error_that_fits(self, step: str | None, exc: BaseException) -> dict[str, Any]:
        """The error for status.checkpoint, its message cut so the write stays in budget."""
        error: dict[str, Any] = {"type": type(exc).__name__[:256], "message": ""}
        if step is not None:
            error["step"] = step
        document = {**self._checkpoint_document(), "stopReason": "Failed", "error": error}
        room = self._settings.max_bytes - _GROWTH_RESERVE - len(encoded(document).encode())
        message = str(exc)[: min(4096, max(room, 0))]
        while message and len(encoded(message).encode()) - 2 > room:
            message = message[: len(message) // 2]
        error["message"] = message
        return error

    def _termination_reason(self) -> str | None:
        try:
            return self._backend.termination_reason()
        except ContinuableError:
            return None

    def _save_quietly(self) -> None:
        try:
            self._checkpointer.flush()
        except ContinuableError as err:
            logs.event("job.failed", f"could not save the checkpoint: {err}", level=logging.ERROR)

    # The checkpoint document (status.checkpoint).

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        for wire in checkpoint.get("steps", []):
            step = Step._from_wire(self, wire)
            self._steps[step.name] = step
        current = checkpoint.get("currentStep")
        if current in self._steps and isinstance(checkpoint.get("progress"), dict):
            self._steps[current]._restore_progress(checkpoint["progress"])

    def _checkpoint_document(self) -> dict[str, Any]:
        now = time.monotonic()
        document: dict[str, Any] = {
            "steps": [step._wire(now) for step in self._steps.values()],
            "attempt": self.attempt,
        }
        current = self._current or next(
            (s for s in reversed(self._steps.values()) if s.state != "Completed"), None
        )
        if current is not None:
            document["currentStep"] = current.name
            progress = current._progress_wire()
            if progress is not None:
                document["progress"] = progress
        return document


def _takes_step(fn: Callable[..., Any]) -> bool:
    """Whether `fn` wants the Step: method-reference steps may take no argument at all."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )


def _default_backend() -> Backend:
    """In a pod (CONTINUABLE_JOB set): the ContinuableJob's status; elsewhere a local file."""
    if os.environ.get(ENV_JOB):
        from continuable.backends.kubernetes import KubernetesBackend

        return KubernetesBackend.from_environment()
    from continuable.backends.localfile import LocalFileBackend, default_state_file

    return LocalFileBackend(default_state_file(), _settings_from_environment())


def _settings_from_environment() -> Settings:
    interval = os.environ.get(ENV_CHECKPOINT_INTERVAL)
    if not interval:
        return Settings()
    try:
        seconds = float(interval)
    except ValueError:
        raise ContinuableError(
            f"{ENV_CHECKPOINT_INTERVAL}={interval!r} is not a number of seconds"
        ) from None
    if seconds <= 0:
        raise ContinuableError(f"{ENV_CHECKPOINT_INTERVAL}={interval!r} must be greater than 0")
    return Settings(interval_seconds=seconds)
