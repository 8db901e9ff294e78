"""`status` of a ContinuableJob: what the operator observed (and, in `checkpoint`, the SDK).

The two writers own disjoint fields: the SDK writes only `checkpoint`, the operator the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from continuable.names import ATTEMPT_HISTORY_LENGTH

from .base import ApiModel
from .checkpoint import Checkpoint

Phase = Literal["Pending", "Queued", "Running", "Interrupted", "Suspended", "Succeeded", "Failed"]
ConditionType = Literal[
    "Running",
    "Interrupted",
    "Suspended",
    "Complete",
    "Failed",
    "PodCreateFailed",
    "NameConflict",
    "ServiceAccountShared",
    "RestartRefused",
    "Queued",
]
AttemptOutcome = Literal["Running", "Succeeded", "Interrupted", "Isolated", "Failed", "Lost"]


class Condition(ApiModel):
    """A condition in the shape of metav1.Condition."""

    type: ConditionType = Field(description="Type of condition.")
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(
        default="", max_length=32768, description="Human-readable details of the transition."
    )
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set for."
    )


class AttemptRecord(ApiModel):
    """One attempt (one pod) and how it ended."""

    attempt: int = Field(ge=1, description="The attempt's number (its fencing token).")
    pod_name: str = Field(max_length=253, description="Name of the attempt's pod.")
    start_time: datetime | None = Field(default=None, description="When the pod was created.")
    end_time: datetime | None = Field(default=None, description="When the pod ended.")
    outcome: AttemptOutcome = Field(
        description="How the attempt ended, or Running: Succeeded, Interrupted, Isolated (stopped "
        "so an isolated step starts in a fresh attempt), Failed, or Lost (the pod vanished "
        "without a recorded outcome, e.g. force-deleted on a lost node; counted as an "
        "interruption)."
    )
    reason: str | None = Field(
        default=None, max_length=1024, description="Why, e.g. Preempted, Evicted, Error."
    )
    message: str | None = Field(default=None, max_length=4096, description="Details.")
    exit_code: int | None = Field(default=None, description="The job container's exit code.")


class LastRestart(ApiModel):
    """The last restart request the operator acted on: a request whose nonce is this one is
    not acted on again (the operator may stop between acting and removing the annotations)."""

    step: str = Field(
        max_length=253, description="The step the job ran again from (* for its first step)."
    )
    nonce: str | None = Field(
        default=None,
        max_length=253,
        description="The request's continuable.dev/restart-nonce annotation (none if set by hand).",
    )
    attempt: int = Field(ge=1, description="The first attempt of the run the restart began.")
    time: datetime = Field(description="When the operator acted on the request.")


class ContinuableJobStatus(ApiModel):
    """What was observed. All of it is written by the operator, except checkpoint (the SDK)."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation last acted upon."
    )
    phase: Phase | None = Field(
        default=None,
        description="Pending, Queued (waiting for Kueue to admit the job's Workload), Running, "
        "Interrupted (a new attempt is coming), Suspended, Succeeded or Failed.",
    )
    attempt: int = Field(
        default=0,
        ge=0,
        description="Number of the current attempt; every checkpoint write is fenced on it.",
    )
    pod_name: str | None = Field(
        default=None, max_length=253, description="The current attempt's pod."
    )
    start_time: datetime | None = Field(default=None, description="When the first attempt began.")
    completion_time: datetime | None = Field(
        default=None, description="When the job Succeeded or Failed."
    )
    interruptions: int = Field(
        default=0,
        ge=0,
        description="Attempts ended by an interruption (preemption, eviction, drain, rollout, "
        "suspend, deletion, a Lost pod; spec.maxResumptions lists them all); bounded by "
        "spec.maxResumptions.",
    )
    failures: int = Field(
        default=0, ge=0, description="Counted failures (crashes); bounded by spec.backoffLimit."
    )
    resumptions: int = Field(
        default=0,
        ge=0,
        description="Attempts that started from a checkpoint (a completed step or a saved cursor).",
    )
    attempts: list[AttemptRecord] = Field(
        default_factory=list,
        max_length=ATTEMPT_HISTORY_LENGTH,
        description=f"The last {ATTEMPT_HISTORY_LENGTH} attempts, oldest first.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Running, Interrupted, Suspended, Complete, Failed; PodCreateFailed (the "
        "last pod creation was refused); NameConflict (an object the job needs, such as its pod "
        "or results ConfigMap, is taken by one the job does not control, so the job waits); "
        "ServiceAccountShared (the template names a service account an earlier job of the "
        "namespace already names); RestartRefused (the last restart request was refused, for "
        "example an unknown step name; the message says why); Queued (the job waits in a Kueue "
        "LocalQueue for its Workload's admission; the message gives Kueue's reason).",
    )
    saved_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Seconds of completed work that resumptions did not have to redo.",
    )
    last_restart: LastRestart | None = Field(
        default=None, description="The last restart request acted on (continuable restart)."
    )
    checkpoint: Checkpoint | None = Field(
        default=None, description="Progress saved by the job's pod (written by the SDK only)."
    )
