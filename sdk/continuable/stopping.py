"""Why an attempt stops before its steps are done: a termination request (SIGTERM, SIGINT, or an
isolated step that must start in a fresh attempt) or a failure of the checkpoint writer thread.

Nothing here raises into the job's code or writes: a request is recorded and the job's
`on_request` hook is called, which raises the one flag the hot path reads, so the next `set()`
or `checkpoint()` saves the cursor and stops. That keeps a signal handler free of I/O and of any
lock the interrupted code could hold.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from continuable.errors import ContinuableError, FencedOut, InterruptReason

# After termination is requested, how long a write may be retried: well inside the default
# 30 s grace period, so the pod still exits by itself with code 75.
GIVE_UP_AFTER_TERMINATION_SECONDS = 15.0


class Stopping:
    """The stop requests of one attempt; `on_request` is called after each one."""

    def __init__(self, *, on_request: Callable[[], None]) -> None:
        self._on_request = on_request
        # Why termination was requested, and when; None while it was not.
        self.why: str | None = None
        self._since: float | None = None
        self.kind: InterruptReason = "Interrupted"
        # Whether a signal asked, rather than the job itself (an isolated step).
        self.signalled = False
        # What stopped the writer thread: the next set() raises it.
        self.failure: ContinuableError | FencedOut | None = None
        self._previous_handlers: dict[int, Any] = {}

    def request(self, why: str, *, reason: InterruptReason = "Interrupted") -> None:
        """Ask the attempt to stop at its next safe point; the first request's reason stands."""
        if self.why is None:
            self.why = why
            self._since = time.monotonic()
            self.kind = reason
        self._on_request()

    def writer_failed(self, error: ContinuableError | FencedOut) -> None:
        self.failure = error
        self._on_request()

    @property
    def asked(self) -> bool:
        """Whether the attempt must stop: termination was requested or the writer failed."""
        return self.why is not None or self.failure is not None

    def give_up(self) -> bool:
        """Whether to stop retrying the store: only once termination has been running a while."""
        since = self._since
        return since is not None and time.monotonic() - since > GIVE_UP_AFTER_TERMINATION_SECONDS

    # Signals.

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            # A second Ctrl-C interrupts at once, as Python does without us.
            signal.signal(
                signal.SIGINT, self._previous_handlers.get(signum, signal.default_int_handler)
            )
        self.signalled = True
        self.request(f"{signal.Signals(signum).name} received")
