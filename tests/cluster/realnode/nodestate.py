"""What a running real node must leave behind for whoever stops it: its folder, the admin
kubeconfig, the host snapshot and the PIDs it started, saved beside its files and at POINTER,
where the next start (or `cluster down` from another process) finds it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.processes import ProcessRecord

from .configs import NodeLayout
from .hoststate import Snapshot

# Where a node that is up says so, whichever cluster started it: there is one bridge per machine.
POINTER = Path("/run/continuable-realnode.json")


@dataclass
class NodeState:
    root: Path
    admin_kubeconfig: Path
    snapshot: Snapshot
    processes: list[ProcessRecord] = field(default_factory=list)

    def save(self) -> None:
        data = {
            "root": str(self.root),
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "snapshot": self.snapshot.to_json(),
            "processes": [p.to_json() for p in self.processes],
        }
        text = json.dumps(data, indent=2) + "\n"
        for path in (NodeLayout(self.root).state_file, POINTER):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> NodeState:
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(
            root=Path(data["root"]),
            admin_kubeconfig=Path(data["admin_kubeconfig"]),
            snapshot=Snapshot.from_json(data["snapshot"]),
            processes=[ProcessRecord.from_json(p) for p in data["processes"]],
        )
