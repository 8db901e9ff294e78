"""A process node registers as Ready and runs pods as host processes, reported as a kubelet."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.cluster import Kubectl
from tests.cluster.processnode import ApiClient
from tests.cluster.processnode.rest import path_of
from tests.cluster.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def test_node_is_ready(kubectl: Kubectl, admin: ApiClient, node: str) -> None:
    table = kubectl("get", "nodes", node, "--no-headers")
    assert table.split()[:2] == [node, "Ready"], table
    obj = admin.get(path_of("api", "v1", "nodes", node))
    conditions = _conditions(obj)
    assert {k: c["status"] for k, c in conditions.items()} == {
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
        "Ready": "True",
    }
    assert conditions["Ready"]["reason"] == "KubeletReady"
    assert obj["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert {a["type"]: a["address"] for a in obj["status"]["addresses"]} == {
        "InternalIP": "127.0.0.1",
        "Hostname": node,
    }

    # Ready=True is what clears the not-ready taint the admission plugin put on at creation; the
    # node lifecycle controller does it on its next pass, so wait for it (bounded).
    def untainted() -> bool:
        node_now = admin.get(path_of("api", "v1", "nodes", node))
        taints = [t["key"] for t in node_now.get("spec", {}).get("taints", [])]
        return "node.kubernetes.io/not-ready" not in taints

    wait_for(untainted, timeout=30, what=f"the not-ready taint removed from {node}")


def test_lease_is_renewed(admin: ApiClient, node: str) -> None:
    path = path_of(
        "apis", "coordination.k8s.io", "v1", "namespaces", "kube-node-lease", "leases", node
    )
    first = admin.get(path)
    assert first["spec"]["holderIdentity"] == node
    assert first["spec"]["leaseDurationSeconds"] == 40
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Node"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(1)
        if admin.get(path)["spec"]["renewTime"] != first["spec"]["renewTime"]:
            return
    pytest.fail("the node Lease was not renewed within 15 s")


def test_pod_succeeds_and_its_output_is_readable(pods: Any, node: str) -> None:
    pods.create(pods.manifest("print-one", ["python", "-c", "print(1)"], node=node))
    pod = pods.wait_phase("print-one", "Succeeded", "Failed")
    status = pod["status"]
    assert status["phase"] == "Succeeded"
    (container,) = status["containerStatuses"]
    terminated = container["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["startedAt"]
    assert terminated["finishedAt"]
    assert status["hostIP"] == status["podIP"] == "127.0.0.1"
    assert status["startTime"]
    conditions = _conditions(pod)
    assert conditions["PodScheduled"]["status"] == "True"
    assert conditions["Initialized"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "PodCompleted"
    assert pods.log_path("print-one").read_text() == "1\n"


def test_failing_pod_reports_its_exit_code(pods: Any, node: str) -> None:
    command = ["python", "-c", "import sys; print('bad', file=sys.stderr); sys.exit(3)"]
    pods.create(pods.manifest("exit-three", command, node=node))
    pod = pods.wait_phase("exit-three", "Succeeded", "Failed")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert _conditions(pod)["ContainersReady"]["reason"] == "ContainersNotReady"
    assert "bad" in pods.log_path("exit-three").read_text()


def test_running_pod_is_ready_then_runs_until_done(pods: Any, node: str) -> None:
    command = ["python", "-c", "import time; time.sleep(3)"]
    pods.create(pods.manifest("short-sleep", command, node=node))
    pod = pods.wait_phase("short-sleep", "Running")
    conditions = _conditions(pod)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["ContainersReady"]["status"] == "True"
    assert conditions["PodReadyToStartContainers"]["status"] == "True"
    container = pod["status"]["containerStatuses"][0]
    assert container["ready"] is True
    assert container["started"] is True
    assert "running" in container["state"]
    assert pods.wait_phase("short-sleep", "Succeeded", timeout=30)


def test_environment_follows_the_pod_spec(
    pods: Any, node: str, admin: ApiClient, namespace: str
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"password": base64.b64encode(b"s3cret").decode()},
    }
    admin.post(path_of("api", "v1", "namespaces", namespace, "secrets"), secret)
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"mode": "fast"},
    }
    admin.post(path_of("api", "v1", "namespaces", namespace, "configmaps"), config)
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "GREETING", "value": "hello $(POD_NAME)"},
    ]
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    manifest = pods.manifest(
        "env-dump",
        ["python", "-c", dump],
        node=node,
        metadata={"labels": {"team": "blue"}, "annotations": {"note": "hi"}},
        container={"env": env},
    )
    created = pods.create(manifest)
    assert pods.wait_phase("env-dump", "Succeeded", "Failed")["status"]["phase"] == "Succeeded"
    seen = json.loads(pods.log_path("env-dump").read_text())
    assert seen["POD_NAME"] == "env-dump"
    assert seen["POD_NAMESPACE"] == namespace
    assert seen["POD_UID"] == created["metadata"]["uid"]
    assert seen["NODE"] == node
    assert seen["POD_IP"] == "127.0.0.1"
    assert (seen["TEAM"], seen["NOTE"]) == ("blue", "hi")
    assert (seen["PASSWORD"], seen["MODE"]) == ("s3cret", "fast")
    assert seen["GREETING"] == "hello env-dump"
    assert seen["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert seen["PATH"].split(":")[0].endswith("/.venv/bin")


def test_init_containers_are_refused_clearly(pods: Any, node: str) -> None:
    manifest = pods.manifest(
        "with-init",
        ["python", "-c", "print(1)"],
        node=node,
        initContainers=[{"name": "setup", "image": "x", "command": ["true"]}],
    )
    pods.create(manifest)
    status = pods.wait_phase("with-init", "Failed")["status"]
    assert status["reason"] == "InitContainersUnsupported"
    assert "init containers" in status["message"]
