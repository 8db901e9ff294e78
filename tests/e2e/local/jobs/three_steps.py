"""A job for the subprocess tests: three steps, the middle one over 2,000 items.

Every side effect is appended to $EVENTS (one line each, flushed), so the test can tell exactly
what ran in which attempt, even after a SIGKILL.
"""

from __future__ import annotations

import os
import sys
import time

import continuable

EVENTS = os.environ["EVENTS"]
ITEM_SECONDS = float(os.environ.get("ITEM_SECONDS", "0.001"))
FAIL_AT = int(os.environ.get("FAIL_AT", "-1"))


def record(line: str) -> None:
    with open(EVENTS, "a", encoding="utf-8") as events:
        events.write(f"{line} {time.monotonic():.6f}\n")


record(f"attempt pid={os.getpid()} version={os.environ.get('JOB_VERSION', 'v1')}")

with continuable.Job() as job:

    @job.step
    def fetch_orders(step: continuable.Step) -> list[int]:
        record("fetch")
        return list(range(2000))

    ids = job.result("fetch_orders")

    @job.step
    def process_orders(step: continuable.Step) -> None:
        for i in step.range(len(ids)):
            if ids[i] == FAIL_AT:
                raise RuntimeError(f"order {ids[i]} is malformed")
            time.sleep(ITEM_SECONDS)
            record(f"item {ids[i]}")

    job.step("notify", lambda: record("notify"))

sys.exit(0)
