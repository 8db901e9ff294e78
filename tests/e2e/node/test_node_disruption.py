"""Drain and preemption reach the process: DisruptionTarget is kept, SIGTERM is delivered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Kubectl
from tests.cluster.processnode import ApiClient, NodeConfig
from tests.cluster.processnode.rest import path_of
from tests.cluster.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_drain_evicts_the_pod(
    pods: Any,
    make_nodes: Callable[..., Any],
    history: Callable[[str], Any],
    kubectl: Kubectl,
    scratch: Path,
    signal_recorder: Callable[..., list[str]],
) -> None:
    make_nodes(NodeConfig(name="drain-a"), NodeConfig(name="drain-b"))
    record = scratch / "signals"
    seen = history("evicted")
    pods.create(pods.manifest("evicted", signal_recorder(record), node="drain-a"))
    pods.wait_phase("evicted", "Running")
    wait_for(lambda: record.exists(), timeout=20, what="the process to start")
    kubectl("drain", "drain-a", "--force", "--ignore-daemonsets", "--timeout=60s", timeout=90)
    assert pods.get("evicted") is None
    assert "SIGTERM" in record.read_text()
    disruption = seen.condition("DisruptionTarget")
    assert disruption, "no version of the pod carried DisruptionTarget"
    assert disruption[-1]["reason"] == "EvictionByEvictionAPI"
    # The node's terminal status patch kept the condition it does not own.
    terminal = [
        v for v in seen.versions if v.get("status", {}).get("phase") in ("Succeeded", "Failed")
    ]
    assert terminal, "the node never reported the terminal phase"
    kinds = {c["type"] for c in terminal[-1]["status"]["conditions"]}
    assert "DisruptionTarget" in kinds
    # The other node is untouched by the drain.
    assert kubectl("get", "node", "drain-b", "--no-headers").split()[1] == "Ready"


def test_preemption_makes_room_for_a_higher_priority_pod(
    pods: Any,
    make_nodes: Callable[..., Any],
    history: Callable[[str], Any],
    admin: ApiClient,
    scratch: Path,
    namespace: str,
    signal_recorder: Callable[..., list[str]],
) -> None:
    make_nodes(NodeConfig(name="small-node", cpu="1", memory="2Gi"))
    classes = path_of("apis", "scheduling.k8s.io", "v1", "priorityclasses")
    for name, value in ((f"{namespace}-low", 10), (f"{namespace}-high", 1000)):
        admin.post(
            classes,
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            },
        )
    try:
        needs_most = {"resources": {"requests": {"cpu": "800m"}}}
        record = scratch / "victim"
        victim = history("victim")
        pods.create(
            pods.manifest(
                "victim",
                signal_recorder(record),
                node="small-node",
                grace=5,
                priorityClassName=f"{namespace}-low",
                container=needs_most,
            )
        )
        pods.wait_phase("victim", "Running")
        wait_for(lambda: record.exists(), timeout=20, what="the victim to start")
        pods.create(
            pods.manifest(
                "preemptor",
                ["python", "-c", "import time; time.sleep(60)"],
                node="small-node",
                priorityClassName=f"{namespace}-high",
                container=needs_most,
            )
        )
        pods.wait_phase("preemptor", "Running", timeout=60)
        assert pods.get("victim") is None
        assert "SIGTERM" in record.read_text()
        reasons = [c["reason"] for c in victim.condition("DisruptionTarget")]
        assert "PreemptionByScheduler" in reasons
    finally:
        for name in (f"{namespace}-low", f"{namespace}-high"):
            admin.delete(path_of("apis", "scheduling.k8s.io", "v1", "priorityclasses", name))
