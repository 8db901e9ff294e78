"""kwok (Kubernetes WithOut Kubelet) on the local control plane: nodes and pods that only exist.

`make bench-scale` runs a thousand job pods; as processes they would not fit on this machine,
and their code is not what is measured. kwok takes the nodes annotated `kwok.x-k8s.io/node:
fake`, keeps their leases and Ready condition, and moves the pods bound to them to Running with
the stages it is given (bench/kwok/stages.yaml). Those leave alone a pod that is being deleted
and still has a finalizer (ours), as a kubelet leaves its status to the container's exit:
whoever plays the pod's process reports that exit (the bench's fleet does). Once the finalizer
is gone, kwok deletes the pod.

The binary comes from build_kwok.sh (`make kwok-bin`), found like the Kubernetes ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import processes
from .binaries import BinarySet
from .ports import free_ports
from .processes import StartsAndStops

# Must match KWOK_VERSION in build_kwok.sh.
KWOK_VERSION = "v0.8.0"
BUILD_SCRIPT = Path(__file__).resolve().parent / "build_kwok.sh"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_LABEL = "continuable.dev/kwok"

KWOK = BinarySet(
    names=("kwok",),
    env="CONTINUABLE_KWOK_BIN",
    folder_name=f"kwok-{KWOK_VERSION}",
    description=f"kwok ({KWOK_VERSION})",
    make_target="kwok-bin",
    build_script=BUILD_SCRIPT,
    minutes=5,
)


def fake_node(name: str, *, pods: int) -> dict[str, Any]:
    """A Node for kwok to keep: labelled so job pods can select it, room for `pods` pods."""
    capacity = {"cpu": "1000", "memory": "1Ti", "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {NODE_LABEL: "true", "kubernetes.io/hostname": name, "type": "kwok"},
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }


class KwokProcess(StartsAndStops):
    """The kwok controller against a kubeconfig, managing the nodes annotated as fake."""

    def __init__(self, kubeconfig: Path, log_path: Path, stages: Path) -> None:
        """`stages`: kwok's configuration with the Stages it plays (a build of kwok from its
        module embeds none)."""
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.stages = stages
        self.record: processes.ProcessRecord | None = None

    def argv(self) -> list[str]:
        (port,) = free_ports(1)
        return [
            str(KWOK.binary("kwok")),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.stages}",
            "--node-lease-duration-seconds=40",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            # The pods' made-up IPs, from a range no interface of this machine uses.
            "--cidr=10.254.0.0/16",
            "--node-ip=10.254.255.254",
            f"--server-address=127.0.0.1:{port}",
        ]

    def start(self) -> KwokProcess:
        _, self.record = processes.spawn("kwok", self.argv(), self.log_path)
        return self

    def stop(self) -> None:
        if self.record is not None:
            processes.stop(self.record, grace=5.0)
            self.record = None
