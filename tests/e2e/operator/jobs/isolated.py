"""A job whose middle step is isolated: it must start in an attempt of its own."""

from __future__ import annotations

import os

import continuable

EVENTS = os.environ["EVENTS"]


def record(line: str) -> None:
    with open(EVENTS, "a", encoding="utf-8") as events:
        events.write(f"{line} attempt={os.environ.get('CONTINUABLE_ATTEMPT')}\n")


with continuable.Job() as job:
    job.step("prepare", lambda: record("prepare"))
    job.step("heavy", lambda: record("heavy"), isolated=True)
    job.step("finish", lambda: record("finish"))
