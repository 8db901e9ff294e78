"""Where checkpoints and step results are kept.

A backend stores two things: the checkpoint (the dict that becomes `status.checkpoint`) and the
results of completed steps. The local file and the in-memory backend need no cluster; the
Kubernetes backend (status subresource + results ConfigMap) plugs into the same protocol.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from continuable.names import (
    DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
    DEFAULT_CHECKPOINT_MAX_BYTES,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_RESULTS_MAX_BYTES,
    ENV_JOB,
)


@dataclass(frozen=True)
class Settings:
    """The budgets and interval an attempt runs with (spec.checkpoint, or the defaults), and
    the pod's grace period (its template's terminationGracePeriodSeconds, or Kubernetes'
    default): how long a concurrent step's items in flight may take to finish once stopped."""

    interval_seconds: float = DEFAULT_CHECKPOINT_INTERVAL_SECONDS
    max_bytes: int = DEFAULT_CHECKPOINT_MAX_BYTES
    results_max_bytes: int = DEFAULT_RESULTS_MAX_BYTES
    grace_seconds: float = DEFAULT_GRACE_SECONDS


@dataclass
class Snapshot:
    """What an attempt starts from."""

    attempt: int
    checkpoint: dict[str, Any] | None = None
    results: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)


class Backend(Protocol):
    def load(self) -> Snapshot:
        """The saved state, and this attempt's number."""
        ...

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Replace the checkpoint; raises FencedOut when a newer attempt owns the job."""
        ...

    def save_result(self, step: str, encoded: str) -> None:
        """Store a completed step's result (compact JSON) before its completion is recorded."""
        ...

    def finish(self, *, completed: bool) -> None:
        """Called once when the attempt ends."""
        ...

    def termination_reason(self) -> str | None:
        """Why this attempt is being stopped, when the store can tell (a pod's DisruptionTarget)."""
        ...


def default_backend() -> Backend:
    """In a pod (CONTINUABLE_JOB set): the ContinuableJob's status; elsewhere a local file."""
    if os.environ.get(ENV_JOB):
        from .kubernetes import KubernetesBackend

        return KubernetesBackend.from_environment()
    from .localfile import LocalFileBackend, default_state_file, settings_from_environment

    return LocalFileBackend(default_state_file(), settings_from_environment())
