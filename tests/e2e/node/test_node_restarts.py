"""The agent survives an apiserver restart, and a restarted agent reconciles its pods."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import ControlPlane
from tests.cluster.processes import is_running
from tests.cluster.processnode import NodeConfig
from tests.cluster.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_agent_restart_reports_lost_processes_as_failed(
    pods: Any,
    make_nodes: Callable[..., Any],
    scratch: Path,
    signal_recorder: Callable[..., list[str]],
) -> None:
    nodes = make_nodes(NodeConfig(name="restarting-node"))
    record = scratch / "signals"
    pods.create(pods.manifest("survivor", signal_recorder(record), node="restarting-node"))
    pods.wait_phase("survivor", "Running")
    wait_for(lambda: record.exists(), timeout=20, what="the process to start")
    worker = nodes.agents["restarting-node"].worker_for(pods.namespace, "survivor")
    (proc,) = worker.procs.values()
    # As a crashed kubelet: the agent goes, the process stays.
    nodes.restart("restarting-node", terminate_pods=False)
    pod = pods.wait_phase("survivor", "Failed", timeout=30)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "ContainerStatusUnknown")
    assert not is_running(proc.record)
    # The restarted node still runs new pods.
    pods.create(pods.manifest("after", ["python", "-c", "print(2)"], node="restarting-node"))
    assert pods.wait_phase("after", "Succeeded", "Failed")["status"]["phase"] == "Succeeded"


def test_agent_survives_an_apiserver_restart(
    pods: Any, node: str, control_plane: ControlPlane
) -> None:
    pods.create(pods.manifest("before", ["python", "-c", "import time; time.sleep(8)"], node=node))
    pods.wait_phase("before", "Running")
    control_plane.restart_apiserver(down_for=2)
    # The process ended while the apiserver was away or just after: its end is still reported.
    assert pods.wait_phase("before", "Succeeded", timeout=40)["status"]["phase"] == "Succeeded"
    pods.create(pods.manifest("after", ["python", "-c", "print(3)"], node=node))
    assert (
        pods.wait_phase("after", "Succeeded", "Failed", timeout=40)["status"]["phase"]
        == "Succeeded"
    )
