"""Which step may come next: a resume is only safe when the script reaches its steps as the
checkpoint recorded them.

A step is found again by its name alone, so a name that is invalid, repeated, nested in another
step, or reached in another order than an earlier attempt recorded would make a resume run the
wrong code or skip the wrong work. `check_reached` refuses it with `InvalidStepError`, naming the
steps, before the step runs; so is a step past the most `status.checkpoint` records, which the
API server would otherwise refuse at a write, counted as a failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from continuable.errors import InvalidStepError
from continuable.names import MAX_STEPS, STEP_NAME_MAX_LENGTH, STEP_NAME_PATTERN

if TYPE_CHECKING:
    from continuable.steps import BaseStep

_STEP_NAME = re.compile(STEP_NAME_PATTERN)


def check_reached(
    name: object,
    *,
    current: BaseStep | None,
    reached: Sequence[str],
    recorded: Mapping[str, BaseStep],
) -> None:
    """Refuse step `name` when running it now could go wrong on a resume.

    `current` is the step running now, `reached` the steps this attempt reached so far, and
    `recorded` every step the checkpoint knows, in the order they first ran.
    """
    if not isinstance(name, str) or not _STEP_NAME.match(name) or len(name) > STEP_NAME_MAX_LENGTH:
        raise InvalidStepError(
            f"step name {name!r} is invalid: use 1-{STEP_NAME_MAX_LENGTH} letters, digits, "
            "'_', '.' or '-', starting with a letter, digit or '_'"
        )
    if current is not None:
        raise InvalidStepError(
            f"step {name!r} was started inside step {current.name!r}; steps cannot nest"
        )
    if name in reached:
        raise InvalidStepError(
            f"step {name!r} appears twice in this job; step names must be unique"
        )
    position = len(reached)
    completed = [n for n, step in recorded.items() if step.state == "Completed"]
    if position < len(completed) and name != completed[position]:
        raise InvalidStepError(
            f"step {name!r} was reached where the checkpoint has completed step "
            f"{completed[position]!r} (completed, in order: {', '.join(completed)}); the "
            "job's steps changed since it started: restart it from a step"
        )
    unfinished = [n for n, step in recorded.items() if step.state != "Completed"]
    if position == len(completed) and unfinished and name != unfinished[0]:
        raise InvalidStepError(
            f"step {name!r} was reached where step {unfinished[0]!r} should resume at cursor "
            f"{recorded[unfinished[0]].cursor!r}; the job's steps changed since it "
            "started: restart it from a step"
        )
    if name not in recorded and len(recorded) >= MAX_STEPS:
        raise InvalidStepError(
            f"step {name!r} would be step {len(recorded) + 1}, but a job has at most "
            f"{MAX_STEPS} steps (status.checkpoint records each one); merge small steps, or "
            "loop over the work inside one step with a cursor"
        )
