"""A nightly order batch as a ContinuableJob: fetch the orders, process 5,000 of them, notify.

`process_orders` keeps a cursor over the order ids, so an interruption costs nothing but the
order in flight: the next attempt skips `fetch_orders` (its result, the ids, is saved with the
job) and goes on at the first unprocessed order. `notify` runs once, at the end.

    python examples/order-batch/job.py        # Ctrl-C half way, then run it again: it resumes

Settings come from the environment (see README.md): ORDERS, ITEM_SECONDS, FETCH_SECONDS,
LEDGER_FILE.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import continuable

FIRST_ORDER_ID = 100_001


@dataclass(frozen=True)
class Settings:
    ledger: Path
    orders: int = 5000
    item_seconds: float = 0.002
    fetch_seconds: float = 1.0

    @classmethod
    def from_environment(cls) -> Settings:
        # Per job, so two runs of the example never write to one ledger.
        scratch = Path("/tmp/continuable-examples/order-batch") / os.environ.get(
            "CONTINUABLE_JOB", "local"
        )
        return cls(
            ledger=Path(os.environ.get("LEDGER_FILE", scratch / "ledger.txt")),
            orders=int(os.environ.get("ORDERS", "5000")),
            item_seconds=float(os.environ.get("ITEM_SECONDS", "0.002")),
            fetch_seconds=float(os.environ.get("FETCH_SECONDS", "1.0")),
        )


def order_batch(job: continuable.Job, settings: Settings | None = None) -> None:
    settings = settings or Settings.from_environment()

    @job.step
    def fetch_orders(step: continuable.Step) -> list[int]:
        """The ids of tonight's orders (a slow query in real life). Only ids are saved with the
        job; the orders themselves stay in their database."""
        time.sleep(settings.fetch_seconds)
        return [FIRST_ORDER_ID + n for n in range(settings.orders)]

    ids: list[int] = job.result("fetch_orders")

    @job.step
    def process_orders(step: continuable.Step) -> dict[str, Any]:
        """One order at a time; `step.range` resumes at the cursor and moves it after each
        order. The ledger records which attempt processed which order, so a run can prove
        that each order was processed exactly once."""
        settings.ledger.parent.mkdir(parents=True, exist_ok=True)
        if not step.resumed:
            settings.ledger.write_text("", encoding="utf-8")  # a fresh run starts a new ledger
        else:
            print(f"resuming: {step.cursor} of {len(ids)} orders already processed", flush=True)
        # Line-buffered: an order's line is written before the cursor moves past it.
        with settings.ledger.open("a", encoding="utf-8", buffering=1) as ledger:
            for i in step.range(len(ids)):
                time.sleep(settings.item_seconds)  # the work of one order
                ledger.write(f"{ids[i]} attempt={job.attempt}\n")
        return {"processed": len(ids)}

    @job.step
    def notify(step: continuable.Step) -> dict[str, Any]:
        """Tell finance the batch is done. At least once: a notification repeated after a crash
        at this very point is acceptable here; mark a step `idempotent=False` when it is not."""
        print(f"notified finance@example.com: {len(ids)} orders processed", flush=True)
        return {"notified": "finance@example.com", "orders": len(ids)}


def main() -> None:
    # Both examples' scripts are named job.py: give this one its own local state file.
    os.environ.setdefault("CONTINUABLE_STATE_FILE", ".continuable/order-batch.json")
    with continuable.Job() as job:
        order_batch(job)


if __name__ == "__main__":
    main()
