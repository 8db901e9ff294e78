"""Writes checkpoints: coalesced on a timer, at once when it matters.

The job's hot path only changes memory. A writer thread saves the checkpoint at most once per
interval when it changed (latest cursor wins), so a slow API server never stalls the job's loop;
step boundaries and the end of an attempt write synchronously through `flush()`. A termination
signal wakes the writer at once, so the last cursor is saved even if the job's code never calls
into the SDK again before the grace period ends.

Back-pressure: while the store refuses writes, the cursor in memory runs ahead of the last one
saved, and a SIGKILL would make the next attempt repeat all of that lead. Once nothing was saved
for `HOLD_BACK_AFTER_INTERVALS` intervals, the writer calls `on_overdue`, and the job's next
`set()` waits for a write (`wait_for_save`) instead of running further ahead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from continuable import logs
from continuable.backends import Backend
from continuable.errors import BackendUnavailable, ContinuableError, FencedOut
from continuable.retrying import next_delay

# How many checkpoint intervals the cursor may run ahead of the last saved checkpoint before
# set() waits for a write. One interval is the normal lead (writes are coalesced once per
# interval); a second absorbs a slow or retried write (retries come at most an interval apart);
# a third lets a short outage (an API server restart, an etcd leader election) pass without
# stalling the job at the default 10 s interval. Past it, what a SIGKILL would make the next
# attempt repeat would grow with the outage.
HOLD_BACK_AFTER_INTERVALS = 3


class Checkpointer:
    def __init__(
        self,
        backend: Backend,
        *,
        interval_seconds: float,
        build: Callable[[], dict[str, Any]],
        on_failure: Callable[[ContinuableError | FencedOut], None],
        on_overdue: Callable[[], None],
    ) -> None:
        self._backend = backend
        self._interval = interval_seconds
        self._hold_back_after = interval_seconds * HOLD_BACK_AFTER_INTERVALS
        self._build = build
        self._on_failure = on_failure
        self._on_overdue = on_overdue
        # Held while building and writing: the job takes it too when it changes the steps.
        self.lock = threading.RLock()
        self._last_written: dict[str, Any] | None = None
        self._last_write_at = float("-inf")
        # When all that memory holds was last known saved; the attempt starts from a saved state.
        self._saved_at = time.monotonic()
        self._saved = threading.Event()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.writes = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="continuable-checkpointer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        """Ask for a write now (termination was requested); safe inside a signal handler."""
        self._wake.set()

    def flush(self, extra: dict[str, Any] | None = None) -> None:
        """Write now if anything changed (or `extra` is given); raises the backend's error."""
        with self.lock:
            document = self._build()
            if extra:
                document.update(extra)
            if document != self._last_written:
                stamped = {**document, "updatedAt": _utc_now()}
                self._backend.save_checkpoint(stamped)
                self._last_written = document
                self._last_write_at = time.monotonic()
                self.writes += 1
            self._saved_at = time.monotonic()
            self._saved.set()

    def overdue(self) -> bool:
        """Whether nothing was saved for longer than the job may run ahead (back-pressure)."""
        return time.monotonic() - self._saved_at > self._hold_back_after

    def wait_for_save(self, timeout: float) -> None:
        """Wait until a flush saves, or `timeout` seconds."""
        self._saved.wait(timeout)
        self._saved.clear()

    def _run(self) -> None:
        retry_delay = 0.0  # > 0 while the store is unavailable
        while not self._closing:
            now = time.monotonic()
            due = retry_delay or self._last_write_at + self._interval - now
            if retry_delay:
                # Wake when the job must be held back, not only at the next retry.
                until_overdue = self._saved_at + self._hold_back_after - now
                due = min(due, until_overdue) if until_overdue > 0 else due
            woken = self._wake.wait(timeout=due if due > 0 else self._interval)
            self._wake.clear()
            if self._closing:
                return
            waiting = time.monotonic() < self._last_write_at + self._interval
            if not woken and not retry_delay and waiting:
                continue  # a synchronous write came in between: keep one write per interval
            try:
                self.flush()
            except BackendUnavailable as err:
                if not retry_delay:
                    logs.event(
                        "backend.retrying",
                        f"saving the checkpoint failed ({err}); retrying",
                        level=logging.WARNING,
                    )
                retry_delay = min(next_delay(retry_delay, err), self._interval)
                if self.overdue():
                    self._on_overdue()
                continue
            except (ContinuableError, FencedOut) as err:
                self._on_failure(err)
                return
            if retry_delay:
                logs.event("backend.recovered", "the checkpoint is saved again")
            retry_delay = 0.0


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
