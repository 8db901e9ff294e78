"""The cursor of a concurrent step: which items are done, when they finish in any order.

Items run N at a time and finish out of order, so one integer cannot say what is done. The
cursor is a watermark: every index below `next` is done, and so is each index in `done` (all
above `next`). A resume skips exactly those, so a finished item never runs again whatever order
the items finished in.

The cursor stays small because the dispatcher (`mapping.py`) starts an item only while the items
in flight and the done ones above the watermark number fewer than N: at most N - 1 indexes are
ever listed (the item at `next` is always the one still running), so the cursor's size is known
when the step starts and checked against the checkpoint budget there, never mid-run.

    {"next": 1200, "done": [1201, 1203, 1207]}
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from continuable.errors import CursorError


class Watermark:
    """Which items of a concurrent step are done. The step's thread marks items while the
    checkpoint writer reads `cursor()`: both take a lock of their own, held for no I/O, so
    marking an item never waits for a write in progress."""

    __slots__ = ("_above", "_lock", "next")

    def __init__(self, next_: int = 0, done: Iterable[int] = ()) -> None:
        self.next = next_
        self._above: set[int] = set()
        self._lock = threading.Lock()
        for index in done:
            self.mark(index)

    def __repr__(self) -> str:
        return f"<Watermark next={self.next} done={sorted(self._above)}>"

    @classmethod
    def from_cursor(cls, cursor: Any, *, step: str, start: int = 0) -> Watermark:
        """The watermark a saved cursor holds: None (nothing done yet: `start`), an integer
        (a sequential cursor: every index below it done), or the watermark's own form."""
        if cursor is None:
            return cls(start)
        if type(cursor) is int and cursor >= 0:
            return cls(cursor)
        if isinstance(cursor, dict) and set(cursor) <= {"next", "done"}:
            next_, done = cursor.get("next"), cursor.get("done", [])
            if type(next_) is int and next_ >= 0 and _indexes_above(done, next_):
                return cls(next_, done)
        raise CursorError(
            f"step {step!r}: a concurrent step's cursor is an integer or "
            f'{{"next": <int >= 0>, "done": [<distinct ints above next>]}}, but the saved '
            f"cursor is {cursor!r:.120}"
        )

    def cursor(self) -> dict[str, Any]:
        """The wire form: `{"next": k}`, with `"done"` (sorted) when items above k are done."""
        with self._lock:
            if not self._above:
                return {"next": self.next}
            return {"next": self.next, "done": sorted(self._above)}

    def is_done(self, index: int) -> bool:
        return index < self.next or index in self._above

    @property
    def ahead(self) -> int:
        """How many items above the watermark are done."""
        return len(self._above)

    def done_count(self, start: int = 0) -> int:
        """How many items from `start` on are done (the step's progress)."""
        return max(self.next - start, 0) + len(self._above)

    def mark(self, index: int) -> None:
        """Record that item `index` is done; ValueError if it already was."""
        if self.is_done(index):
            raise ValueError(f"item {index} is already done")
        with self._lock:
            if index != self.next:
                self._above.add(index)
                return
            above, next_ = self._above, index + 1
            while above and next_ in above:
                above.remove(next_)
                next_ += 1
            self.next = next_


def _indexes_above(done: Any, next_: int) -> bool:
    """Whether `done` is a list of distinct integers, all above `next_`."""
    if not isinstance(done, list) or not all(type(i) is int and i > next_ for i in done):
        return False
    return len(set(done)) == len(done)


def widest_cursor(concurrency: int, last_index: int) -> dict[str, Any]:
    """The largest cursor a step of this concurrency can write while its indexes stay at or
    below `last_index`: what the checkpoint budget must hold (measured when the step starts)."""
    listed = max(concurrency - 1, 0)
    top = max(last_index, listed)
    return {"next": top - listed, "done": list(range(top - listed + 1, top + 1))}
