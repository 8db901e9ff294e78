"""A job for the operator benchmark: one step that moves its cursor every 10 ms for a while,
so its pod checkpoints once per interval."""

from __future__ import annotations

import os
import time

import continuable

SECONDS = float(os.environ.get("TICK_SECONDS", "60"))

with continuable.Job() as job:

    @job.step
    def tick(step: continuable.Step) -> None:
        deadline = time.monotonic() + SECONDS
        i = step.cursor or 0
        while time.monotonic() < deadline:
            step.set(i)
            i += 1
            time.sleep(0.01)
