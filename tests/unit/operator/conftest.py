from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

NOW = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)

JOB: dict[str, Any] = {
    "apiVersion": "continuable.dev/v1alpha1",
    "kind": "ContinuableJob",
    "metadata": {"name": "report", "namespace": "batch", "uid": "u-1", "generation": 1},
    "spec": {
        "backoffLimit": 2,
        "backoff": {"initialSeconds": 10, "maxSeconds": 60, "factor": 2.0},
        "checkpoint": {"intervalSeconds": 1},
        "template": {"spec": {"containers": [{"name": "job", "image": "python"}]}},
    },
}


@pytest.fixture
def job() -> dict[str, Any]:
    return copy.deepcopy(JOB)


def pod(
    attempt: int,
    phase: str = "Running",
    *,
    exit_code: int | None = None,
    reason: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool | str = False,
    finalizer: bool = True,
    owner: str | None = "u-1",
    node: str | None = "node-a",
) -> dict[str, Any]:
    """A pod of attempt `attempt`, controlled by the job of UID `owner` (None: by nothing)."""
    metadata: dict[str, Any] = {
        "name": f"report-{attempt}",
        "uid": f"pod-{attempt}",
        "labels": {"continuable.dev/job": "report", "continuable.dev/attempt": str(attempt)},
        "finalizers": ["continuable.dev/tracking"] if finalizer else [],
    }
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "continuable.dev/v1alpha1",
                "kind": "ContinuableJob",
                "name": "report",
                "uid": owner,
                "controller": True,
            }
        ]
    if deleting:
        # True: a deletion whose deadline passed a minute ago; a string: that deadline.
        metadata["deletionTimestamp"] = (
            deleting if isinstance(deleting, str) else "2026-11-27T08:59:00Z"
        )
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if exit_code is not None:
        status["containerStatuses"] = [
            {
                "name": "job",
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                        "finishedAt": "2026-11-27T08:59:30Z",
                    }
                },
            }
        ]
    spec: dict[str, Any] = {"containers": [{"name": "job"}]}
    if node is not None:
        spec["nodeName"] = node
    return {"metadata": metadata, "spec": spec, "status": status}


def condition(
    kind: str, status: bool, reason: str, message: str = "", since: str = "2026-11-27T08:00:00Z"
) -> dict[str, Any]:
    """A metav1.Condition (a Kueue Workload's, say)."""
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
