"""The operator from the working tree, running against the session's cluster.

It watches only namespaces named `op-*`, so the SDK suite (which plays the operator's part by
hand in its own namespaces) is left alone.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.operating import OperatorProcess
from tests.cluster.processnode import NodeConfig, ProcessNodes, StandaloneNode
from tests.cluster.session import Cluster, temporary_namespace
from tests.e2e.jobs import JobUnderTest

NAMESPACE_PATTERN = "op-*"


@pytest.fixture(scope="session")
def operator(crds: Cluster, process_node: str | None) -> Iterator[OperatorProcess]:
    with tempfile.TemporaryDirectory(prefix="continuable-operator-") as folder:
        process = OperatorProcess(
            crds.kubeconfig, Path(folder) / "operator.log", namespaces=[NAMESPACE_PATTERN]
        )
        with process:
            yield process


@pytest.fixture
def op_namespace(crds: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    with temporary_namespace(crds.kubectl, request.node.name, prefix="op-") as name:
        yield name


@pytest.fixture
def job(crds: Cluster, operator: OperatorProcess, op_namespace: str, scratch: Path) -> JobUnderTest:
    return JobUnderTest(
        crds.kubectl, op_namespace, f"job-{int(time.time() * 1000) % 100000}", scratch
    )


def _control_plane(cluster: Cluster) -> ControlPlane:
    if cluster.control_plane is None:
        pytest.skip("needs nodes of the test's own, on the local control plane")
    return cluster.control_plane


@pytest.fixture
def pausable_node(crds: Cluster) -> Iterator[StandaloneNode]:
    """A process node of this test's own, its agent in a process of its own so the test can
    freeze it (SIGSTOP) while its pods run on. Afterwards: continued, stopped (its pods with
    it), its folder removed and its Node deleted."""
    node = StandaloneNode(_control_plane(crds), f"pausable-{secrets.token_hex(3)}")
    try:
        with node:
            yield node
    finally:
        crds.kubectl.run("delete", "node", node.name, "--wait=false", check=False)


@pytest.fixture
def make_node(crds: Cluster) -> Iterator[Callable[[str], None]]:
    """Start a process node of this test's own (in this process) when the test asks, under a
    name the test chose (unique: e.g. with a random suffix); it is stopped, its folder removed
    and its Node deleted afterwards."""
    started: list[tuple[ProcessNodes, str]] = []

    def make(name: str) -> None:
        nodes = ProcessNodes(_control_plane(crds), [NodeConfig(name=name)])
        started.append((nodes, name))
        nodes.start()

    yield make
    for nodes, name in started:
        nodes.stop()
        crds.kubectl.run("delete", "node", name, "--wait=false", check=False)
