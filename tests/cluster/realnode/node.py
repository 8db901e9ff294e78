"""`real-0`: a kubelet with containerd and runc, kube-proxy and a host-only bridge, joined to the
local control plane.

    with RealNode(JoinInfo.from_control_plane(cp), images) as node:
        ...  # pods that tolerate continuable.dev/real-node run in real containers

Everything it writes is under one folder; what it changes on the host is recorded first
(hoststate.Snapshot) and undone by stop() (teardown.py, which also serves `cluster down` and the
recovery from a crash).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import binaries, processes
from tests.cluster.certificates import CertificateAuthority
from tests.cluster.kubeconfig import write_kubeconfig
from tests.cluster.kubectl import Kubectl
from tests.cluster.ports import free_ports
from tests.cluster.processes import StartsAndStops
from tests.cluster.waiting import WaitTimeout, wait_for

from . import configs, containerd, images, network
from .configs import NODE_NAME, NodeLayout
from .hoststate import Snapshot
from .nodestate import NodeState
from .teardown import RealNodeError, recover_crashed_node, teardown

__all__ = ["JoinInfo", "RealNode", "RealNodeError"]


@dataclass(frozen=True)
class JoinInfo:
    """What the node needs from the control plane: its address, CA and an admin kubeconfig."""

    server: str  # https://127.0.0.1:<port>
    ca_cert: Path
    ca_key: Path
    admin_kubeconfig: Path

    @property
    def api_port(self) -> int:
        return int(self.server.rpartition(":")[2])

    @classmethod
    def from_certs(cls, server: str, certs: Path, admin_kubeconfig: Path) -> JoinInfo:
        return cls(server, certs / "ca.crt", certs / "ca.key", admin_kubeconfig)


class RealNode(StartsAndStops):
    def __init__(
        self,
        join: JoinInfo,
        built: images.Images,
        root: Path,
        *,
        die_with_parent: bool = True,
        ready_timeout: float = 120.0,
    ) -> None:
        self.join = join
        self.images = built
        self.layout = NodeLayout(root)
        self.die_with_parent = die_with_parent
        self.ready_timeout = ready_timeout
        self.state: NodeState | None = None
        self.kubectl = Kubectl.for_kubeconfig(join.admin_kubeconfig)
        self.timings: dict[str, float] = {}

    @property
    def name(self) -> str:
        return NODE_NAME

    def log_path(self, component: str) -> Path:
        return self.layout.logs / f"{component}.log"

    def start(self) -> RealNode:
        recover_crashed_node()
        began = time.monotonic()
        snapshot = Snapshot.take()
        self.layout.root.mkdir(parents=True, exist_ok=False)
        self.layout.root.chmod(0o700)
        self.state = NodeState(self.layout.root, self.join.admin_kubeconfig, snapshot)
        self.state.save()
        try:
            network.create_bridge()
            network.isolate()
            self._write_files()
            self._spawn("containerd", containerd.argv(self.layout))
            self._wait_for_containerd()
            images.import_all(self.images, self.layout.containerd_socket)
            self.timings["images"] = time.monotonic() - began
            self._spawn(
                "api-relay",
                [
                    sys.executable,
                    "-m",
                    "tests.cluster.realnode.relay",
                    f"{configs.BRIDGE_ADDRESS}:{configs.API_RELAY_PORT}",
                    f"127.0.0.1:{self.join.api_port}",
                ],
            )
            self._publish_api_endpoint()
            bin_dir = binaries.bin_dir()
            self._spawn(
                "kube-proxy",
                [str(bin_dir / "kube-proxy"), f"--config={self.layout.kube_proxy_config}"],
            )
            self._spawn(
                "kubelet",
                [
                    str(bin_dir / "kubelet"),
                    f"--config={self.layout.kubelet_config}",
                    f"--kubeconfig={self.layout.root / 'kubelet.kubeconfig'}",
                    f"--root-dir={self.layout.kubelet_root}",
                    f"--node-ip={configs.BRIDGE_ADDRESS}",
                    f"--hostname-override={NODE_NAME}",
                    "--v=1",
                ],
            )
            self._wait_until_ready()
            self.timings["ready"] = time.monotonic() - began
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.state is None:
            return
        problems = teardown(self.state, self.kubectl)
        self.state = None
        if problems:
            # Host state the node could not undo: said loudly, never left silently.
            raise RealNodeError("the real node's teardown left: " + "; ".join(problems))

    # ------------------------------------------------------------------ internals

    def _write_files(self) -> None:
        layout = self.layout
        for folder in (layout.certs, layout.logs, layout.cni_conf_dir, layout.kubelet_root):
            folder.mkdir(parents=True, mode=0o700)
        ca = CertificateAuthority.load(self.join.ca_cert, self.join.ca_key)
        shutil.copyfile(self.join.ca_cert, layout.certs / "ca.crt")
        ca.issue_serving(NODE_NAME, (NODE_NAME,), (configs.BRIDGE_ADDRESS,)).write(
            layout.certs / "kubelet-serving.crt", layout.certs / "kubelet-serving.key"
        )
        for name, user, groups in (
            ("kubelet", f"system:node:{NODE_NAME}", ("system:nodes",)),
            ("kube-proxy", "system:kube-proxy", ()),
        ):
            write_kubeconfig(
                layout.root / f"{name}.kubeconfig",
                server=self.join.server,
                ca_pem=ca.cert_pem,
                client=ca.issue_client(user, groups),
                user=user,
            )
        layout.containerd_config.parent.mkdir(parents=True, exist_ok=True)
        layout.containerd_config.write_text(
            configs.containerd_config(layout, self.images.pause.name)
        )
        (layout.cni_conf_dir / "10-continuable.conflist").write_text(
            json.dumps(configs.cni_config(layout), indent=2)
        )
        kubelet_port, kubelet_healthz, proxy_healthz, proxy_metrics = free_ports(4)
        self.kubelet_healthz = kubelet_healthz
        layout.kubelet_config.write_text(
            yaml.safe_dump(
                configs.kubelet_config(layout, configs.KubeletPorts(kubelet_port, kubelet_healthz))
            )
        )
        layout.kube_proxy_config.write_text(
            yaml.safe_dump(
                configs.kube_proxy_config(
                    layout.root / "kube-proxy.kubeconfig",
                    configs.KubeProxyPorts(proxy_healthz, proxy_metrics),
                )
            )
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.state is not None
        _, record = processes.spawn(
            name,
            argv,
            self.log_path(name),
            env=containerd.environment(),
            die_with_parent=self.die_with_parent,
        )
        self.state.processes.append(record)
        self.state.save()

    def _wait_for_containerd(self) -> None:
        def answers() -> bool:
            self._check_alive()
            return containerd.answers(self.layout)

        self._wait(answers, 30, "containerd to answer on its socket")

    def _publish_api_endpoint(self) -> None:
        """The `kubernetes` Service's endpoint: the relay (the API server runs with
        --endpoint-reconciler-type=none, since its own address is loopback)."""
        slice_ = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes-real-node",
                "namespace": "default",
                "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                    "endpointslice.kubernetes.io/managed-by": "continuable.dev-real-node",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [configs.BRIDGE_ADDRESS], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": configs.API_RELAY_PORT, "protocol": "TCP"}],
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(slice_))

    def _wait_until_ready(self) -> None:
        ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"

        def is_ready() -> bool:
            self._check_alive()
            node = self.kubectl.run("get", "node", NODE_NAME, "-o", ready, check=False)
            return node.stdout == "True"

        self._wait(is_ready, self.ready_timeout, f"node {NODE_NAME} Ready")

    def _check_alive(self) -> None:
        assert self.state is not None
        for record in self.state.processes:
            if not processes.is_running(record):
                log = self.log_path(record.name)
                raise RealNodeError(
                    f"{record.name} exited while the node started; last lines of {log}:\n"
                    f"{processes.tail(log)}"
                )

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        try:
            wait_for(check, timeout=timeout, what=what, interval=0.2)
        except WaitTimeout as err:
            logs = "\n".join(
                f"--- {name}:\n{processes.tail(self.log_path(name), 15)}"
                for name in ("containerd", "kube-proxy", "kubelet")
            )
            raise RealNodeError(f"{err}\n{logs}") from None
