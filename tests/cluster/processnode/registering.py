"""The Node object and its liveness: registration, the Lease heartbeat, the status re-post.

Shapes and intervals follow KUBELET.md section 1 (the kubelet's `initialNode`, the lease
controller and the node status setters), so the node lifecycle controller treats the node as it
would a kubelet's: Ready while the agent runs, Unknown and then tainted once it stops.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import clock
from .rest import ApiClient, ApiError, path_of

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.36.3"
HOST_IP = "127.0.0.1"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
# 0.25 x the lease duration, as the kubelet's nodeLeaseRenewIntervalFraction.
LEASE_RENEW_INTERVAL = 10.0
# The kubelet recomputes status every 10 s and re-posts unchanged status every 5 min; we check
# every 10 s and re-post every minute, which is cheap and keeps `kubectl describe` fresh.
STATUS_CHECK_INTERVAL = 10.0
STATUS_REPORT_INTERVAL = 60.0

CONDITIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


@dataclass(frozen=True)
class NodeConfig:
    """What the node says about itself; the scheduler fits pods against `allocatable`."""

    name: str
    cpu: str = "4"
    memory: str = "8Gi"
    pods: str = "110"
    ephemeral_storage: str = "20Gi"
    # Defaults to the capacity, as on a kubelet with no reservations.
    allocatable: Mapping[str, str] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # Taints a kubelet would get from --register-with-taints: allowed on create only.
    taints: tuple[Mapping[str, Any], ...] = ()

    @property
    def capacity(self) -> dict[str, str]:
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            "ephemeral-storage": self.ephemeral_storage,
        }

    @property
    def allocatable_resources(self) -> dict[str, str]:
        return {**self.capacity, **(self.allocatable or {})}


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def node_labels(config: NodeConfig) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": _arch(),
        **config.labels,
    }


class NodeStatus:
    """The node's status document; keeps lastTransitionTime until a condition flips."""

    def __init__(self, config: NodeConfig, kubelet_port: int) -> None:
        self.config = config
        self.kubelet_port = kubelet_port
        # One per agent start, as a boot id is per boot: tells a restarted agent apart.
        self.boot_id = str(uuid.uuid4())
        self.machine_id = uuid.uuid5(uuid.NAMESPACE_DNS, config.name).hex

    def document(self, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
        now = clock.rfc3339()
        before = {c["type"]: c for c in (previous or {}).get("conditions", [])}
        conditions = []
        for kind, status, reason, message in CONDITIONS:
            old = before.get(kind)
            flipped = old is None or old.get("status") != status
            conditions.append(
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now if flipped else old["lastTransitionTime"],  # type: ignore[index]
                }
            )
        uname = platform.uname()
        return {
            "capacity": self.config.capacity,
            "allocatable": self.config.allocatable_resources,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": self.config.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": self.machine_id,
                "systemUUID": self.machine_id,
                "bootID": self.boot_id,
                "kernelVersion": uname.release,
                "osImage": "continuable process node",
                "containerRuntimeVersion": "processnode://0.1.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }


def _ready_is_true(node: Mapping[str, Any]) -> bool:
    for cond in node.get("status", {}).get("conditions", []):
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


class NodeRegistration:
    """Registers the node, then renews its Lease and re-posts its status on a thread."""

    def __init__(self, api: ApiClient, config: NodeConfig, *, kubelet_port: int = 0) -> None:
        self.api = api
        self.config = config
        self.status = NodeStatus(config, kubelet_port)
        self.node_uid = ""
        self.lease_renewals = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease: dict[str, Any] | None = None
        self._last_status_post = 0.0

    @property
    def node_path(self) -> str:
        return path_of("api", "v1", "nodes", self.config.name)

    def register(self, timeout: float = 30.0) -> None:
        """POST the Node (or, when it exists, bring its labels and status up to date)."""
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            try:
                self._register_once()
                self._post_status()
                self._renew_lease()
                return
            except ApiError as err:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("node %s: registering failed, retrying: %s", self.config.name, err)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _register_once(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.config.name,
                "labels": node_labels(self.config),
                "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            },
            "spec": {"taints": [dict(t) for t in self.config.taints]} if self.config.taints else {},
            "status": self.status.document(),
        }
        try:
            node = self.api.post(path_of("api", "v1", "nodes"), body)
        except ApiError as err:
            if not err.conflict:
                raise
            # Already registered (an agent restart): as the kubelet, reconcile labels only;
            # taints and unschedulable belong to others now (cordon, the node controller).
            node = self.api.patch(
                self.node_path, {"metadata": {"labels": node_labels(self.config)}}
            )
        self.node_uid = node["metadata"]["uid"]

    def _post_status(self, previous: Mapping[str, Any] | None = None) -> None:
        doc = self.status.document(previous)
        self.api.patch(f"{self.node_path}/status", {"status": doc})
        self._last_status_post = time.monotonic()

    def _lease_path(self, name: str = "") -> str:
        parts = ["apis", "coordination.k8s.io", "v1", "namespaces", LEASE_NAMESPACE, "leases"]
        return path_of(*parts, name) if name else path_of(*parts)

    def _renew_lease(self) -> None:
        if self._lease is None:
            try:
                self._lease = self.api.get(self._lease_path(self.config.name))
            except ApiError as err:
                if not err.not_found:
                    raise
                self._lease = self.api.post(self._lease_path(), self._new_lease())
                self.lease_renewals += 1
                return
        lease = self._lease
        lease["spec"]["holderIdentity"] = self.config.name
        lease["spec"]["leaseDurationSeconds"] = LEASE_DURATION_SECONDS
        lease["spec"]["renewTime"] = clock.micro()
        try:
            self._lease = self.api.put(self._lease_path(self.config.name), lease)
        except ApiError:
            # A conflict or an apiserver restart: fetch afresh next time.
            self._lease = None
            raise
        self.lease_renewals += 1

    def _new_lease(self) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.config.name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": self.config.name,
                        "uid": self.node_uid,
                    }
                ],
            },
            "spec": {
                "holderIdentity": self.config.name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": clock.micro(),
            },
        }

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"node-{self.config.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        next_lease = time.monotonic() + LEASE_RENEW_INTERVAL
        next_check = time.monotonic() + STATUS_CHECK_INTERVAL
        delay = 0.2
        while not self._stop.is_set():
            wait = max(0.0, min(next_lease, next_check) - time.monotonic())
            if self._stop.wait(wait):
                return
            try:
                if time.monotonic() >= next_lease:
                    self._renew_lease()
                    next_lease = time.monotonic() + LEASE_RENEW_INTERVAL
                if time.monotonic() >= next_check:
                    self._check_status()
                    next_check = time.monotonic() + STATUS_CHECK_INTERVAL
                delay = 0.2
            except ApiError as err:
                # The kubelet's lease controller backs off from 200 ms up to 7 s.
                log.warning("node %s: heartbeat failed: %s", self.config.name, err)
                next_lease = min(next_lease, time.monotonic() + delay)
                next_check = min(next_check, time.monotonic() + delay)
                delay = min(delay * 2, 7.0)
            except Exception:
                log.exception("node %s: heartbeat crashed; going on", self.config.name)
                next_lease = time.monotonic() + delay
                delay = min(delay * 2, 7.0)

    def _check_status(self) -> None:
        try:
            node = self.api.get(self.node_path)
        except ApiError as err:
            if not err.not_found:
                raise
            node = {"metadata": {"uid": ""}}
        if node["metadata"]["uid"] != self.node_uid:
            # Someone deleted and recreated the Node (or deleted it): register afresh.
            self._register_once()
            self._lease = None
            self._post_status()
            return
        stale = time.monotonic() - self._last_status_post >= STATUS_REPORT_INTERVAL
        if stale or not _ready_is_true(node):
            # Ready not True means the node lifecycle controller marked us Unknown (e.g. after a
            # long apiserver outage): re-assert at once, as the kubelet's next status sync would.
            self._post_status(node.get("status"))
