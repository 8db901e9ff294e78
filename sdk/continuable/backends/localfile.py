"""The backend outside a pod: one JSON file, so `python job.py`, Ctrl-C, `python job.py` resumes.

The file is replaced atomically (temp file, fsync, rename): a crash mid-write leaves the previous
checkpoint, never a torn one. It is removed after a run that completes, so the next run starts
fresh, and kept after any other end.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from continuable.errors import BackendError, ContinuableError
from continuable.names import ENV_CHECKPOINT_INTERVAL

from . import Settings, Snapshot

ENV_STATE_FILE = "CONTINUABLE_STATE_FILE"


def default_state_file(argv0: str | None = None) -> Path:
    """`$CONTINUABLE_STATE_FILE`, else `.continuable/<script>.json` beside the working dir."""
    configured = os.environ.get(ENV_STATE_FILE)
    if configured:
        return Path(configured)
    script = Path(argv0 if argv0 is not None else sys.argv[0] or "job").stem or "job"
    return Path(".continuable") / f"{script}.json"


def settings_from_environment() -> Settings:
    """The default budgets, with `$CONTINUABLE_CHECKPOINT_INTERVAL` when it is set."""
    interval = os.environ.get(ENV_CHECKPOINT_INTERVAL)
    if not interval:
        return Settings()
    try:
        seconds = float(interval)
    except ValueError:
        raise ContinuableError(
            f"{ENV_CHECKPOINT_INTERVAL}={interval!r} is not a number of seconds"
        ) from None
    if seconds <= 0:
        raise ContinuableError(f"{ENV_CHECKPOINT_INTERVAL}={interval!r} must be greater than 0")
    return Settings(interval_seconds=seconds)


class LocalFileBackend:
    def __init__(self, path: Path, settings: Settings | None = None) -> None:
        self.path = path
        self.settings = settings or Settings()
        self._state: dict[str, Any] = {"attempt": 0, "checkpoint": None, "results": {}}

    def load(self) -> Snapshot:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except OSError as err:
            raise BackendError(f"cannot read the state file {self.path}: {err}") from err
        if text is not None:
            try:
                self._state = json.loads(text)
            except json.JSONDecodeError as err:
                raise BackendError(
                    f"the state file {self.path} is not valid JSON ({err}); "
                    "remove it to start the job afresh"
                ) from err
        self._state["attempt"] = int(self._state.get("attempt", 0)) + 1
        return Snapshot(
            attempt=self._state["attempt"],
            checkpoint=self._state.get("checkpoint"),
            results=dict(self._state.get("results", {})),
            settings=self.settings,
        )

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._state["checkpoint"] = checkpoint
        self._write()

    def save_result(self, step: str, encoded: str) -> None:
        self._state.setdefault("results", {})[step] = json.loads(encoded)
        self._write()

    def finish(self, *, completed: bool) -> None:
        if completed:
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        text = json.dumps(self._state, separators=(",", ":"), ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise BackendError(f"cannot write the state file {self.path}: {err}") from err

    def termination_reason(self) -> str | None:
        return None
