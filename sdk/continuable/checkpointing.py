"""Writes checkpoints: coalesced on a timer, at once when it matters.

The job's hot path only changes memory. A writer thread saves the checkpoint at most once per
interval when it changed (latest cursor wins), so a slow API server never stalls the job's loop;
step boundaries and the end of an attempt write synchronously through `flush()`. A termination
signal wakes the writer at once, so the last cursor is saved even if the job's code never calls
into the SDK again before the grace period ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from continuable import logs
from continuable.backends import Backend
from continuable.errors import BackendUnavailable, ContinuableError
from continuable.retrying import next_delay


class Checkpointer:
    def __init__(
        self,
        backend: Backend,
        *,
        interval_seconds: float,
        build: Callable[[], dict[str, Any]],
        on_failure: Callable[[ContinuableError], None],
    ) -> None:
        self._backend = backend
        self._interval = interval_seconds
        self._build = build
        self._on_failure = on_failure
        # Held while building and writing: the job takes it too when it changes the steps.
        self.lock = threading.RLock()
        self._last_written: dict[str, Any] | None = None
        self._last_write_at = float("-inf")
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
            if document == self._last_written:
                return
            stamped = {**document, "updatedAt": _utc_now()}
            self._backend.save_checkpoint(stamped)
            self._last_written = document
            self._last_write_at = time.monotonic()
            self.writes += 1

    def _run(self) -> None:
        retry_delay = 0.0  # > 0 while the store is unavailable
        while not self._closing:
            due = retry_delay or self._last_write_at + self._interval - time.monotonic()
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
                continue
            except ContinuableError as err:
                self._on_failure(err)
                return
            if retry_delay:
                logs.event("backend.recovered", "the checkpoint is saved again")
            retry_delay = 0.0


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
