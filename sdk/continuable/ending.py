"""How an attempt ends: what it says in its final checkpoint and which exit code it gives.

The operator classifies a finished pod by its exit code and `status.checkpoint.stopReason`, so
both must tell the truth: 0 and `Completed` only when the completion was saved; 75 (EX_TEMPFAIL)
for a clean stop with the cursor saved, or one whose last write could not be made (the next
attempt resumes from the last saved checkpoint); 1 for a failure, recorded with its error. A
pod fenced out by a newer attempt writes nothing more and exits 75.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from continuable import logs
from continuable.errors import (
    BackendUnavailable,
    ContinuableError,
    FencedOut,
    Interrupted,
    StepNotReplayable,
)
from continuable.names import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from continuable.backends import Backend
    from continuable.budgets import Budgets
    from continuable.checkpointing import Checkpointer
    from continuable.steps import BaseStep
    from continuable.stopping import Stopping

StopReason = Literal["Completed", "Interrupted", "Isolated", "Failed", "NotReplayable"]


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    stop_reason: StopReason | None
    exit_code: int
    error: BaseException | None = None


def stop_fenced_out(backend: Backend, fenced: FencedOut) -> Outcome:
    """Nothing more is written: the progress of the attempt (or job) that owns it stays as is."""
    logs.event("job.fenced", f"stopping without writing: {fenced}", level=logging.WARNING)
    backend.finish(completed=False)
    return Outcome("Interrupted", EXIT_INTERRUPTED, fenced)


class Ending:
    """Ends one attempt: the final checkpoint, the backend's release, the outcome.

    `durably` retries a write as every other durable write of the attempt is retried.
    """

    def __init__(
        self,
        *,
        attempt: int,
        backend: Backend,
        checkpointer: Checkpointer,
        budgets: Budgets,
        stopping: Stopping,
        durably: Callable[[Callable[[], None], str], None],
    ) -> None:
        self._attempt = attempt
        self._backend = backend
        self._checkpointer = checkpointer
        self._budgets = budgets
        self._stopping = stopping
        self._durably = durably

    def end(
        self, exc: BaseException | None, *, current: BaseStep | None, step_in_hand: str | None
    ) -> Outcome:
        """The outcome of an attempt that ended with `exc` (None: every step ran), in step
        `current`, or while step `step_in_hand` was being started or skipped."""
        if current is not None:
            with self._checkpointer.lock:
                current._pause(time.monotonic())
        fenced = exc if isinstance(exc, FencedOut) else self._stopping.failure
        if isinstance(fenced, FencedOut):
            return stop_fenced_out(self._backend, fenced)
        if exc is None:
            return self._stop("Completed", 0, None)
        if isinstance(exc, Interrupted):
            where = f" in step {current.name} at cursor {current.cursor!r}" if current else ""
            why = self._termination_reason() if self._stopping.signalled else None
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
        step_name = current.name if current else step_in_hand
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
            extra["error"] = self._budgets.error_that_fits(step_name, exc)
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
                "job.completed",
                f"job completed (attempt {self._attempt})",
                attempt=self._attempt,
            )
        return Outcome(reason, exit_code, exc)

    def _termination_reason(self) -> str | None:
        try:
            return self._backend.termination_reason()
        except ContinuableError:
            return None

    def _save_quietly(self) -> None:
        try:
            self._checkpointer.flush()
        except (ContinuableError, FencedOut) as err:
            logs.event("job.failed", f"could not save the checkpoint: {err}", level=logging.ERROR)
