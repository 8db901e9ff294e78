"""Fixtures shared by every e2e suite: one cluster per run, one namespace per test."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.binaries import BinariesMissing
from tests.cluster.processnode import NodeConfig, ProcessNodes
from tests.cluster.realnode import images
from tests.cluster.realnode.node import JoinInfo, RealNode, RealNodeError
from tests.cluster.session import Cluster, open_cluster, temporary_namespace


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The local control plane (started once per run), or CONTINUABLE_E2E_KUBECONFIG's cluster."""
    try:
        with open_cluster() as handle:
            yield handle
    except BinariesMissing as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """The cluster, once the CRDs in crds/ were accepted; fails with the apiserver's reason."""
    if cluster.crd_error is not None:
        pytest.fail(f"the CRDs were not applied: {cluster.crd_error}", pytrace=False)
    return cluster


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    with temporary_namespace(cluster.kubectl, request.node.name) as name:
        yield name


@pytest.fixture
def local_cluster(cluster: Cluster) -> Cluster:
    """For tests that restart or inspect components: only possible on the local control plane."""
    if cluster.control_plane is None:
        pytest.skip("needs the local control plane, not CONTINUABLE_E2E_KUBECONFIG's cluster")
    return cluster


@pytest.fixture(scope="session")
def process_node(cluster: Cluster) -> Iterator[str | None]:
    """A process node that runs the session's job pods; None on an external cluster (its own
    nodes run them)."""
    if cluster.control_plane is None:
        yield None
        return
    with ProcessNodes(cluster.control_plane, [NodeConfig(name="e2e-node")]) as nodes:
        yield next(iter(nodes.agents))


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> Iterator[RealNode]:
    """`real-0`: kubelet, containerd and runc, kube-proxy, with the images built from the
    repository; started the first time a test asks, for the rest of the session."""
    cp = cluster.control_plane
    if cp is None:
        pytest.skip("needs the local control plane (the real node joins it with its CA)")
    try:
        built = images.build()
        join = JoinInfo.from_certs(cp.server, cp.certs_dir, cp.kubeconfig)
        with RealNode(join, built, cp.work_dir / "real-0") as node:
            yield node
    except (images.ImagesError, RealNodeError) as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder the pods' processes can write their evidence into (they may run as anyone)."""
    with tempfile.TemporaryDirectory(prefix="continuable-e2e-") as folder:
        path = Path(folder)
        path.chmod(0o777)
        yield path
