"""The job every soak pod runs: a `fetch` step, a loop over SOAK_ITEMS items, a `notify` step.

Each side effect appends one line to the job's ledger (SOAK_LEDGER, a file on the host: the
process node runs pods as host processes), fsync'd before the job moves on:

    <job>,fetch,<attempt>,<pid>,<epoch>      the fetch step ran (it returns the item count)
    <job>,<item>,<attempt>,<pid>,<epoch>     item <item> (0 .. SOAK_ITEMS-1) was done
    <job>,notify,<attempt>,<pid>,<epoch>     the idempotent=False notify step ran

with a sixth field, the job's UID (CONTINUABLE_JOB_UID), when the operator gives it: a job
deleted and created again under the same name shares its ledger file with its predecessor.

The ledger is append-only (O_APPEND: a zombie and its replacement may write at once) and is the
judges' truth of what ran, independent of anything the operator says. An item is recorded once
its work (SOAK_ITEM_SECONDS of sleep) is done, right before the SDK advances the cursor.

SOAK_ISOLATED=1 splits the loop in two steps, the second `isolated=True` (it starts in a fresh
attempt). SOAK_TEMPLATE_VERSION is not read: the soak changes it to roll out a new template.
"""

from __future__ import annotations

import os
import sys
import time

import continuable

JOB = os.environ.get("CONTINUABLE_JOB", "local")
ATTEMPT = os.environ.get("CONTINUABLE_ATTEMPT", "0")
UID = os.environ.get("CONTINUABLE_JOB_UID")
ITEMS = int(os.environ["SOAK_ITEMS"])
ITEM_SECONDS = float(os.environ.get("SOAK_ITEM_SECONDS", "0.2"))
ISOLATED = os.environ.get("SOAK_ISOLATED") == "1"

_ledger = os.open(os.environ["SOAK_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def record(what: str | int) -> None:
    line = f"{JOB},{what},{ATTEMPT},{os.getpid()},{time.time():.6f}"
    line += f",{UID}\n" if UID else "\n"
    os.write(_ledger, line.encode())
    os.fsync(_ledger)


def work(step: continuable.Step, start: int, stop: int) -> None:
    for item in step.range(start, stop):
        time.sleep(ITEM_SECONDS)
        record(item)


with continuable.Job() as job:

    @job.step
    def fetch(step: continuable.Step) -> dict[str, int]:
        record("fetch")
        return {"items": ITEMS}

    total = int(job.result("fetch")["items"])
    if ISOLATED:
        half = total // 2
        job.step("items_a", lambda step: work(step, 0, half))
        job.step("items_b", lambda step: work(step, half, total), isolated=True)
    else:
        job.step("items", lambda step: work(step, 0, total))

    job.step("notify", lambda step: record("notify"), idempotent=False)

sys.exit(0)
