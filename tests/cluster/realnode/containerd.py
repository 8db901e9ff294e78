"""The node's containerd: how it is started, whether it answers, and removing what the kubelet
left in it."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from tests.cluster import processes
from tests.cluster.processes import ProcessRecord
from tests.cluster.waiting import WaitTimeout, wait_for

from .configs import NodeLayout

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment() -> dict[str, str]:
    """The node's processes find runc, the shim, iptables and mount on the host's PATH, and
    the relay finds this repository's modules."""
    repo_root = Path(__file__).resolve().parents[3]
    return {
        **os.environ,
        "PATH": f"{os.environ.get('PATH', '')}:{HOST_PATH}",
        "PYTHONPATH": str(repo_root),
    }


def argv(layout: NodeLayout) -> list[str]:
    return ["containerd", "--config", str(layout.containerd_config)]


def answers(layout: NodeLayout) -> bool:
    ctr = ["ctr", "--address", str(layout.containerd_socket), "version"]
    return subprocess.run(ctr, capture_output=True, timeout=10, check=False).returncode == 0


def restart(layout: NodeLayout) -> ProcessRecord:
    """containerd again on a crashed node's state: it reconnects to the shims left running."""
    _, record = processes.spawn(
        "containerd",
        argv(layout),
        layout.logs / "containerd.log",
        env=environment(),
        die_with_parent=True,
    )
    # What it could not remove, when it does not answer, remove_containers reports.
    with contextlib.suppress(WaitTimeout):
        wait_for(lambda: answers(layout), timeout=30, what="containerd to answer")
    return record


def has_containers(layout: NodeLayout) -> bool:
    runc_state = layout.runc_root / "k8s.io"
    return runc_state.is_dir() and any(runc_state.iterdir())


def remove_containers(layout: NodeLayout) -> list[str]:
    """What the kubelet left (a pod it had no time to stop): killed and removed through
    containerd, so its shim exits and its rootfs is unmounted. Returns what is left."""
    ctr = ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ctr, *args], capture_output=True, text=True, timeout=30, check=False
        )

    for task in run("tasks", "ls", "-q").stdout.split():
        run("tasks", "kill", "--all", "--signal", "SIGKILL", task)
    for task in run("tasks", "ls", "-q").stdout.split():
        run("tasks", "delete", "--force", task)
    for container in run("containers", "ls", "-q").stdout.split():
        run("containers", "rm", container)
    left = run("tasks", "ls", "-q").stdout.split()
    return [f"containerd tasks left: {', '.join(left)}"] if left else []
