"""How one step of an attempt runs around its code: skipped (an earlier attempt completed it),
or started or resumed (its start recorded first for a step that must not run twice), then
completed (its result saved before its completion is recorded, so a completed step always has
its result).

The step's code runs between `open_step` and `close_step`: on the job's thread for a `with`
job, on the event loop for an `async with` job, which calls these two on a thread (they write).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from continuable import logs
from continuable.errors import (
    BackendUnavailable,
    CheckpointTooLarge,
    Interrupted,
    StepNotReplayable,
)
from continuable.ordering import check_reached
from continuable.safepoints import raise_if_stopping
from continuable.steps import BaseStep

if TYPE_CHECKING:
    from continuable.jobs import Job


@dataclass(frozen=True)
class Skipped:
    """The step was completed by an earlier attempt: its result."""

    result: Any


def open_step(
    job: Job, name: str, start: Any, isolated: bool, idempotent: bool
) -> BaseStep | Skipped:
    """Skip the step, or make it the current one (started or resumed) for its code to run."""
    check_reached(name, current=job._current, reached=job._reached, recorded=job._steps)
    job._step_in_hand = name
    step = job._steps.get(name)
    if step is not None and step.state == "Completed":
        job._reached.append(name)
        logs.event(
            "step.skipped",
            f"step {name} skipped: completed by attempt {step.attempt}",
            step=name,
            attempt=job.attempt,
        )
        job._notify("skipped", name)
        job._step_in_hand = None
        return Skipped(job.result(name))
    raise_if_stopping(job)
    if isolated and job._ran_this_attempt:
        job._request_termination("the next step is isolated", reason="Isolated")
        raise_if_stopping(job)
    if step is not None and not idempotent:
        raise StepNotReplayable(name, step.attempt)
    job._reached.append(name)
    resumed = step is not None
    with job._checkpointer.lock:
        if step is None:
            step = job._step_kind(job, name, attempt=job.attempt, cursor=start)
            job._steps[name] = step
        try:
            job._budgets.make_room(step)
        except CheckpointTooLarge:
            if not resumed:
                del job._steps[name]
            raise
        job._current = step
        step._begin(time.monotonic(), resumed=resumed)
        if not idempotent:
            # Under the lock, so the writer thread never saves a start this did not save.
            _record_start(job, step)
    job._ran_this_attempt = True
    if resumed:
        logs.event(
            "step.resumed",
            f"step {name} resumed at cursor {step.cursor!r}",
            step=name,
            cursor=step.cursor,
            attempt=job.attempt,
        )
    else:
        logs.event("step.started", f"step {name} started", step=name, attempt=job.attempt)
    job._notify("resumed" if resumed else "started", name)
    job._step_began = time.monotonic()
    return step


def pause(job: Job, step: BaseStep) -> None:
    """The step's code has returned or raised: its running time stops counting."""
    with job._checkpointer.lock:
        step._pause(time.monotonic())


def close_step(job: Job, step: BaseStep, result: Any) -> Any:
    """Save the result, then record the completion; returns the result as saved (JSON)."""
    name = step.name
    text = job._budgets.admit_result(name, result)
    try:
        job._durably(lambda: job._backend.save_result(name, text), f"saving result {name}")
        job._results[name] = json.loads(text)
        job._budgets.count_result(name, text)
        with job._checkpointer.lock:
            step._complete(time.monotonic())
            job._current = None
        job._durably(job._checkpointer.flush, f"recording the completion of step {name}")
    except BackendUnavailable as err:
        with job._checkpointer.lock:
            step.state, step.completed_at = "Started", None
            job._current = step
        raise Interrupted(
            f"the completion of step {name} could not be saved before the grace period "
            f"ran out ({err}); the step runs again"
        ) from None
    took = time.monotonic() - job._step_began
    logs.event(
        "step.completed",
        f"step {name} completed in {took:.3f}s",
        step=name,
        seconds=round(took, 3),
        attempt=job.attempt,
    )
    job._notify("completed", name)
    job._step_in_hand = None
    return job._results[name]


def _record_start(job: Job, step: BaseStep) -> None:
    """Save that a non-idempotent step started before its side effect runs; if that cannot be
    saved, the step did not start, so the next attempt runs it instead of refusing it."""
    try:
        job._durably(job._checkpointer.flush, f"recording the start of step {step.name}")
    except BackendUnavailable as err:
        # Always a new step: one an earlier attempt recorded stopped at StepNotReplayable.
        del job._steps[step.name]
        job._reached.remove(step.name)
        job._current = None
        raise Interrupted(
            f"the start of step {step.name} could not be saved before the grace period ran "
            f"out ({err}); it did not start and runs in the next attempt"
        ) from None
