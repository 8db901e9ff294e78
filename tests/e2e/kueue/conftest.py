"""Kueue's manager and an operator with `--kueue`, on the session's local control plane.

The operator here watches only namespaces named `kq-*`: the session's other operator (`op-*`)
and this one never act on the same job. Each test gets a namespace, a ResourceFlavor whose node
labels name the session's process node, a ClusterQueue for that namespace alone, a LocalQueue
and two WorkloadPriorityClasses; all are removed afterwards.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.binaries import BinariesMissing
from tests.cluster.kubectl import Kubectl
from tests.cluster.kueue import KueueProcess
from tests.cluster.operating import OperatorProcess
from tests.cluster.session import Cluster, temporary_namespace
from tests.e2e.jobs import JobUnderTest

NAMESPACE_PATTERN = "kq-*"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
LOW, HIGH = 100, 1000


@pytest.fixture(scope="session")
def kueue(crds: Cluster, process_node: str | None) -> Iterator[KueueProcess]:
    if crds.control_plane is None:
        pytest.skip("runs Kueue's manager on the host against the local control plane")
    with tempfile.TemporaryDirectory(prefix="continuable-kueue-") as folder:
        try:
            process = KueueProcess(
                crds.kubeconfig,
                Path(folder),
                ca=crds.control_plane.ca,
                pods_ready_timeout=20.0,
                priority_boost=True,
            )
        except BinariesMissing as err:
            pytest.fail(str(err), pytrace=False)
        with process:
            yield process


@pytest.fixture(scope="session")
def kueue_operator(kueue: KueueProcess) -> Iterator[OperatorProcess]:
    with tempfile.TemporaryDirectory(prefix="continuable-operator-kueue-") as folder:
        process = OperatorProcess(
            kueue.kubeconfig,
            Path(folder) / "operator.log",
            namespaces=[NAMESPACE_PATTERN],
            extra_args=["--kueue", "--kueue-priority-boost"],
        )
        with process:
            yield process


@dataclass(frozen=True)
class Queues:
    """The test's Kueue objects: apply() more, set_quota() to change the ClusterQueue's."""

    kubectl: Kubectl
    namespace: str
    flavor: str
    cluster_queue: str
    local_queue: str
    low: str
    high: str
    node: str

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl.retrying("apply", "-f", "-", input=json.dumps(obj))

    def cluster_queue_object(self, cpu: str) -> dict[str, Any]:
        return {
            "apiVersion": KUEUE_API,
            "kind": "ClusterQueue",
            "metadata": {"name": self.cluster_queue},
            "spec": {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": self.namespace}
                },
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [
                            {
                                "name": self.flavor,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": cpu},
                                    {"name": "memory", "nominalQuota": "4Gi"},
                                ],
                            }
                        ],
                    }
                ],
            },
        }

    def set_quota(self, cpu: str) -> None:
        self.apply(self.cluster_queue_object(cpu))

    def workload(self, job: str) -> dict[str, Any] | None:
        found = self.kubectl.run(
            "get", "workloads.kueue.x-k8s.io", job, "-n", self.namespace, "-o", "json", check=False
        )
        return json.loads(found.stdout) if found.returncode == 0 else None

    def job(self, name: str, scratch: Path) -> JobUnderTest:
        return JobUnderTest(self.kubectl, self.namespace, name, scratch)


@pytest.fixture
def queues(
    crds: Cluster,
    kueue_operator: OperatorProcess,
    process_node: str | None,
    request: pytest.FixtureRequest,
) -> Iterator[Queues]:
    kubectl = crds.kubectl
    suffix = secrets.token_hex(3)
    with temporary_namespace(kubectl, request.node.name, prefix="kq-") as namespace:
        made = Queues(
            kubectl=kubectl,
            namespace=namespace,
            flavor=f"flavor-{suffix}",
            cluster_queue=f"cq-{suffix}",
            local_queue="team-queue",
            low=f"low-{suffix}",
            high=f"high-{suffix}",
            node=str(process_node),
        )
        cluster_scoped = [
            {
                "apiVersion": KUEUE_API,
                "kind": "ResourceFlavor",
                "metadata": {"name": made.flavor},
                "spec": {"nodeLabels": {"kubernetes.io/hostname": made.node}},
            },
            {
                "apiVersion": KUEUE_API,
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": made.low},
                "value": LOW,
            },
            {
                "apiVersion": KUEUE_API,
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": made.high},
                "value": HIGH,
            },
            made.cluster_queue_object("1"),
        ]
        try:
            for obj in cluster_scoped:
                made.apply(obj)
            made.apply(
                {
                    "apiVersion": KUEUE_API,
                    "kind": "LocalQueue",
                    "metadata": {"name": made.local_queue, "namespace": namespace},
                    "spec": {"clusterQueue": made.cluster_queue},
                }
            )
            yield made
        finally:
            # The namespace (its jobs and Workloads) goes first; the ClusterQueue is kept by
            # Kueue's finalizer until no Workload of it is admitted.
            kubectl.run(
                "delete", "namespace", namespace, "--wait=true", "--timeout=60s", check=False
            )
            for obj in reversed(cluster_scoped):
                kind = f"{obj['kind'].lower()}s.kueue.x-k8s.io"
                kubectl.run("delete", kind, obj["metadata"]["name"], "--wait=false", check=False)
