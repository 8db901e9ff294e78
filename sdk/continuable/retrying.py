"""Retrying writes the checkpoint store could not take just now (connection refused, 429, 5xx,
timeouts), so a blip of the API server never stops the work.

Writes are retried until they succeed, or until the caller gives up: a pod gives up once its
termination was requested and the grace period is running out, so that a completion it could
not record ends the attempt as interrupted, never as succeeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from continuable import logs
from continuable.errors import BackendUnavailable

T = TypeVar("T")

FIRST_DELAY = 0.2
MAX_DELAY = 5.0


def next_delay(previous: float, error: BackendUnavailable) -> float:
    """Exponential backoff from FIRST_DELAY to MAX_DELAY, never sooner than Retry-After."""
    doubled = min(max(previous * 2, FIRST_DELAY), MAX_DELAY)
    return min(max(doubled, error.retry_after or 0.0), 60.0)


def retrying(
    call: Callable[[], T],
    *,
    what: str,
    give_up: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    delay = 0.0
    failures = 0
    while True:
        try:
            result = call()
        except BackendUnavailable as err:
            failures += 1
            if give_up():
                raise
            delay = next_delay(delay, err)
            if failures == 1:
                logs.event(
                    "backend.retrying",
                    f"{what} failed ({err}); retrying",
                    level=logging.WARNING,
                    error=str(err),
                )
            sleep(delay)
            continue
        if failures:
            logs.event("backend.recovered", f"{what} succeeded after {failures} retries")
        return result
