"""Bounded waiting: every wait in the cluster code has a deadline and says what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Right after the apiserver starts (or a CRD is created) it answers some requests with
# 429 "storage is (re)initializing" or 503 while its caches fill; those are worth retrying.
TRANSIENT_MARKERS: tuple[str, ...] = (
    "storage is (re)initializing",
    "TooManyRequests",
    "ServiceUnavailable",
    "the server is currently unable to handle the request",
    "connection refused",
    "connection reset by peer",
    "unexpected EOF",
    # Discovery lags a moment behind a newly established CRD.
    "the server could not find the requested resource",
    "no matches for kind",
    "etcdserver: leader changed",
)


class WaitTimeout(TimeoutError):
    pass


def is_transient(message: str) -> bool:
    return any(marker in message for marker in TRANSIENT_MARKERS)


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    max_interval: float = 1.0,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call `check` until it returns something other than None/False, at most `timeout` seconds.

    `detail` is called only on timeout, to put the reason (a log tail, the last error) into the
    exception instead of leaving the reader to guess.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_interval)
