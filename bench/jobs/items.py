"""The work of the batch/v1 Job comparison (bench/versus_job.py): ITEMS items of ITEM_SECONDS
each, every item appended to LEDGER ("<item> <pid>") once done.

With RESUMABLE=1 the loop is a ContinuableJob step that keeps its cursor; without, it is the same
loop with no SDK, as a batch/v1 Job runs it: a new pod starts again from item 0."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ITEMS = int(os.environ["ITEMS"])
ITEM_SECONDS = float(os.environ["ITEM_SECONDS"])
LEDGER = os.environ["LEDGER"]


def work(first: int, done: Callable[[int], None]) -> None:
    with open(LEDGER, "a") as ledger:
        for item in range(first, ITEMS):
            time.sleep(ITEM_SECONDS)
            ledger.write(f"{item} {os.getpid()}\n")
            ledger.flush()
            done(item + 1)


if os.environ.get("RESUMABLE") == "1":
    import continuable

    with continuable.Job() as job:

        @job.step
        def items(step: continuable.Step) -> None:
            work(step.cursor or 0, step.set)

else:
    work(0, lambda _: None)
