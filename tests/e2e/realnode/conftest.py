"""The chart's operator and the jobs in real containers on `real-0`.

One helm release for the package: the operator image built from the repository's Dockerfile, run by
the kubelet with the chart's security defaults, watching one namespace where each test creates
its jobs. A job's pod writes its ledger (which attempt processed which item) to a host folder
mounted with hostPath, the only thing the host and the container share.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from continuable.names import pod_name
from tests.cluster.realnode.configs import NODE_NAME, TAINT_KEY
from tests.cluster.realnode.node import RealNode
from tests.cluster.session import Cluster
from tests.cluster.waiting import WaitTimeout, wait_for
from tests.e2e.helm.conftest import Jobs, released
from tests.e2e.jobs import job_manifest

LEDGER_MOUNT = "/ledger"
# On the real node: tolerate its taint and ask for it by name.
ON_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {"kubernetes.io/hostname": NODE_NAME},
    "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
}


@dataclass(kw_only=True)
class RealJobs(Jobs):
    """ContinuableJobs whose pods run in real containers, with their ledgers on the host."""

    image: str

    def ledger(self, name: str) -> Path:
        return self.folder / f"{name}.ledger"

    def manifest(
        self,
        name: str,
        command: list[str],
        *,
        interval: int = 1,
        grace: int = 30,
        resources: dict[str, Any] | None = None,
        **env: str,
    ) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "job",
            "image": self.image,
            # Imported into containerd by the node; there is no registry to pull from.
            "imagePullPolicy": "Never",
            "command": command,
            "env": [
                {"name": "LEDGER_FILE", "value": f"{LEDGER_MOUNT}/{name}.ledger"},
                *({"name": k, "value": v} for k, v in env.items()),
            ],
            "volumeMounts": [{"name": "ledger", "mountPath": LEDGER_MOUNT}],
        }
        if resources:
            container["resources"] = resources
        pod = {
            **ON_REAL_NODE,
            "terminationGracePeriodSeconds": grace,
            "containers": [container],
            "volumes": [
                {"name": "ledger", "hostPath": {"path": str(self.folder), "type": "Directory"}}
            ],
        }
        checkpoint = {"intervalSeconds": interval}
        return job_manifest(name, self.namespace, command, {}, checkpoint=checkpoint, pod=pod)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl.retrying("apply", "-f", "-", input=json.dumps(manifest))

    def describe(self, name: str) -> str:
        status = self.status(name)
        status.pop("checkpoint", None)
        pods = self.kubectl.run(
            "get", "pods", "-n", self.namespace, "-o", "wide", check=False
        ).stdout
        operator = self.release.operator_log() if self.release else ""
        return f"status: {json.dumps(status)}\npods:\n{pods}\noperator:\n{operator}"

    def wait_running(self, name: str, attempt: int, timeout: float = 120) -> dict[str, Any]:
        def running() -> dict[str, Any] | None:
            pod = self.pod(name, attempt)
            return pod if pod and pod["status"].get("phase") == "Running" else None

        return wait_for(
            running,
            timeout=timeout,
            what=f"pod {pod_name(name, attempt)} Running",
            interval=0.2,
            detail=lambda: self.describe(name),
        )

    def entries(self, name: str) -> list[tuple[str, int]]:
        """(item, attempt) per ledger line, in the order written."""
        path = self.ledger(name)
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            item, _, attempt = line.partition(" attempt=")
            if attempt.isdigit():
                out.append((item, int(attempt)))
        return out

    def counts(self, name: str) -> Counter[str]:
        return Counter(item for item, _ in self.entries(name))

    def wait_entries(self, name: str, count: int, timeout: float = 120) -> None:
        wait_for(
            lambda: len(self.entries(name)) >= count,
            timeout=timeout,
            what=f"{count} ledger lines of job {name}",
            interval=0.2,
            detail=lambda: f"{len(self.entries(name))} so far; {self.describe(name)}",
        )

    def delete_pod(self, name: str, attempt: int) -> None:
        self.kubectl("delete", "pod", pod_name(name, attempt), "-n", self.namespace, "--wait=false")

    def evict_pod(self, name: str, attempt: int) -> None:
        pod = pod_name(name, attempt)
        eviction = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": self.namespace},
        }
        self.kubectl(
            "create",
            "--raw",
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}/eviction",
            "-f",
            "-",
            input=json.dumps(eviction),
        )


@pytest.fixture(scope="package")
def real_jobs(crds: Cluster, real_node: RealNode) -> Iterator[RealJobs]:
    """The chart installed with the operator image, on the real node, and its jobs' namespace."""
    operator, job = real_node.images.operator, real_node.images.job
    values: dict[str, Any] = {
        "image.repository": operator.repository,
        "image.tag": operator.tag,
        "image.pullPolicy": "Never",
        # In its own network namespace: the Service reaches it on the pod's address.
        "operator.extraArgs": [],
        **ON_REAL_NODE,
    }
    try:
        with released(crds, "real", install=False, **values) as (release, jobs):
            # helm --wait: until the kubelet's readiness probe passes on /readyz.
            release.install()
            yield RealJobs(
                kubectl=crds.kubectl,
                namespace=jobs.namespace,
                folder=jobs.folder,
                release=release,
                image=job.name,
            )
    except WaitTimeout as err:
        pytest.fail(str(err), pytrace=False)
