"""Two replicas with --leader-elect: one acts, the other stands by and takes over when the
leader dies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster.operating import OperatorProcess
from tests.cluster.session import Cluster, temporary_namespace
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import JobUnderTest

pytestmark = pytest.mark.e2e


def test_only_the_lease_holder_acts_and_a_follower_takes_over(
    crds: Cluster, process_node: str | None, scratch: Path
) -> None:
    lease = f"lease-{int(time.time())}"

    def replica(name: str) -> OperatorProcess:
        return OperatorProcess(
            crds.kubeconfig,
            scratch / f"{name}.log",
            namespaces=["lead-*"],
            extra_args=["--leader-elect", "--lease-name", lease, "--lease-namespace", "default"],
        )

    first, second = replica("first"), replica("second")
    with temporary_namespace(crds.kubectl, "leader", prefix="lead-") as namespace:
        try:
            first.start()
            wait_for(
                lambda: "leading as" in first.log_path.read_text(),
                timeout=30,
                what="the first replica to lead",
            )
            second.start()
            wait_for(
                lambda: "standing by" in second.log_path.read_text(),
                timeout=30,
                what="the second replica to stand by",
            )
            job = JobUnderTest(crds.kubectl, namespace, "led", scratch)
            job.create(env={"ITEM_SECONDS": "0"})
            job.wait_phase("Succeeded")
            assert "leading as" not in second.log_path.read_text()

            first.kill()
            wait_for(
                lambda: "leading as" in second.log_path.read_text(),
                timeout=60,
                what="the follower to take over after the lease expired",
            )
            after = JobUnderTest(crds.kubectl, namespace, "after", scratch)
            after.create(env={"ITEM_SECONDS": "0"})
            after.wait_phase("Succeeded")
        finally:
            first.stop()
            second.stop()
            crds.kubectl.run("delete", "lease", lease, "-n", "default", check=False)
