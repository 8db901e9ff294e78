"""Running SDK jobs in real pods before the operator exists: the harness does by hand what the
operator will do (status.attempt, the results ConfigMap, per-job RBAC), with the operator's own
builders, and starts each attempt's pod."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from continuable.names import RESULTS_ATTEMPT_KEY, pod_name, results_config_map
from continuable_operator.launching import build_pod, build_results_config_map
from continuable_operator.permissions import build_role, build_role_binding, build_service_account
from tests.cluster.session import Cluster
from tests.cluster.waiting import wait_for

THREE_STEPS = "tests/e2e/local/jobs/three_steps.py"


class JobHarness:
    def __init__(self, cluster: Cluster, namespace: str, name: str, folder: Path) -> None:
        self.kubectl = cluster.kubectl
        self.namespace = namespace
        self.name = name
        self.events = folder / f"{name}.events"

    def create(self, command: list[str], *, interval: int = 1, **env: str) -> dict[str, Any]:
        environment = [{"name": "EVENTS", "value": str(self.events)}]
        environment += [{"name": k, "value": v} for k, v in env.items()]
        job = {
            "apiVersion": "continuable.dev/v1alpha1",
            "kind": "ContinuableJob",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "checkpoint": {"intervalSeconds": interval},
                "template": {
                    "spec": {
                        "terminationGracePeriodSeconds": 10,
                        "containers": [
                            {
                                "name": "job",
                                "image": "python",
                                "command": command,
                                "env": environment,
                            }
                        ],
                    }
                },
            },
        }
        self.apply(job)
        created = self.get()
        self.apply(build_service_account(created))
        self.apply(build_role_binding(created))
        self.apply(build_results_config_map(created, 1))
        return created

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl.retrying("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def get(self) -> dict[str, Any]:
        raw = self.kubectl("get", "cjob", self.name, "-n", self.namespace, "-o", "json")
        job: dict[str, Any] = json.loads(raw)
        return job

    def checkpoint(self) -> dict[str, Any]:
        checkpoint: dict[str, Any] = self.get().get("status", {}).get("checkpoint", {})
        return checkpoint

    def set_attempt(self, attempt: int) -> None:
        """What the operator does before a launch: fence the old attempt out, then grant."""
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

    def pod(self, attempt: int) -> dict[str, Any] | None:
        result = self.kubectl.run(
            "get",
            "pod",
            pod_name(self.name, attempt),
            "-n",
            self.namespace,
            "-o",
            "json",
            check=False,
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def wait_pod(self, attempt: int, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            pod = self.pod(attempt)
            return pod if pod and pod.get("status", {}).get("phase") in phases else None

        return wait_for(ended, timeout=timeout, what=f"pod of attempt {attempt} in {phases}")

    def wait_gone(self, attempt: int, timeout: float = 60) -> None:
        wait_for(lambda: self.pod(attempt) is None, timeout=timeout, what="the pod to be gone")

    def lines(self) -> list[str]:
        if not self.events.exists():
            return []
        return [line.rsplit(" ", 1)[0] for line in self.events.read_text().splitlines()]

    def items(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines() if line.startswith("item ")]

    def wait_items(self, count: int, timeout: float = 60) -> None:
        wait_for(
            lambda: len(self.items()) >= count,
            timeout=timeout,
            what=f"{count} items processed",
            detail=lambda: f"{len(self.items())} so far",
        )

    def delete_pod(self, attempt: int) -> None:
        self.kubectl(
            "delete", "pod", pod_name(self.name, attempt), "-n", self.namespace, "--wait=false"
        )

    def exit_code(self, pod: dict[str, Any]) -> int:
        state = pod["status"]["containerStatuses"][0]["state"]
        return int(state["terminated"]["exitCode"])


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="continuable-sdk-e2e-") as folder:
        path = Path(folder)
        path.chmod(0o777)
        yield path


@pytest.fixture
def harness(crds: Cluster, namespace: str, scratch: Path, process_node: str | None) -> JobHarness:
    return JobHarness(crds, namespace, f"job-{int(time.time() * 1000) % 100000}", scratch)
