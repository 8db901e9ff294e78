"""A concurrent step for the e2e tests: ITEMS items of ITEM_SECONDS each (a stand-in for a model
call), CONCURRENCY at a time with `amap` in an async job.

Each item appends `start <i>` when it begins and `item <i>` when its side effect is done to
$EVENTS (flushed, with the host's monotonic time), so the test counts exactly which items ran,
finished, and ran again. With KILL_AFTER, the first attempt SIGKILLs itself once that many
items are done: nothing runs after, not even the SDK's last write.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import continuable

EVENTS = os.environ["EVENTS"]
ITEMS = int(os.environ.get("ITEMS", "2000"))
ITEM_SECONDS = float(os.environ.get("ITEM_SECONDS", "0.05"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "32"))
KILL_AFTER = int(os.environ.get("KILL_AFTER", "0"))


def record(line: str) -> None:
    with open(EVENTS, "a", encoding="utf-8") as events:
        events.write(f"{line} {time.monotonic():.6f}\n")


async def main() -> None:
    record(f"attempt pid={os.getpid()}")
    finished = 0
    async with continuable.Job() as job:

        @job.step
        async def embed(step: continuable.AsyncStep) -> int:
            async def item(i: int) -> None:
                nonlocal finished
                record(f"start {i}")
                await asyncio.sleep(ITEM_SECONDS)
                record(f"item {i}")
                finished += 1
                if KILL_AFTER and job.attempt == 1 and finished >= KILL_AFTER:
                    os.kill(os.getpid(), signal.SIGKILL)

            await step.amap(item, range(ITEMS), concurrency=CONCURRENCY)
            return ITEMS

        await embed


asyncio.run(main())
