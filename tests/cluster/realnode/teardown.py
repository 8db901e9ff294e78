"""Undoing a real node, from the process that started it, from `cluster down`, or after a crash
(the next start finds the dead node's state at POINTER)."""

from __future__ import annotations

import shutil

from tests.cluster import processes
from tests.cluster.kubectl import Kubectl
from tests.cluster.processes import ProcessRecord

from . import containerd, network
from .configs import NODE_NAME, NodeLayout
from .hoststate import unmount_under
from .nodestate import POINTER, NodeState


class RealNodeError(RuntimeError):
    pass


def recover_crashed_node() -> None:
    """Undo a node whose processes are all gone (a crash); refuse to start beside a live one."""
    if not POINTER.exists():
        return
    try:
        state = NodeState.load(POINTER)
    except (ValueError, KeyError, TypeError) as err:
        raise RealNodeError(f"unreadable {POINTER} ({err}); remove it by hand") from err
    alive = [p.name for p in state.processes if processes.is_running(p)]
    if alive:
        raise RealNodeError(
            f"a real node is already up on this machine ({', '.join(alive)} running, files in "
            f"{state.root}); stop it first (`make cluster-down`)"
        )
    teardown(state, None)


def teardown(state: NodeState, kubectl: Kubectl | None) -> list[str]:
    """Stop the node and undo its host changes, in the order that leaves nothing behind:
    pods (so their networks are torn down by CNI), the kubelet, the containers, the rest of the
    processes, mounts, iptables chains, cgroups and sysctls, the bridge, the folder. Returns
    what could not be undone."""
    problems: list[str] = []
    layout = NodeLayout(state.root)
    records = {p.name: p for p in state.processes}
    if kubectl is not None and "kubelet" in records and processes.is_running(records["kubelet"]):
        problems += _delete_pods(kubectl)
    for name in ("kubelet", "kube-proxy", "api-relay"):
        if name in records:
            problems += _stop(records[name])
    daemon = records.get("containerd")
    crashed = daemon is not None and not processes.is_running(daemon)
    if crashed and containerd.has_containers(layout):
        # A crash left containers: they are removed the same way, through containerd.
        daemon = containerd.restart(layout)
    if daemon is not None and processes.is_running(daemon):
        problems += containerd.remove_containers(layout)
        problems += _stop(daemon)
    unmount_under(layout.root)
    problems += state.snapshot.restore()
    try:
        network.delete_bridge()
    except network.NetworkError as err:
        problems.append(str(err))
    shutil.rmtree(layout.root, ignore_errors=True)
    if POINTER.exists() and NodeState.load(POINTER).root == state.root:
        POINTER.unlink()
    return problems


def _stop(record: ProcessRecord) -> list[str]:
    try:
        processes.stop(record, grace=10.0)
    except RuntimeError as err:
        return [str(err)]
    return []


def _delete_pods(kubectl: Kubectl) -> list[str]:
    """Every pod on the node, through the API, so the kubelet stops them and CNI releases them."""
    selector = f"--field-selector=spec.nodeName={NODE_NAME}"
    result = kubectl.run(
        "delete",
        "pods",
        "--all-namespaces",
        selector,
        "--wait=true",
        "--timeout=60s",
        check=False,
        timeout=90,
    )
    if result.returncode == 0:
        return []
    forced = kubectl.run(
        "delete",
        "pods",
        "--all-namespaces",
        selector,
        "--grace-period=0",
        "--force",
        check=False,
        timeout=60,
    )
    return [] if forced.returncode == 0 else [f"deleting the node's pods: {forced.stderr}"]
