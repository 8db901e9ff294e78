"""What the planner asks for, and `Plan`, the ordered list of it.

The planner (`planning.py` and the modules it calls) only returns these; `reconciling.py` carries
them out in order. Keeping them plain frozen data is what lets every decision be a pure function
tested without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Object = dict[str, Any]


@dataclass(frozen=True)
class PatchStatus:
    """Write these status fields; fenced on `expected_attempt` (None: the very first status
    write, when there is nothing to fence on yet). Only a restart puts `checkpoint` here."""

    fields: dict[str, Any]
    expected_attempt: int | None


@dataclass(frozen=True)
class EnsureObject:
    """Create the object, or bring an existing one that this job controls to this content; an
    object of that name controlled by anything else is a name conflict, never adopted."""

    manifest: Object


@dataclass(frozen=True)
class CreatePod:
    manifest: Object


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    # Stamped on the pod as a DisruptionTarget condition before the delete, so every
    # termination the operator causes has a recorded reason (invariant 8).
    disruption: tuple[str, str] | None = None


@dataclass(frozen=True)
class RemoveFinalizer:
    name: str
    uid: str


@dataclass(frozen=True)
class DeleteJob:
    """ttlSecondsAfterFinished has passed: the job goes, and with it all it owns."""

    name: str
    uid: str


@dataclass(frozen=True)
class DropResults:
    """Remove these steps' results from the job's results ConfigMap (a restart from a step)."""

    steps: tuple[str, ...]


@dataclass(frozen=True)
class NameRestartRequest:
    """Give a restart request set by hand (no nonce) a nonce, while its step is still `step`:
    acted on only once it has one, so an operator that stops midway finds it recorded."""

    step: str
    nonce: str


@dataclass(frozen=True)
class ClearRestartRequest:
    """Remove the restart annotations, only if the nonce is still the one acted on: a request
    made meanwhile is kept for the next reconcile."""

    nonce: str | None


@dataclass(frozen=True)
class CreateWorkload:
    """Create the job's Kueue Workload (controlled by the job); an existing one is left as it
    is: Kueue writes parts of its spec (active, priority) too."""

    manifest: Object


@dataclass(frozen=True)
class PatchWorkload:
    """A merge patch of the job's Workload (its spec.active)."""

    name: str
    patch: Object


@dataclass(frozen=True)
class DeleteWorkload:
    """Delete the job's finished Workload (this uid only): a job restarted after it finished
    queues again with a new one, as Kueue never admits a finished Workload again."""

    name: str
    uid: str


@dataclass(frozen=True)
class PatchWorkloadStatus:
    """A merge patch of the job's Workload's status, fenced on the resourceVersion it was read
    at (Kueue writes the same conditions): a conflict means the reconcile plans again."""

    name: str
    resource_version: str | None
    status: Object


@dataclass(frozen=True)
class Emit:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = (
    PatchStatus
    | EnsureObject
    | CreatePod
    | DeletePod
    | RemoveFinalizer
    | DeleteJob
    | DropResults
    | NameRestartRequest
    | ClearRestartRequest
    | CreateWorkload
    | PatchWorkload
    | PatchWorkloadStatus
    | DeleteWorkload
    | Emit
)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None
