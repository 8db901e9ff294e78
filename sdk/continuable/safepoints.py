"""Safe points: where a running step stops when asked, and waits while the store is overdue.

A step reaches one at each `set()` (and `checkpoint()`, and between a concurrent step's items)
once the job's one flag is raised: termination was requested, the writer failed, the store is
overdue, or a test observes. Stopping saves the cursor first, so the next attempt resumes
there; holding back waits for a save, so the cursor never runs much further ahead of the last
saved one than a SIGKILL may repeat.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from continuable import logs
from continuable.checkpointing import HOLD_BACK_AFTER_INTERVALS
from continuable.errors import BackendUnavailable, Interrupted

if TYPE_CHECKING:
    from continuable.jobs import Job
    from continuable.steps import BaseStep

# While held back, how often the job looks again whether it must stop instead (a signal cannot
# wake the wait safely: its handler may run while this thread holds the event's lock).
HOLD_BACK_POLL_SECONDS = 0.1


def raise_if_stopping(job: Job) -> None:
    """Raise what stops the attempt, if anything does: the writer's failure, or Interrupted
    once the cursor is saved (or could not be, within the grace period)."""
    stopping = job._stopping
    if stopping.failure is not None:
        raise stopping.failure
    if stopping.why is not None:
        try:
            job._durably(job._checkpointer.flush, "saving the cursor before stopping")
        except BackendUnavailable as err:
            # The job stops all the same; the next attempt resumes at the last saved cursor.
            why = f"{stopping.why}; the cursor could not be saved ({err})"
            raise Interrupted(why, reason=stopping.kind) from None
        raise Interrupted(stopping.why, reason=stopping.kind)


def attend(job: Job, step: BaseStep) -> None:
    """What a safe point does when the flag is raised."""
    if job._observer is not None:
        job._observer.on_cursor(job, step)
    if job._checkpointer.overdue():
        hold_back(job)
    raise_if_stopping(job)
    # Lowered first and raised again if still needed: a request that comes in between is
    # seen by the check, never lost.
    job._attention = False
    if job._observer is not None or job._checkpointer.overdue() or job._stopping.asked:
        job._attention = True


def hold_back(job: Job) -> None:
    """Back-pressure: wait until the writer saves the cursor, or the attempt must stop."""
    logs.event(
        "checkpoint.overdue",
        f"no checkpoint saved for {HOLD_BACK_AFTER_INTERVALS} intervals; the job waits for "
        "the store so it does not run further ahead of its last saved cursor",
        level=logging.WARNING,
    )
    began = time.monotonic()
    while job._checkpointer.overdue() and not job._stopping.asked:
        job._checkpointer.wait_for_save(HOLD_BACK_POLL_SECONDS)
    if not job._stopping.asked:
        logs.event(
            "checkpoint.saved",
            f"the checkpoint is saved again; the job goes on after waiting "
            f"{time.monotonic() - began:.1f}s",
        )
