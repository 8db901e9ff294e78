"""The long-lived `cluster up` cluster: fixed paths and the state file that `down` trusts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .binaries import cache_root
from .processes import ProcessRecord, is_running


def cluster_dir() -> Path:
    return cache_root() / "cluster"


def kubeconfig_path() -> Path:
    # Fixed, so `make demo`, a shell and the e2e suite (CONTINUABLE_E2E_KUBECONFIG) agree on it.
    return cluster_dir() / "kubeconfig"


def state_path() -> Path:
    return cluster_dir() / "state.json"


def data_dir() -> Path:
    return cluster_dir() / "data"


@dataclass(frozen=True)
class ClusterState:
    server: str
    kubeconfig: Path
    work_dir: Path
    processes: list[ProcessRecord]
    # The real node's folder (its node.json says what to undo), when `up --real-node` made one.
    real_node: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "work_dir": str(self.work_dir),
            "processes": [p.to_json() for p in self.processes],
            "real_node": str(self.real_node) if self.real_node else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterState:
        return cls(
            server=str(data["server"]),
            kubeconfig=Path(data["kubeconfig"]),
            work_dir=Path(data["work_dir"]),
            processes=[ProcessRecord.from_json(p) for p in data["processes"]],
            real_node=Path(data["real_node"]) if data.get("real_node") else None,
        )

    def running(self) -> list[ProcessRecord]:
        return [p for p in self.processes if is_running(p)]


def load() -> ClusterState | None:
    try:
        return ClusterState.from_json(json.loads(state_path().read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        raise RuntimeError(f"unreadable {state_path()} ({err}); remove it by hand") from err


def save(state: ClusterState) -> None:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def clear() -> None:
    for path in (state_path(), kubeconfig_path()):
        path.unlink(missing_ok=True)
