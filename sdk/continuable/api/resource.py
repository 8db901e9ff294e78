"""The ContinuableJob resource as a whole: what `kubectl get cjob x -o yaml` shows."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field

from continuable.names import API_VERSION, JOB_NAME_MAX_LENGTH, JOB_NAME_PATTERN, KIND

from .base import ApiModel, Rule
from .spec import ContinuableJobSpec
from .status import ContinuableJobStatus


def _name_is_label(job: ContinuableJob) -> bool:
    name = job.metadata.get("name")
    return name is None or (
        len(name) <= JOB_NAME_MAX_LENGTH and re.fullmatch(JOB_NAME_PATTERN, name) is not None
    )


class ContinuableJob(ApiModel):
    """A batch job split into named steps that resumes from its last checkpoint when its pod
    is interrupted (preemption, eviction, drain, rollout) or crashes."""

    api_version: Literal["continuable.dev/v1alpha1"] = Field(
        default="continuable.dev/v1alpha1", description=API_VERSION
    )
    kind: Literal["ContinuableJob"] = Field(default="ContinuableJob", description=KIND)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ContinuableJobSpec = Field(description="What to run and how to handle interruptions.")
    status: ContinuableJobStatus | None = Field(
        default=None, description="What was observed; written by the operator and the SDK."
    )

    cross_field_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"self.metadata.name.size() <= {JOB_NAME_MAX_LENGTH} && "
            f"self.metadata.name.matches('{JOB_NAME_PATTERN}')",
            message=f"metadata.name must be a DNS-1123 label of at most {JOB_NAME_MAX_LENGTH} "
            "characters (lower case letters, digits and '-'): it is a label value on every pod",
            holds=_name_is_label,
        ),
    )
