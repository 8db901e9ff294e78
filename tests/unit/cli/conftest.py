"""Job documents as the API server returns them, and a fake cluster behind the CLI's seam."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from continuable.cli.cluster import ConnectOptions
from continuable.cli.errors import ApiError

NOW = datetime(2026, 5, 4, 12, 0, 30, tzinfo=UTC)

RUNNING: dict[str, Any] = {
    "apiVersion": "continuable.dev/v1alpha1",
    "kind": "ContinuableJob",
    "metadata": {"name": "order-batch", "namespace": "shop", "resourceVersion": "41"},
    "spec": {
        "backoffLimit": 6,
        "maxResumptions": 10,
        "steps": ["fetch_orders", "process_orders", "notify"],
        "checkpoint": {"intervalSeconds": 1},
        "template": {"spec": {"containers": [{"name": "job", "image": "python"}]}},
    },
    "status": {
        "phase": "Running",
        "attempt": 2,
        "podName": "order-batch-2",
        "startTime": "2026-05-04T11:58:00Z",
        "interruptions": 1,
        "failures": 0,
        "resumptions": 1,
        "savedSeconds": 12.5,
        "attempts": [
            {
                "attempt": 1,
                "podName": "order-batch-1",
                "startTime": "2026-05-04T11:58:00Z",
                "endTime": "2026-05-04T11:59:10Z",
                "outcome": "Interrupted",
                "reason": "ManualInterruption",
                "message": "interrupted by `continuable interrupt` (ann@laptop)",
                "exitCode": 75,
            },
            {
                "attempt": 2,
                "podName": "order-batch-2",
                "startTime": "2026-05-04T11:59:12Z",
                "outcome": "Running",
            },
        ],
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "PodRunning",
                "message": "attempt 2 runs in pod order-batch-2",
                "lastTransitionTime": "2026-05-04T11:59:12Z",
            }
        ],
        "checkpoint": {
            "steps": [
                {
                    "name": "fetch_orders",
                    "state": "Completed",
                    "attempt": 1,
                    "startedAt": "2026-05-04T11:58:01Z",
                    "completedAt": "2026-05-04T11:58:03Z",
                    "durationSeconds": 2.013,
                },
                {
                    "name": "process_orders",
                    "state": "Started",
                    "cursor": 3100,
                    "attempt": 1,
                    "startedAt": "2026-05-04T11:58:03Z",
                    "durationSeconds": 124.0,
                },
            ],
            "currentStep": "process_orders",
            "progress": {"done": 3100, "total": 5000, "summary": "3100/5000"},
            "updatedAt": "2026-05-04T12:00:29Z",
            "attempt": 2,
        },
    },
}


def failed_not_replayable() -> dict[str, Any]:
    job = copy.deepcopy(RUNNING)
    job["metadata"]["name"] = "ai-report"
    job["spec"]["steps"] = ["extract", "summarise", "format", "deliver"]
    status = job["status"]
    status.update(phase="Failed", podName=None, completionTime="2026-05-04T12:00:00Z")
    status["attempts"][-1].update(
        outcome="Failed", reason="StepNotReplayable", exitCode=1, endTime="2026-05-04T12:00:00Z"
    )
    status["conditions"] = [
        {
            "type": "Failed",
            "status": "True",
            "reason": "StepNotReplayable",
            "message": "step deliver was started by attempt 1 and is not idempotent",
            "lastTransitionTime": "2026-05-04T12:00:00Z",
        }
    ]
    status["checkpoint"] = {
        "steps": [
            {"name": "extract", "state": "Completed", "attempt": 1, "durationSeconds": 0.2},
            {"name": "summarise", "state": "Completed", "attempt": 1, "durationSeconds": 14.1},
            {"name": "format", "state": "Completed", "attempt": 1, "durationSeconds": 0.01},
            {"name": "deliver", "state": "Started", "attempt": 1, "durationSeconds": 0.4},
        ],
        "currentStep": "deliver",
        "stopReason": "NotReplayable",
        "attempt": 2,
        "updatedAt": "2026-05-04T12:00:00Z",
    }
    return job


def pod(name: str, attempt: int, phase: str = "Running", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {
                "continuable.dev/job": name.rsplit("-", 1)[0],
                "continuable.dev/attempt": str(attempt),
            },
            **metadata,
        },
        "spec": {"containers": [{"name": "job"}, {"name": "sidecar"}]},
        "status": {"phase": phase},
    }


@dataclass
class FakeCluster:
    """The CLI's `Cluster` seam over dicts: records every write, serves what it was given."""

    jobs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    default_namespace: str = "shop"
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    errors: dict[str, ApiError] = field(default_factory=dict)
    connected_with: list[ConnectOptions] = field(default_factory=list)

    def add_job(self, *versions: dict[str, Any]) -> None:
        """Versions are served in turn (the last one again and again), as a watch sees them."""
        first = versions[0]["metadata"]
        self.jobs[(first["namespace"], first["name"])] = [copy.deepcopy(v) for v in versions]

    def _fail(self, call: str) -> None:
        if call in self.errors:
            raise self.errors[call]

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get_job", namespace, name))
        self._fail("get_job")
        versions = self.jobs.get((namespace, name))
        if not versions:
            raise ApiError(404, f'continuablejobs.continuable.dev "{name}" not found')
        return copy.deepcopy(versions.pop(0) if len(versions) > 1 else versions[0])

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch_job", namespace, name, patch))
        self._fail("patch_job")
        return self.get_job(namespace, name)

    def list_job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        self.calls.append(("list_job_pods", namespace, job))
        return copy.deepcopy(self.pods.get(job, []))

    def patch_pod_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append(("patch_pod_status", namespace, name, patch))
        self._fail("patch_pod_status")

    def delete_pod(
        self, namespace: str, name: str, *, uid: str | None, grace_period_seconds: int | None
    ) -> None:
        self.calls.append(("delete_pod", namespace, name, uid, grace_period_seconds))
        self._fail("delete_pod")

    def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None,
        follow: bool,
        tail_lines: int | None,
    ) -> Iterator[str]:
        self.calls.append(("pod_log", namespace, name, container, follow, tail_lines))
        self._fail("pod_log")
        yield from self.logs.get(name, [])

    def writes(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if not c[0].startswith(("get", "list"))]


@pytest.fixture
def cluster() -> FakeCluster:
    fake = FakeCluster()
    fake.add_job(RUNNING)
    return fake


@pytest.fixture
def running() -> dict[str, Any]:
    return copy.deepcopy(RUNNING)
