"""The operator from the working tree, running against the session's cluster.

It watches only namespaces named `op-*`, so the SDK suite (which plays the operator's part by
hand in its own namespaces) is left alone.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.operating import OperatorProcess
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
