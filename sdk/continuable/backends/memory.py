"""An in-memory backend: `continuable.testing` runs jobs against it, attempt after attempt."""

from __future__ import annotations

import copy
import json
from typing import Any

from continuable.budgets import encoded_size

from . import Settings, Snapshot


class MemoryBackend:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.checkpoint: dict[str, Any] | None = None
        self.results: dict[str, Any] = {}
        self.attempt = 0
        self.checkpoint_writes = 0
        self.largest_checkpoint = 0
        self.result_writes = 0
        self.finished: bool | None = None

    def load(self) -> Snapshot:
        self.attempt += 1
        self.finished = None
        return Snapshot(
            attempt=self.attempt,
            checkpoint=copy.deepcopy(self.checkpoint),
            results=copy.deepcopy(self.results),
            settings=self.settings,
        )

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.checkpoint = copy.deepcopy(checkpoint)
        self.checkpoint_writes += 1
        self.largest_checkpoint = max(self.largest_checkpoint, encoded_size(checkpoint))

    def save_result(self, step: str, encoded: str) -> None:
        self.results[step] = json.loads(encoded)
        self.result_writes += 1

    def finish(self, *, completed: bool) -> None:
        self.finished = completed

    def termination_reason(self) -> str | None:
        return None
