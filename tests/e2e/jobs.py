"""A ContinuableJob under test: create it, read its status, and watch what its pods did.

The job script (`tests/e2e/local/jobs/three_steps.py`) appends every side effect to an events
file on the host (pods of the process node are host processes), so a test can count exactly
which items ran in which attempt.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from continuable.names import pod_name
from tests.cluster.kubectl import Kubectl
from tests.cluster.waiting import wait_for

THREE_STEPS = "tests/e2e/local/jobs/three_steps.py"
PYTHON = sys.executable


def job_manifest(
    name: str, namespace: str, command: list[str], env: dict[str, str], **spec: Any
) -> dict[str, Any]:
    template_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 10,
        "containers": [
            {
                "name": "job",
                "image": "python",
                "command": command,
                "env": [{"name": k, "value": v} for k, v in env.items()],
            }
        ],
    }
    template_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "continuable.dev/v1alpha1",
        "kind": "ContinuableJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"checkpoint": {"intervalSeconds": 1}, "template": {"spec": template_spec}, **spec},
    }


class JobUnderTest:
    def __init__(self, kubectl: Kubectl, namespace: str, name: str, folder: Path) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.name = name
        self.events = folder / f"{name}.events"

    def manifest(self, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
        env = {"EVENTS": str(self.events), **spec.pop("env", {})}
        return job_manifest(
            self.name, self.namespace, command or [PYTHON, THREE_STEPS], env, **spec
        )

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl.retrying("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def create(self, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
        manifest = self.manifest(command, **spec)
        self.apply(manifest)
        return copy.deepcopy(manifest)

    def get(self) -> dict[str, Any]:
        raw = self.kubectl("get", "cjob", self.name, "-n", self.namespace, "-o", "json")
        job: dict[str, Any] = json.loads(raw)
        return job

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.get().get("status") or {}
        return status

    def checkpoint(self) -> dict[str, Any]:
        checkpoint: dict[str, Any] = self.status().get("checkpoint") or {}
        return checkpoint

    def condition(self, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.status().get("conditions", []) if c["type"] == kind), None)

    def wait_phase(self, *phases: str, timeout: float = 90) -> dict[str, Any]:
        last: list[Any] = [None]

        def reached() -> dict[str, Any] | None:
            status = self.status()
            last[0] = {k: status.get(k) for k in ("phase", "attempt", "conditions")}
            return status if status.get("phase") in phases else None

        return wait_for(
            reached,
            timeout=timeout,
            what=f"job {self.name} in phase {phases}",
            detail=lambda: f"last: {last[0]}",
        )

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

    def pods(self) -> list[dict[str, Any]]:
        raw = self.kubectl(
            "get",
            "pods",
            "-n",
            self.namespace,
            "-l",
            f"continuable.dev/job={self.name}",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(raw)["items"]
        return items

    def wait_pod(self, attempt: int, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            pod = self.pod(attempt)
            return pod if pod and pod.get("status", {}).get("phase") in phases else None

        return wait_for(reached, timeout=timeout, what=f"pod of attempt {attempt} in {phases}")

    def wait_gone(self, attempt: int, timeout: float = 60) -> None:
        wait_for(
            lambda: self.pod(attempt) is None,
            timeout=timeout,
            what=f"the pod of attempt {attempt} to be gone",
        )

    def delete_pod(self, attempt: int) -> None:
        self.kubectl(
            "delete", "pod", pod_name(self.name, attempt), "-n", self.namespace, "--wait=false"
        )

    def pod_log(self, attempt: int) -> str:
        """The container's output, as `kubectl logs` shows it ('' when it cannot)."""
        result = self.kubectl.run(
            "logs", pod_name(self.name, attempt), "-n", self.namespace, check=False
        )
        return result.stdout + result.stderr

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

    def event_reasons(self) -> list[str]:
        raw = self.kubectl(
            "get",
            "events",
            "-n",
            self.namespace,
            "--field-selector",
            f"involvedObject.name={self.name}",
            "-o",
            "json",
        )
        return [e["reason"] for e in json.loads(raw)["items"]]


def exit_code(pod: dict[str, Any]) -> int:
    state = pod["status"]["containerStatuses"][0]["state"]
    return int(state["terminated"]["exitCode"])
