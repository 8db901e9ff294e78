"""The process node: a Node whose pods run as host processes, reported as a kubelet would.

`../shared/KUBELET.md` (in the workspace) is the contract. Modules, one job each:
rest (HTTP client), registering (Node, Lease, node status), environment (container env),
credentials (service-account files), launching (one container process), reporting (pod status
and events), running (one pod's lifecycle), logs (what `kubectl logs` reads), serving (the
kubelet endpoint the apiserver proxies it to), agent (watch and dispatch), nodes (agents on a
ControlPlane), standalone (one node in a process of its own, which a test can SIGSTOP). Run one
standalone with `python -m tests.cluster.processnode`.
"""

from __future__ import annotations

from .agent import NodeAgent
from .nodes import ProcessNodes, node_kubeconfig
from .registering import NodeConfig
from .rest import ApiClient, ApiError
from .standalone import StandaloneNode

__all__ = [
    "ApiClient",
    "ApiError",
    "NodeAgent",
    "NodeConfig",
    "ProcessNodes",
    "StandaloneNode",
    "node_kubeconfig",
]
