"""Conditions in the shape of metav1.Condition, and the reasons the operator uses, defined once.

`lastTransitionTime` changes only when a condition's status flips, as the API conventions ask;
a new reason or message with the same status keeps the time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

Condition = dict[str, Any]

RUNNING: Final = "Running"
INTERRUPTED: Final = "Interrupted"
SUSPENDED: Final = "Suspended"
COMPLETE: Final = "Complete"
FAILED: Final = "Failed"
POD_CREATE_FAILED: Final = "PodCreateFailed"
# True while an object the job needs has a name taken by something this job does not control.
NAME_CONFLICT: Final = "NameConflict"
# True while the template's service account is named by an earlier job of the namespace.
SERVICE_ACCOUNT_SHARED: Final = "ServiceAccountShared"
# True while the last restart request was refused (the message says why).
RESTART_REFUSED: Final = "RestartRefused"

# Reasons (CamelCase, as metav1.Condition requires).
POD_RUNNING: Final = "PodRunning"
POD_PENDING: Final = "PodPending"
# Running=False while the attempt's pod is being created and has not been seen yet.
CREATING_POD: Final = "CreatingPod"
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
UNKNOWN_STEP: Final = "UnknownStep"
POD_LOST: Final = "PodLost"
JOB_DELETED: Final = "JobDeleted"
SUPERSEDED: Final = "Superseded"
JOB_FINISHED: Final = "JobFinished"
NAME_TAKEN: Final = "NameTaken"
NAME_FREE: Final = "NameFree"
ACCOUNT_SHARED: Final = "AccountShared"
ACCOUNT_OWN: Final = "AccountNotShared"
# Kueue (issue 25): a queued job waits for its Workload's admission; an eviction stops its pod.
QUEUED: Final = "Queued"
WAITING_FOR_ADMISSION: Final = "WaitingForAdmission"
ADMITTED_BY_KUEUE: Final = "Admitted"
EVICTED_BY_KUEUE: Final = "EvictedByKueue"
# A pod runs only while the job's Workload admits it: one gone or no longer admitted stops it.
NOT_ADMITTED_BY_KUEUE: Final = "NotAdmittedByKueue"
# Kueue deactivated the Workload itself (requeuing limit, maximum execution time): the job fails.
DEACTIVATED_BY_KUEUE: Final = "DeactivatedByKueue"
PRIORITY_CLASS_NOT_FOUND: Final = "PriorityClassNotFound"
INVALID_KUEUE_LABEL: Final = "InvalidKueueLabel"
# The reasons of the stops the operator causes itself: classified before any podFailurePolicy
# rule, so no rule can turn them into failures.
OWN_STOPS: Final = frozenset(
    {
        TEMPLATE_CHANGED,
        SUSPENDED_BY_USER,
        DEADLINE_EXCEEDED,
        RESTART_REQUESTED,
        SUPERSEDED,
        JOB_FINISHED,
        JOB_DELETED,
        EVICTED_BY_KUEUE,
        NOT_ADMITTED_BY_KUEUE,
        DEACTIVATED_BY_KUEUE,
    }
)

# metav1.Condition's reason: what the CRD enforces, so a write never fails on it.
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_REASON_MAX = 1024


def reason_of(text: str) -> str:
    """`text` made a valid condition reason. Reasons come from outside too (a pod's
    `status.reason` such as `OutOfnvidia.com/gpu`, a DisruptionTarget's reason): a character
    the pattern refuses becomes `_`, and a reason must start with a letter."""
    if _REASON.match(text) and len(text) <= _REASON_MAX:
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_,:]", "_", text)[:_REASON_MAX].rstrip(",:")
    if not cleaned[:1].isalpha():
        cleaned = f"Reason{cleaned}"[:_REASON_MAX].rstrip(",:")
    return cleaned


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
        "reason": reason_of(reason),
        "message": message[:32768],
        "lastTransitionTime": since,
    }
    if generation is not None:
        updated["observedGeneration"] = generation
    if previous is None:
        return [*conditions, updated]
    return [updated if c.get("type") == kind else c for c in conditions]
