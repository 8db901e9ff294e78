"""A job whose one step runs STEP_SECONDS without a cursor: its checkpoint ages while it runs
(the priority boost's test: the job that saved least recently is the one not to preempt)."""

import os
import time

import continuable

SECONDS = float(os.environ.get("STEP_SECONDS", "60"))

with continuable.Job() as job:

    @job.step
    def think(step: continuable.Step) -> None:
        time.sleep(SECONDS)
