"""Conditions in the shape of metav1.Condition, and the reasons the operator uses, defined once.

`lastTransitionTime` changes only when a condition's status flips, as the API conventions ask;
a new reason or message with the same status keeps the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

Condition = dict[str, Any]

RUNNING: Final = "Running"
INTERRUPTED: Final = "Interrupted"
SUSPENDED: Final = "Suspended"
COMPLETE: Final = "Complete"
FAILED: Final = "Failed"
POD_CREATE_FAILED: Final = "PodCreateFailed"

# Reasons (CamelCase, as metav1.Condition requires).
POD_RUNNING: Final = "PodRunning"
POD_PENDING: Final = "PodPending"
POD_CREATED: Final = "PodCreated"
RESUMED: Final = "Resumed"
COMPLETED: Final = "Completed"
BACKOFF_LIMIT_EXCEEDED: Final = "BackoffLimitExceeded"
RESUME_LIMIT_EXCEEDED: Final = "ResumeLimitExceeded"
STEP_NOT_REPLAYABLE: Final = "StepNotReplayable"
POD_FAILURE_POLICY: Final = "PodFailurePolicy"
WAITING_FOR_BACKOFF: Final = "BackoffAfterFailure"
POD_DELETED: Final = "PodDeleted"
SDK_INTERRUPTED: Final = "Interrupted"
ISOLATED: Final = "IsolatedStep"
INVALID_POD_TEMPLATE: Final = "InvalidPodTemplate"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
SUSPENDED_BY_USER: Final = "Suspended"
TEMPLATE_CHANGED: Final = "TemplateChanged"
RESTART_REQUESTED: Final = "RestartRequested"


def find(conditions: Sequence[Condition], kind: str) -> Condition | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def is_true(conditions: Sequence[Condition], kind: str) -> bool:
    found = find(conditions, kind)
    return found is not None and found.get("status") == "True"


def with_condition(
    conditions: Sequence[Condition],
    kind: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """`conditions` with `kind` set; the others unchanged, order kept."""
    value = "True" if status else "False"
    previous = find(conditions, kind)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == value else now
    updated: Condition = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": since,
    }
    if generation is not None:
        updated["observedGeneration"] = generation
    if previous is None:
        return [*conditions, updated]
    return [updated if c.get("type") == kind else c for c in conditions]
