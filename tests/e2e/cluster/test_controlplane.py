"""The local control plane itself: pinned version, health, RBAC identities, scheduling, restarts."""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tests.cluster.binaries import PINS
from tests.cluster.kubectl import Kubectl
from tests.cluster.session import Cluster

pytestmark = pytest.mark.e2e


def test_server_reports_the_pinned_version(cluster: Cluster) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json"))
    assert versions["clientVersion"]["gitVersion"] == PINS.kubernetes
    if cluster.is_local:
        server = versions["serverVersion"]
        assert server["gitVersion"] == PINS.kubernetes
        assert (server["major"], server["minor"]) == ("1", PINS.kubernetes.split(".")[1])


def test_readyz_is_ok(cluster: Cluster) -> None:
    assert cluster.kubectl("get", "--raw", "/readyz").strip() == "ok"


def test_every_component_answers(local_cluster: Cluster) -> None:
    cp = local_cluster.control_plane
    assert cp is not None
    assert [p.name for p in cp.processes] == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    verbose = local_cluster.kubectl("get", "--raw", "/readyz?verbose")
    assert "[+]etcd ok" in verbose
    assert "[+]poststarthook/rbac/bootstrap-roles ok" in verbose


def test_token_request_works(cluster: Cluster, namespace: str) -> None:
    # The namespace fixture waited for the `default` service account: the controller-manager's
    # service-account controller runs. TokenRequest needs the issuer and signing key flags.
    token = cluster.kubectl("create", "token", "default", "-n", namespace).strip()
    assert token.count(".") == 2


def test_rbac_is_enforced_for_a_node_identity(local_cluster: Cluster, tmp_path: Path) -> None:
    cp = local_cluster.control_plane
    assert cp is not None
    node_cfg = cp.issue_kubeconfig(tmp_path / "node.kubeconfig", "system:node:n1", ["system:nodes"])
    as_node = Kubectl(node_cfg, local_cluster.kubectl.executable)
    assert as_node("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}") == (
        "system:node:n1"
    )
    denied = as_node.run("get", "secrets", "-n", "kube-system", check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr


def test_scheduler_binds_a_pod_to_a_node(local_cluster: Cluster, namespace: str) -> None:
    kubectl = local_cluster.kubectl
    node = f"{namespace}-node"
    kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
    )
    try:
        # Without capacity the scheduler filters the node out ("Too many pods").
        capacity = {"cpu": "2", "memory": "4Gi", "pods": "10"}
        kubectl(
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"capacity": capacity, "allocatable": capacity}}),
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bind-me", "namespace": namespace},
            "spec": {
                "containers": [{"name": "main", "image": "busybox"}],
                # No kubelet reports this node Ready, so the node controller taints it.
                "tolerations": [{"operator": "Exists"}],
                # Other suites' process nodes may be Ready too: this node, but still through the
                # scheduler (matchFields is resolved by it, unlike spec.nodeName).
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchFields": [
                                        {"key": "metadata.name", "operator": "In", "values": [node]}
                                    ]
                                }
                            ]
                        }
                    }
                },
            },
        }
        kubectl("create", "-f", "-", input=json.dumps(pod))
        deadline = time.monotonic() + 30
        bound = ""
        while time.monotonic() < deadline and not bound:
            bound = kubectl(
                "get", "pod", "bind-me", "-n", namespace, "-o", "jsonpath={.spec.nodeName}"
            )
            time.sleep(0.2)
        assert bound == node
    finally:
        # No kubelet will confirm the pod's end, so it would stay Terminating without --force.
        kubectl.run(
            "delete",
            "pod",
            "bind-me",
            "-n",
            namespace,
            "--force",
            "--grace-period=0",
            "--ignore-not-found",
            check=False,
        )
        kubectl.run("delete", "node", node, "--ignore-not-found", check=False)


class _ConfigMapWatcher:
    """A client in the style of an operator: list, then watch from the list's resourceVersion,
    and on any error reconnect and carry on from the last version seen."""

    def __init__(self, api: client.CoreV1Api, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.connection_errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cm-watcher", daemon=True)

    def _run(self) -> None:
        resource_version: str | None = None
        while not self.stop.is_set():
            try:
                if resource_version is None:
                    listed = self.api.list_namespaced_config_map(self.namespace, _request_timeout=5)
                    assert listed.metadata is not None
                    resource_version = listed.metadata.resource_version
                    for item in listed.items:
                        assert item.metadata is not None
                        self.events.put(("LISTED", str(item.metadata.name)))
                # kubernetes' watch module has no annotations.
                stream = watch.Watch().stream  # type: ignore[no-untyped-call]
                for event in stream(  # type: ignore[no-untyped-call]
                    self.api.list_namespaced_config_map,
                    self.namespace,
                    resource_version=resource_version,
                    timeout_seconds=5,
                    _request_timeout=10,
                ):
                    obj = event["object"]
                    resource_version = obj.metadata.resource_version
                    self.events.put((str(event["type"]), str(obj.metadata.name)))
                    if self.stop.is_set():
                        return
            except ApiException as err:
                if err.status == 410:  # our version was compacted away: list again
                    resource_version = None
                else:
                    self.connection_errors += 1
                    time.sleep(0.2)
            except (HTTPError, OSError):
                self.connection_errors += 1
                time.sleep(0.2)

    def wait_for(self, event_type: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.events.get(timeout=left) == (event_type, name):
                    return
            except queue.Empty:
                break
        raise AssertionError(f"the watcher never saw {event_type} {name} within {timeout}s")


def test_apiserver_restart_is_survived_by_a_watching_client(
    local_cluster: Cluster, namespace: str
) -> None:
    cp = local_cluster.control_plane
    assert cp is not None
    kubectl = local_cluster.kubectl
    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(local_cluster.kubeconfig)
    )
    watcher = _ConfigMapWatcher(client.CoreV1Api(api_client), namespace)
    try:
        watcher.thread.start()
        kubectl("create", "configmap", "before", "-n", namespace)
        watcher.wait_for("ADDED", "before", timeout=30)

        # Down for a second, so the client surely meets a refused connection.
        took = cp.restart_apiserver(down_for=1.0)
        assert took < 60

        kubectl.retrying("create", "configmap", "after", "-n", namespace)
        watcher.wait_for("ADDED", "after", timeout=60)
        assert watcher.connection_errors >= 1
        # etcd kept running: what was written before the restart is still there.
        assert kubectl("get", "configmap", "before", "-n", namespace, "-o", "name").strip() == (
            "configmap/before"
        )
        assert kubectl("get", "--raw", "/readyz").strip() == "ok"
    finally:
        watcher.stop.set()
        watcher.thread.join(timeout=20)
        api_client.close()
