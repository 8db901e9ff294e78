"""The ContinuableJob API (`continuable.dev/v1alpha1`): the one definition of spec and status.

The SDK, the operator, the CRD in `crds/` and the chart all derive from these models. The SDK's
hot path never imports this package (pydantic loads on first use only).
"""

from .base import ApiModel, Rule
from .checkpoint import Checkpoint, Progress, StepError, StepRecord
from .resource import ContinuableJob
from .spec import (
    Backoff,
    CheckpointSettings,
    Container,
    ContinuableJobSpec,
    ExitCodesRequirement,
    PodConditionPattern,
    PodFailurePolicy,
    PodFailurePolicyRule,
    PodSpec,
    PodTemplate,
)
from .status import AttemptRecord, Condition, ContinuableJobStatus

__all__ = [
    "ApiModel",
    "AttemptRecord",
    "Backoff",
    "Checkpoint",
    "CheckpointSettings",
    "Condition",
    "Container",
    "ContinuableJob",
    "ContinuableJobSpec",
    "ContinuableJobStatus",
    "ExitCodesRequirement",
    "PodConditionPattern",
    "PodFailurePolicy",
    "PodFailurePolicyRule",
    "PodSpec",
    "PodTemplate",
    "Progress",
    "Rule",
    "StepError",
    "StepRecord",
]
