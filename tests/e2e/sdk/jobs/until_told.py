"""Run in a job's pod: one step that says it runs, then waits for the test's go file and asks
itself to stop as a SIGTERM does, so its one write (the cursor saved on termination) happens
exactly when the test wants, here after its job was deleted and created again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import continuable

EVENTS = Path(os.environ["EVENTS"])
GO = Path(os.environ["GO"])

with continuable.Job() as job:

    @job.step
    def wait(step: continuable.Step) -> None:
        EVENTS.write_text("waiting\n", encoding="utf-8")
        while not GO.exists():
            step.checkpoint()
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        while True:
            step.checkpoint()
            time.sleep(0.05)
