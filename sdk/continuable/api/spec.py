"""`spec` of a ContinuableJob: what the user asks for.

Field descriptions here are the manual: they become the CRD's descriptions, which is what
`kubectl explain cjob.spec --recursive` prints.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints

from continuable.names import (
    DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
    DEFAULT_CHECKPOINT_MAX_BYTES,
    DEFAULT_RESULTS_MAX_BYTES,
    MAX_BUDGET_BYTES,
    MAX_STEPS,
    MIN_BUDGET_BYTES,
    STEP_NAME_MAX_LENGTH,
    STEP_NAME_PATTERN,
)

from .base import ApiModel, OpenApiModel, Rule, UniqueList

StepName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=STEP_NAME_MAX_LENGTH, pattern=STEP_NAME_PATTERN),
]


class Container(OpenApiModel):
    """A container of the pod template (core/v1 Container). Only `name` is checked here; the
    API server checks the rest when the operator creates the pod."""

    name: str = Field(min_length=1, max_length=63, description="Name of the container.")


class PodSpec(OpenApiModel):
    """The pod's spec (core/v1 PodSpec)."""

    containers: list[Container] = Field(
        min_length=1,
        description="The job's containers; at least one. The first runs the job's code.",
    )
    restart_policy: Literal["Never"] | None = Field(
        default=None,
        description="Only Never is accepted (and is set when omitted): the operator starts a "
        "new pod for each attempt and resumes it from the checkpoint.",
    )


class PodTemplate(OpenApiModel):
    """A pod template (core/v1 PodTemplateSpec) for each attempt's pod."""

    metadata: dict[str, Any] | None = Field(
        default=None, description="Labels and annotations copied onto each attempt's pod."
    )
    spec: PodSpec = Field(description="The pod's spec.")


class Backoff(ApiModel):
    """Delay before relaunching after a counted failure: initialSeconds, then multiplied by
    factor after each further failure, capped at maxSeconds. Interruptions relaunch at once."""

    initial_seconds: int = Field(
        default=10, ge=0, le=86400, description="Delay after the first counted failure."
    )
    # No schema default: the effective value depends on initialSeconds, and a constant default
    # would break the rule below for a long initialSeconds given alone.
    max_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Upper bound of the delay; at least initialSeconds. When omitted: "
        "max(360, initialSeconds), that is batch/v1 Job's 6 minutes, or initialSeconds when "
        "that is longer.",
    )
    factor: float = Field(
        default=2.0, ge=1.0, le=10.0, description="Multiplier applied after each further failure."
    )

    cross_field_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.maxSeconds) || self.maxSeconds >= self.initialSeconds",
            message="maxSeconds must be greater than or equal to initialSeconds",
            holds=lambda b: b.max_seconds is None or b.max_seconds >= b.initial_seconds,
            field_path=".maxSeconds",
        ),
    )


class ExitCodesRequirement(ApiModel):
    """Matches a pod whose container exited with a code in (or not in) `values`."""

    container_name: str | None = Field(
        default=None,
        max_length=63,
        description="Only this container's exit code is checked; all containers when omitted.",
    )
    operator: Literal["In", "NotIn"] = Field(
        description="In: the exit code is one of values. NotIn: it is none of them."
    )
    values: UniqueList[Annotated[int, Field(ge=0, le=255)]] = Field(
        min_length=1,
        max_length=255,
        description="Exit codes (0-255), each at most once.",
    )

    cross_field_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.operator != 'In' || !self.values.exists(v, v == 0)",
            message="values must not contain 0 with operator In: a successful exit is not a "
            "failure",
            holds=lambda r: r.operator != "In" or 0 not in r.values,
            field_path=".values",
        ),
    )


class PodConditionPattern(ApiModel):
    """Matches a pod that carries a condition of this type and status."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Condition type, for example DisruptionTarget.",
    )
    status: Literal["True", "False", "Unknown"] = Field(
        default="True", description="Condition status to match."
    )


class PodFailurePolicyRule(ApiModel):
    """One rule of the pod failure policy; exactly one of onExitCodes and onPodConditions."""

    action: Literal["FailJob", "Ignore", "Count"] = Field(
        description="FailJob: fail the job at once. Ignore: relaunch without counting against "
        "backoffLimit. Count: count against backoffLimit (the default for a crash)."
    )
    on_exit_codes: ExitCodesRequirement | None = Field(
        default=None, description="Matches on container exit codes."
    )
    on_pod_conditions: list[PodConditionPattern] | None = Field(
        default=None, max_length=20, description="Matches when the pod has any of these."
    )

    cross_field_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.onExitCodes) != has(self.onPodConditions)",
            message="exactly one of onExitCodes and onPodConditions must be set",
            holds=lambda r: (r.on_exit_codes is None) != (r.on_pod_conditions is None),
        ),
    )


class PodFailurePolicy(ApiModel):
    """How a failed pod is counted, as batch/v1 Job's podFailurePolicy; the first matching
    rule wins. A pod no rule matches is a crash (Count), unless it was interrupted."""

    rules: list[PodFailurePolicyRule] = Field(max_length=20, description="Rules, checked in order.")


class CheckpointSettings(ApiModel):
    """How the SDK in the pod writes checkpoints."""

    interval_seconds: int = Field(
        default=DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
        ge=1,
        le=3600,
        description="Minimum seconds between two cursor writes. Step completions and a "
        "termination are written at once. After a SIGKILL, at most this much work repeats.",
    )
    max_bytes: int = Field(
        default=DEFAULT_CHECKPOINT_MAX_BYTES,
        ge=MIN_BUDGET_BYTES,
        le=MAX_BUDGET_BYTES,
        description="Budget in bytes of status.checkpoint (steps, cursors, progress). A cursor "
        "that would exceed it fails at the set() that made it.",
    )
    results_max_bytes: int = Field(
        default=DEFAULT_RESULTS_MAX_BYTES,
        ge=MIN_BUDGET_BYTES,
        le=MAX_BUDGET_BYTES,
        description="Budget in bytes of the step results ConfigMap <job>-results. Keep large "
        "data in your own storage and return its URI.",
    )


class ContinuableJobSpec(ApiModel):
    """What to run, and how interruptions and failures are handled."""

    template: PodTemplate = Field(
        description="Pod template of each attempt. The operator adds the job's labels, the "
        "CONTINUABLE_* environment, restartPolicy Never and an owner reference."
    )
    backoff_limit: int = Field(
        default=6,
        ge=0,
        le=10000,
        description="Counted failures (crashes) allowed before the job is Failed. "
        "Interruptions never count.",
    )
    # The full default, not {}: the API server checks CEL rules against a default as written.
    backoff: Backoff = Field(
        default_factory=Backoff,
        json_schema_extra={"default": Backoff().to_wire()},
        description="Delay before relaunching after a counted failure.",
    )
    pod_failure_policy: PodFailurePolicy | None = Field(
        default=None, description="Rules deciding how a failed pod counts, as in batch/v1 Job."
    )
    max_resumptions: int | None = Field(
        default=None,
        ge=0,
        description="Interruptions allowed (status.interruptions); unlimited when omitted. "
        "Beyond it the job fails with reason ResumeLimitExceeded. An interruption is an attempt "
        "ended by: preemption, eviction, a node drain, deletion of its pod, a rollout of a new "
        "template, suspend, a `continuable interrupt`, a clean exit 75 (the SDK saved its "
        "cursor and stopped), a podFailurePolicy Ignore rule matching a pod that was disrupted "
        "(DisruptionTarget), or a pod that vanished without a recorded outcome (force-deleted on "
        "a lost node), whose attempt ends as Lost. Not counted: the relaunch that starts an "
        "isolated step in a fresh attempt, and a restart a person asks for (continuable "
        "restart). Crashes count against backoffLimit instead.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Seconds the job may run, counted from its start and across attempts; "
        "then its pod is stopped and the job fails with reason DeadlineExceeded.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Seconds after Succeeded or Failed when the job (and its pods and results) "
        "is deleted; kept forever when omitted.",
    )
    suspend: bool = Field(
        default=False,
        description="True stops the running pod gracefully (its cursor is saved) and starts no "
        "other; false again resumes from the checkpoint.",
    )
    checkpoint: CheckpointSettings = Field(
        default_factory=CheckpointSettings,
        json_schema_extra={"default": CheckpointSettings().to_wire()},
        description="How often and how much the SDK checkpoints.",
    )
    restart_policy_on_template_change: Literal["Resume", "Ignore"] = Field(
        default="Resume",
        description="Resume: a changed template stops the running pod gracefully and the job "
        "continues on the new template. Ignore: the new template is used from the next attempt.",
    )
    steps: UniqueList[StepName] | None = Field(
        default=None,
        max_length=MAX_STEPS,
        description="The step names the job is expected to run, in order; shown before the pod "
        "reports them.",
    )

    cross_field_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.activeDeadlineSeconds) || "
            "self.activeDeadlineSeconds > self.checkpoint.intervalSeconds",
            message="activeDeadlineSeconds must be greater than checkpoint.intervalSeconds, "
            "or no cursor could be saved before the deadline",
            holds=lambda s: (
                s.active_deadline_seconds is None
                or s.active_deadline_seconds > s.checkpoint.interval_seconds
            ),
            field_path=".activeDeadlineSeconds",
        ),
    )
