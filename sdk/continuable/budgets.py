"""Byte budgets of what the SDK writes: etcd stores the whole object on every write.

Sizes are measured as the bytes of compact JSON, the form in which a value travels in a patch,
so a budget check here agrees with what the API server receives. `Budgets` admits a cursor or
a step result at the call that made it (invariant 6), so an oversized value is a clear error
naming its step, never a write the API server refuses later.

The step results are counted as the API server counts a ConfigMap's data against its 1 MiB
limit: every key and value, in bytes. A result is its entry `<step>.json`, and room is kept for
the `attempt` key, so `spec.checkpoint.resultsMaxBytes` at its maximum of 1 MiB still fits. Every
backend counts the same way, so a job that fits its budget locally fits it in a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from continuable.backends.kubernetes import result_key
from continuable.errors import CheckpointTooLarge, CursorError, ResultError, ResultTooLarge
from continuable.names import RESULTS_ATTEMPT_KEY

if TYPE_CHECKING:
    from continuable.backends import Settings
    from continuable.steps import BaseStep

# Room kept in the checkpoint budget for progress numbers and timestamps that grow as a step
# runs, so a write that passed the budget at set() still passes it later.
GROWTH_RESERVE = 160
# Room kept in the results budget for the `attempt` key and its value, which the operator raises
# before each attempt: 19 digits hold any attempt number (an int64).
ATTEMPT_ENTRY_RESERVE = len(RESULTS_ATTEMPT_KEY) + 19


def encoded(value: Any) -> str:
    """Compact JSON of a value; TypeError/ValueError for what JSON cannot carry."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encoded_size(value: Any) -> int:
    return len(encoded(value).encode("utf-8"))


def over_budget(size: int, budget: int) -> str | None:
    """A sentence saying by how much `size` exceeds `budget`, or None when it fits."""
    if size <= budget:
        return None
    return f"{size} bytes exceeds the budget of {budget} bytes by {size - budget}"


def result_entry_size(step: str, text: str) -> int:
    """Bytes a step's result (compact JSON) takes in the results ConfigMap: its key and value."""
    return len(result_key(step).encode()) + len(text.encode())


class Budgets:
    """The budgets of one attempt: status.checkpoint (the cursor's room in it) and the step
    results. `document` builds the checkpoint as it would be written now."""

    def __init__(
        self,
        settings: Settings,
        *,
        results: Mapping[str, Any],
        document: Callable[[], dict[str, Any]],
    ) -> None:
        self._settings = settings
        self._document = document
        self._results_bytes = ATTEMPT_ENTRY_RESERVE + sum(
            result_entry_size(step, encoded(result)) for step, result in results.items()
        )
        # Bytes left for the running step's cursor; set when the step starts.
        self.cursor_room = settings.max_bytes

    def make_room(self, step: BaseStep) -> None:
        """Measure the room left for `step`'s cursor; CheckpointTooLarge if even an empty cursor
        won't fit, or if the cursor it resumes with no longer does."""
        cursor, step._cursor = step._cursor, None
        try:
            fixed = len(encoded(self._document()).encode()) + GROWTH_RESERVE
        finally:
            step._cursor = cursor
        room = self._settings.max_bytes - fixed - len(',"cursor":')
        if room < 32:
            raise CheckpointTooLarge(
                f"step {step.name!r}: status.checkpoint would need {fixed} bytes before any "
                f"cursor, over its budget of {self._settings.max_bytes} (spec.checkpoint.maxBytes);"
                " use fewer or shorter step names, or raise the budget"
            )
        if cursor is not None:
            self._admit_cursor_size(step, cursor, room)
        self.cursor_room = room

    def admit_cursor(self, step: BaseStep, cursor: Any) -> Any:
        """The cursor to keep (a copy of a mutable one); CursorError or CheckpointTooLarge."""
        try:
            text = encoded(cursor)
        except (TypeError, ValueError) as err:
            raise CursorError(
                f"step {step.name!r}: cursor {cursor!r:.80} is not JSON-serialisable ({err}); "
                "use a number, a string, or a list/dict of them"
            ) from None
        self._admit_cursor_size(step, cursor, self.cursor_room, len(text.encode()))
        if cursor is None or type(cursor) in (str, int, float, bool):
            return cursor
        return json.loads(text)  # a copy, so later changes to the caller's object don't leak in

    def _admit_cursor_size(
        self, step: BaseStep, cursor: Any, room: int, size: int | None = None
    ) -> None:
        size = len(encoded(cursor).encode()) if size is None else size
        if size > room:
            raise CheckpointTooLarge(
                f"step {step.name!r}: a cursor of {size} bytes leaves no room in status.checkpoint "
                f"({over_budget(size, room)}; spec.checkpoint.maxBytes is "
                f"{self._settings.max_bytes}); keep cursors small: an id, an offset, a page token"
            )

    def admit_result(self, name: str, result: Any) -> str:
        """The result's compact JSON; ResultError or ResultTooLarge."""
        try:
            text = encoded(result)
        except (TypeError, ValueError) as err:
            raise ResultError(
                f"step {name!r} returned {type(result).__name__} {result!r:.80}, which is not "
                f"JSON-serialisable ({err}); return JSON data, or store it and return its URI"
            ) from None
        total = self._results_bytes + result_entry_size(name, text)
        problem = over_budget(total, self._settings.results_max_bytes)
        if problem:
            raise ResultTooLarge(
                f"step {name!r}: its result of {len(text.encode())} bytes brings the results "
                f"ConfigMap to {problem} (spec.checkpoint.resultsMaxBytes; each result counts "
                f"with its key {result_key(name)!r}, and {ATTEMPT_ENTRY_RESERVE} bytes are kept "
                "for the `attempt` key); store large data yourself and return its URI"
            )
        return text

    def count_result(self, name: str, text: str) -> None:
        """Count a result that was saved."""
        self._results_bytes += result_entry_size(name, text)

    def error_that_fits(self, step: str | None, exc: BaseException) -> dict[str, Any]:
        """The error for status.checkpoint, its message cut so the write stays in budget."""
        error: dict[str, Any] = {"type": type(exc).__name__[:256], "message": ""}
        if step is not None:
            error["step"] = step
        document = {**self._document(), "stopReason": "Failed", "error": error}
        room = self._settings.max_bytes - GROWTH_RESERVE - len(encoded(document).encode())
        message = str(exc)[: min(4096, max(room, 0))]
        while message and len(encoded(message).encode()) - 2 > room:
            message = message[: len(message) // 2]
        error["message"] = message
        return error
