"""Process nodes for a local control plane: one `system:node:<name>` identity and agent each.

Issues each node's client certificate with the control plane's CA (CN=system:node:<name>,
O=system:nodes), so the Node authorizer and NodeRestriction treat the agent as a kubelet, and
its kubelet serving certificate (for 127.0.0.1 and the node name) from the same CA.
Several nodes share one Python process (drain and node-loss tests need two or more).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from tests.cluster.certificates import CertificateAuthority
from tests.cluster.processes import StartsAndStops

from .agent import NodeAgent
from .registering import HOST_IP, NodeConfig
from .rest import ApiClient
from .running import REPO_ROOT
from .serving import ServingCertificate


class IssuesKubeconfigs(Protocol):
    """What is needed of a control plane: ControlPlane.issue_kubeconfig and its CA."""

    def issue_kubeconfig(self, path: Path, user: str, groups: Sequence[str] = ()) -> Path: ...

    @property
    def ca(self) -> CertificateAuthority: ...


def node_kubeconfig(cluster: IssuesKubeconfigs, name: str, folder: Path) -> Path:
    return cluster.issue_kubeconfig(
        folder / f"node-{name}.kubeconfig", f"system:node:{name}", ["system:nodes"]
    )


def node_serving_certificate(
    ca: CertificateAuthority, name: str, folder: Path
) -> ServingCertificate:
    """The kubelet's serving certificate: CN=system:node:<name>, for the node's address."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    pair = ca.issue_serving(f"system:node:{name}", dns_names=(name,), ips=(HOST_IP,))
    cert, key = pair.write(folder / "kubelet.crt", folder / "kubelet.key")
    return ServingCertificate(cert, key)


class ProcessNodes(StartsAndStops):
    """Start process nodes on a cluster; stop() stops them and removes their folder."""

    def __init__(
        self,
        cluster: IssuesKubeconfigs,
        nodes: Iterable[NodeConfig | str],
        *,
        work_dir: Path | None = None,
        cwd: Path = REPO_ROOT,
        extra_env: Mapping[str, str] | None = None,
        keep_work_dir: bool = False,
    ) -> None:
        self.cluster = cluster
        self.configs = [n if isinstance(n, NodeConfig) else NodeConfig(name=n) for n in nodes]
        self._requested_dir = work_dir
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="continuable-nodes-"))
        self.cwd = cwd
        self.extra_env = dict(extra_env or {})
        self.keep_work_dir = keep_work_dir
        self.agents: dict[str, NodeAgent] = {}

    def agent(self, config: NodeConfig) -> NodeAgent:
        """A new (unstarted) agent for `config` on the same state folder, e.g. to restart one."""
        folder = self.work_dir / config.name
        kubeconfig = node_kubeconfig(self.cluster, config.name, folder / "identity")
        api = ApiClient.from_kubeconfig(kubeconfig, folder / "identity" / "tls")
        serving = node_serving_certificate(self.cluster.ca, config.name, folder / "identity")
        return NodeAgent(
            config,
            api,
            state_dir=folder / "state",
            cwd=self.cwd,
            extra_env=self.extra_env,
            serving=serving,
        )

    def start(self) -> ProcessNodes:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            for config in self.configs:
                agent = self.agent(config)
                self.agents[config.name] = agent
                agent.start()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, name: str, *, terminate_pods: bool = False) -> NodeAgent:
        """Stop one agent (leaving its processes, as a crash would) and start a new one."""
        old = self.agents[name]
        old.stop(terminate_pods=terminate_pods)
        new = self.agent(old.config)
        self.agents[name] = new
        new.start()
        return new

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop(terminate_pods=True)
        self.agents.clear()
        if not self.keep_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def log_folder(self, name: str) -> Path:
        return self.work_dir / name / "state" / "logs"
