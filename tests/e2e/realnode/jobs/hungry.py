"""Run in a real container with a memory limit: the first attempt allocates past the limit half
way through its items, so the kernel OOM-kills the container; later attempts resume at the
cursor and finish without allocating. The ledger records which attempt did which item."""

from __future__ import annotations

import os
import time
from pathlib import Path

import continuable

LEDGER = Path(os.environ["LEDGER_FILE"])
ITEMS = int(os.environ.get("ITEMS", "60"))
OOM_AT = int(os.environ.get("OOM_AT", "30"))
ITEM_SECONDS = float(os.environ.get("ITEM_SECONDS", "0.05"))

with continuable.Job() as job:

    @job.step
    def work(step: continuable.Step) -> None:
        hoard: list[bytes] = []
        with LEDGER.open("a", encoding="utf-8", buffering=1) as ledger:
            for i in step.range(ITEMS):
                time.sleep(ITEM_SECONDS)
                ledger.write(f"{i} attempt={job.attempt}\n")
                if job.attempt == 1 and i == OOM_AT:
                    while True:  # 16 MiB at a time, touched, until the limit's OOM kill
                        hoard.append(os.urandom(16 << 20))
