"""`status.checkpoint`: the one part of status the SDK in the job's pod writes.

It is small by design (budget `spec.checkpoint.maxBytes`, 16 KiB by default): step names, the
current step's cursor, progress and timings. Step results live in the `<job>-results` ConfigMap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from continuable.names import MAX_STEPS

from .base import ApiModel
from .spec import StepName

StepState = Literal["Started", "Completed"]
StopReason = Literal["Completed", "Interrupted", "Isolated", "Failed", "NotReplayable"]


class StepRecord(ApiModel):
    """What is known of one step."""

    name: StepName = Field(description="The step's name.")
    state: StepState = Field(
        description="Started: begun by some attempt and not finished. Completed: never runs again."
    )
    cursor: Any = Field(
        default=None,
        description="Last saved cursor (any JSON value); the step resumes from it.",
    )
    attempt: int = Field(ge=1, description="The attempt that first started this step.")
    started_at: datetime | None = Field(default=None, description="When the step first started.")
    completed_at: datetime | None = Field(default=None, description="When the step completed.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="Time spent in the step, summed over attempts."
    )


class Progress(ApiModel):
    """Progress of the current step, as reported by step.progress() or the iteration helpers."""

    done: int = Field(ge=0, description="Items done.")
    total: int | None = Field(default=None, ge=0, description="Items in all, when known.")
    summary: str = Field(
        max_length=64, description='"done/total", or "done" without a total (the Progress column).'
    )


class StepError(ApiModel):
    """The error that ended an attempt."""

    step: StepName | None = Field(default=None, description="The step that raised it.")
    type: str = Field(max_length=256, description="The exception's type.")
    message: str = Field(max_length=4096, description="The exception's message.")


class Checkpoint(ApiModel):
    """Progress saved by the SDK; a new attempt resumes from it. Written by the job's pod only."""

    steps: list[StepRecord] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="Steps in the order they first ran; completed ones are skipped on resume.",
    )
    current_step: StepName | None = Field(
        default=None, description="The step running now, or last running (the Step column)."
    )
    progress: Progress | None = Field(default=None, description="Progress of the current step.")
    updated_at: datetime | None = Field(default=None, description="When this was written.")
    attempt: int | None = Field(default=None, ge=1, description="The attempt that wrote it.")
    stop_reason: StopReason | None = Field(
        default=None,
        description="Why the writing attempt ended by itself: Completed, Interrupted (cursor "
        "flushed, exit 75), Isolated (an isolated step starts in a fresh attempt, exit 75), "
        "Failed (user code raised, exit 1) or NotReplayable (a non-idempotent step was started "
        "by an earlier attempt, exit 1).",
    )
    error: StepError | None = Field(default=None, description="Set when stopReason is Failed.")
