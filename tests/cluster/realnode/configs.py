"""The real node's configuration files, as pure functions of its paths, addresses and ports.

Each setting that is not a default says why: most keep the node off the host's own state (disk,
sysctls, iptables, DNS), the rest pass what this kind of machine lacks (see REALNODE.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.certificates import SERVICE_CLUSTER_IP_RANGE

NODE_NAME = "real-0"
TAINT_KEY = "continuable.dev/real-node"
# A host-only network: the bridge's own address is the host's side of it.
BRIDGE = "cjbr0"
POD_SUBNET = "10.89.0.0/24"
BRIDGE_ADDRESS = "10.89.0.1"
# Where pods reach the API server: a relay on the bridge address (see relay.py).
API_RELAY_PORT = 6443
CNI_BIN_DIR = Path("/usr/lib/cni")


@dataclass(frozen=True)
class NodeLayout:
    """Every path the node writes, under one folder."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def runc_root(self) -> Path:
        return self.root / "containerd" / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet-config.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy-config.yaml"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def state_file(self) -> Path:
        return self.root / "node.json"


def containerd_config(layout: NodeLayout, sandbox_image: str) -> str:
    """containerd 1.6's config (version 2) with root, state, socket and CNI under the layout."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"
# Snapshotters this node never uses: they only log that they cannot start.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{layout.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.containerd_root / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # The machine's capability set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj
  # below the runtime's own, and every sandbox would fail to start.
  restrict_oom_score_adj = true
  # exec/attach/port-forward streams, for the kubelet only.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  # No systemd here (PID 1 is not systemd): cgroupfs, as the kubelet's cgroupDriver.
  SystemdCgroup = false
  # runc's own state under the node's folder too (its default is /run/containerd/runc), so a
  # crashed node's containers can still be found and removed.
  Root = "{layout.runc_root}"

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{layout.cni_conf_dir}"
  max_conf_num = 1
"""


def cni_config(layout: NodeLayout) -> dict[str, Any]:
    """A bridge network whose pods reach the host and the Service range, and nothing else."""
    return {
        "cniVersion": "1.0.0",
        "name": "continuable",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerade and no default route: a pod's packet to any address outside
                # this machine fails with "Network is unreachable" inside the pod.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": BRIDGE_ADDRESS}]],
                    "routes": [{"dst": SERVICE_CLUSTER_IP_RANGE}],
                    "dataDir": str(layout.cni_ipam_dir),
                },
            }
        ],
    }


@dataclass(frozen=True)
class KubeletPorts:
    port: int  # the API (logs, exec), on the bridge address
    healthz: int  # loopback


def kubelet_config(layout: NodeLayout, ports: KubeletPorts) -> dict[str, Any]:
    certs = layout.certs
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Serves on the bridge's address only (the API server reaches it at the node's IP).
        "address": BRIDGE_ADDRESS,
        "port": ports.port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(certs / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        # Signed by the cluster's CA for the node's name and IP: `kubectl logs` verifies it.
        "tlsCertFile": str(certs / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(certs / "kubelet-serving.key"),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        # cgroup v1 hierarchies here; 1.36 refuses them unless told (a warning remains).
        "failCgroupV1": False,
        "podLogsDir": str(layout.pod_logs),
        "volumePluginDir": str(layout.kubelet_root / "volume-plugins"),
        # The kubelet must never act on the host's disk or memory: no eviction thresholds,
        # no image garbage collection.
        "evictionHard": {
            "memory.available": "0%",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
            "imagefs.available": "0%",
            "imagefs.inodesFree": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "failSwapOn": False,
        # The kubelet's own iptables chains are not needed (kube-proxy makes its own).
        "makeIPTablesUtilChains": False,
        # No cluster DNS, and the host's resolvers are not lent to pods: nothing leaves.
        "resolvConf": "",
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "shutdownGracePeriod": "0s",
    }


@dataclass(frozen=True)
class KubeProxyPorts:
    healthz: int
    metrics: int


def kube_proxy_config(kubeconfig: Path, ports: KubeProxyPorts) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "bindAddress": BRIDGE_ADDRESS,
        "healthzBindAddress": f"127.0.0.1:{ports.healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.metrics}",
        "clusterCIDR": POD_SUBNET,
        "detectLocalMode": "ClusterCIDR",
        # "primary" is ignored by this version: the bridge address, as a CIDR.
        "nodePortAddresses": [f"{BRIDGE_ADDRESS}/32"],
        # The default sets net.ipv4.conf.all.route_localnet=1 for localhost NodePorts.
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # Zero: kube-proxy leaves the host's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def bridge_prefix() -> int:
    return ipaddress.ip_network(POD_SUBNET).prefixlen
