"""Run in a real container: a cursor loop that ignores SIGTERM, so the runtime has to SIGKILL it
when the grace period runs out. Its ledger (LEDGER_FILE, one line per item and attempt) shows
how many items the next attempt repeated: at most one checkpoint interval's worth."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import continuable

LEDGER = Path(os.environ["LEDGER_FILE"])
ITEMS = int(os.environ.get("ITEMS", "400"))
ITEM_SECONDS = float(os.environ.get("ITEM_SECONDS", "0.05"))

with continuable.Job() as job:

    @job.step
    def work(step: continuable.Step) -> None:
        # After the SDK installed its handler: this job never hears the runtime's SIGTERM.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with LEDGER.open("a", encoding="utf-8", buffering=1) as ledger:
            for i in step.range(ITEMS):
                time.sleep(ITEM_SECONDS)
                ledger.write(f"{i} attempt={job.attempt}\n")
