"""The SDK's errors, drawn once:

    Exception
    └── ContinuableError            anything the SDK refuses or cannot do
        ├── InvalidStepError        steps used so that a resume could go wrong (duplicate,
        │                           nested, reordered, unknown result, more than 100)
        ├── StepNotReplayable       an idempotent=False step was started by an earlier attempt
        ├── CursorError             a cursor that is not JSON or cannot advance
        ├── ItemFailed              an item of a concurrent step raised (after its retries)
        ├── ResultError             a step result that is not JSON
        ├── BudgetExceeded          a write would pass its byte budget
        │   ├── CheckpointTooLarge  status.checkpoint (spec.checkpoint.maxBytes)
        │   └── ResultTooLarge      the results ConfigMap (spec.checkpoint.resultsMaxBytes)
        └── BackendError            the checkpoint store failed
            └── BackendUnavailable  ... for now (connection, 429, 5xx, timeout): retried
    BaseException
    ├── Interrupted                 termination requested; the cursor is saved
    └── FencedOut                   a newer attempt owns the job, or the job was deleted (and
                                    maybe created again under its name); this pod must stop

`Interrupted` and `FencedOut` derive from `BaseException` on purpose: an `except Exception` in a
job's code must not swallow the request to stop, nor let a zombie go on with its side effects.
"""

from __future__ import annotations

from typing import Literal

InterruptReason = Literal["Interrupted", "Isolated"]


class ContinuableError(Exception):
    """Base of every error the SDK raises."""


class InvalidStepError(ContinuableError):
    """Steps were declared so that resuming could run the wrong code."""


class StepNotReplayable(ContinuableError):
    """A step marked idempotent=False was started by an earlier attempt and did not finish."""

    def __init__(self, step: str, attempt: int) -> None:
        super().__init__(
            f"step {step!r} is not idempotent and was started by attempt {attempt} without "
            "finishing; it will not run twice. Decide, then restart the job from a step."
        )
        self.step = step
        self.attempt = attempt


class CursorError(ContinuableError, ValueError):
    """A cursor that cannot be saved or advanced."""


class ItemFailed(ContinuableError):
    """An item of a concurrent step raised (after its retries): the step fails once the items
    in flight have finished and been recorded. `__cause__` is the item's exception."""

    def __init__(self, step: str, index: int, error: BaseException) -> None:
        super().__init__(f"step {step!r}: item {index} failed: {type(error).__name__}: {error}")
        self.step = step
        self.index = index


class ResultError(ContinuableError, ValueError):
    """A step result that cannot be saved as JSON."""


class BudgetExceeded(ContinuableError):
    """A write would pass its byte budget."""


class CheckpointTooLarge(BudgetExceeded):
    """status.checkpoint would pass spec.checkpoint.maxBytes."""


class ResultTooLarge(BudgetExceeded):
    """The step results would pass spec.checkpoint.resultsMaxBytes."""


class FencedOut(BaseException):
    """A newer attempt owns the job, or the job is gone: this attempt's writes are refused and it
    stops without writing; the job exits with code 75."""


class BackendError(ContinuableError):
    """The checkpoint store failed."""


class BackendUnavailable(BackendError):
    """The checkpoint store did not answer or asked us to wait; the write may be retried."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Interrupted(BaseException):
    """Termination was requested and the cursor is saved; the job exits with code 75."""

    def __init__(
        self, message: str = "termination requested", *, reason: InterruptReason = "Interrupted"
    ) -> None:
        super().__init__(message)
        self.reason: InterruptReason = reason
