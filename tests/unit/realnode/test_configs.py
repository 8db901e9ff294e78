"""The real node's configuration keeps it off the host's own state and on this machine."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from tests.cluster.realnode import configs
from tests.cluster.realnode.configs import NodeLayout

LAYOUT = NodeLayout(Path("/tmp/cp/real-0"))


def _under_layout(path: str) -> bool:
    return Path(path.removeprefix("unix://")).is_relative_to(LAYOUT.root)


def test_containerd_keeps_root_state_socket_and_runc_under_the_nodes_folder() -> None:
    config = tomllib.loads(configs.containerd_config(LAYOUT, "localhost/pause:v1"))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    paths = [
        config["root"],
        config["state"],
        config["grpc"]["address"],
        config["plugins"]["io.containerd.internal.v1.opt"]["path"],
        runc["Root"],
        cri["cni"]["conf_dir"],
    ]
    assert all(_under_layout(p) for p in paths), paths
    assert cri["restrict_oom_score_adj"] is True
    assert runc["SystemdCgroup"] is False
    assert cri["sandbox_image"] == "localhost/pause:v1"
    assert cri["stream_server_address"] == "127.0.0.1"


def test_pod_network_has_no_masquerade_and_no_default_route() -> None:
    bridge = configs.cni_config(LAYOUT)["plugins"][0]
    assert bridge["ipMasq"] is False
    routes = [ipaddress.ip_network(r["dst"]) for r in bridge["ipam"]["routes"]]
    assert ipaddress.ip_network("0.0.0.0/0") not in routes
    assert all(not r.is_global for r in routes)
    assert _under_layout(bridge["ipam"]["dataDir"])


def test_kubelet_never_acts_on_the_hosts_disk_and_serves_on_the_bridge_only() -> None:
    config = configs.kubelet_config(LAYOUT, configs.KubeletPorts(port=10250, healthz=10248))
    assert set(config["evictionHard"].values()) == {"0%"}
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["address"] == configs.BRIDGE_ADDRESS
    assert config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["resolvConf"] == ""
    assert config["registerWithTaints"] == [
        {"key": configs.TAINT_KEY, "value": "true", "effect": "NoSchedule"}
    ]
    assert all(
        _under_layout(config[k]) for k in ("podLogsDir", "containerRuntimeEndpoint", "tlsCertFile")
    )


def test_kube_proxy_leaves_host_sysctls_alone() -> None:
    config = configs.kube_proxy_config(LAYOUT.root / "kp", configs.KubeProxyPorts(1, 2))
    assert config["mode"] == "iptables"
    assert config["iptables"]["localhostNodePorts"] is False
    assert set(config["conntrack"].values()) == {0, "0s"}
    assert config["healthzBindAddress"].startswith("127.0.0.1:")
    assert config["metricsBindAddress"].startswith("127.0.0.1:")
    assert config["nodePortAddresses"] == [f"{configs.BRIDGE_ADDRESS}/32"]
