"""One timer for every requeue the operator sets: a backoff ending, a TTL, a deadline, a retry.

A thread per pending requeue (`threading.Timer`) would mean thousands of sleeping threads for
thousands of finished jobs waiting for their TTL. Here the due times sit in one heap, and a few
worker threads pop what is due and run it: one thread while entries only wait, more (up to
`workers`) only while several are due at once. Each key (a job) has at most one pending entry;
scheduling a key again keeps the earlier time, so a long requeue never postpones a short one.
`stalled()` tells the health probe when due work has stopped being started (a wedged loop).

The reconciler owns one; `run_due()` with `workers=0` drives it by hand on a fake clock (tests).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)

# Cancelled and replaced entries stay in the heap until popped; past this many beyond the live
# ones (and twice their number) the heap is rebuilt, so rescheduling never grows memory.
SLACK_ENTRIES = 64


class Scheduler(Generic[K]):
    def __init__(
        self,
        run: Callable[[K], None],
        *,
        workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
        name: str = "requeue",
    ) -> None:
        self._run = run
        self._workers = workers
        self._clock = clock
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, tuple[float, int]] = {}  # key -> (due, sequence) of its entry
        self._sequence = 0
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._last_start = clock()
        self._stopped = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._live)

    def __contains__(self, key: K) -> bool:
        with self._cond:
            return key in self._live

    def schedule(self, key: K, delay: float) -> None:
        """Run `key` after `delay` seconds, unless it is already due sooner."""
        with self._cond:
            if self._stopped:
                return
            due = self._clock() + max(delay, 0.0)
            current = self._live.get(key)
            if current is not None and current[0] <= due:
                return
            self._sequence += 1
            self._live[key] = (due, self._sequence)
            heapq.heappush(self._heap, (due, self._sequence, key))
            if len(self._heap) > 2 * len(self._live) + SLACK_ENTRIES:
                self._heap = [(d, s, k) for k, (d, s) in self._live.items()]
                heapq.heapify(self._heap)
            if not self._threads and self._workers > 0:
                self._spawn()
            self._cond.notify()

    def cancel(self, key: K) -> None:
        with self._cond:
            self._live.pop(key, None)

    def stalled(self) -> float:
        """Seconds for which work has been due and none was started (0: none is overdue)."""
        with self._cond:
            self._drop_stale()
            now = self._clock()
            if not self._heap or self._heap[0][0] > now:
                return 0.0
            return now - max(self._heap[0][0], self._last_start)

    def run_due(self, limit: int | None = None) -> int:
        """Run what is due now in the calling thread (at most `limit`); how many ran."""
        count = 0
        while limit is None or count < limit:
            with self._cond:
                key = self._pop_due()
            if key is None:
                break
            self._run_one(key)
            count += 1
        return count

    def stop(self) -> None:
        """Drop every pending entry and let the workers end (a running entry finishes)."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._live.clear()
            self._cond.notify_all()

    def _drop_stale(self) -> None:
        while self._heap:
            due, sequence, key = self._heap[0]
            if self._live.get(key) == (due, sequence):
                return
            heapq.heappop(self._heap)

    def _pop_due(self) -> K | None:
        self._drop_stale()
        if self._stopped or not self._heap or self._heap[0][0] > self._clock():
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._live[key]
        self._last_start = self._clock()
        return key

    def _run_one(self, key: K) -> None:
        try:
            self._run(key)
        except Exception:
            # One entry's failure must not end the worker that every other entry waits on.
            log.exception("scheduled run for %s failed", key)

    def _spawn(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _take(self) -> K | None:
        """Wait (holding the condition) until an entry is due and pop it; None once stopped."""
        while not self._stopped:
            key = self._pop_due()
            if key is not None:
                self._drop_stale()
                more_due = bool(self._heap) and self._heap[0][0] <= self._clock()
                if more_due and self._idle == 0 and len(self._threads) < self._workers:
                    self._spawn()
                return key
            timeout = self._heap[0][0] - self._clock() if self._heap else None
            self._idle += 1
            self._cond.wait(timeout)
            self._idle -= 1
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                key = self._take()
            if key is None:
                return
            self._run_one(key)
