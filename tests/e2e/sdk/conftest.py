"""Running SDK jobs in real pods before the operator exists: the harness does by hand what the
operator will do (status.attempt, the results ConfigMap, per-job RBAC), with the operator's own
builders, and starts each attempt's pod. So the pods get what the operator gives them, the job's
UID in `CONTINUABLE_JOB_UID` among it, and the results ConfigMap is owned by the job, the owner
reference its writes test."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from continuable.names import RESULTS_ATTEMPT_KEY, results_config_map
from continuable_operator.launching import build_pod, build_results_config_map
from continuable_operator.permissions import build_role, build_role_binding, build_service_account
from tests.cluster.session import Cluster
from tests.e2e.jobs import JobUnderTest


class JobHarness(JobUnderTest):
    """Does by hand what the operator does before each attempt."""

    def create(self, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
        super().create(command, **spec)
        created = self.get()
        self.apply(build_service_account(created))
        self.apply(build_role_binding(created))
        self.apply(build_results_config_map(created, 1))
        return created

    def set_attempt(self, attempt: int) -> None:
        """Fence the old attempt out, then grant the new one."""
        self.kubectl(
            "patch",
            "cjob",
            self.name,
            "-n",
            self.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"attempt": attempt}}),
        )
        self.kubectl(
            "patch",
            "configmap",
            results_config_map(self.name),
            "-n",
            self.namespace,
            "--type=merge",
            "-p",
            json.dumps({"data": {RESULTS_ATTEMPT_KEY: str(attempt)}}),
        )
        self.apply(build_role(self.get(), attempt))

    def launch(self, attempt: int) -> str:
        self.set_attempt(attempt)
        pod = build_pod(self.get(), attempt)
        # Without the operator nobody would remove its tracking finalizer.
        pod["metadata"].pop("finalizers")
        self.apply(pod)
        return str(pod["metadata"]["name"])


@pytest.fixture
def harness(crds: Cluster, namespace: str, scratch: Path, process_node: str | None) -> JobHarness:
    return JobHarness(crds.kubectl, namespace, f"job-{int(time.time() * 1000) % 100000}", scratch)
