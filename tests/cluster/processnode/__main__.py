"""`python -m tests.cluster.processnode`: run process nodes standalone until SIGINT/SIGTERM.

Either give a kubeconfig that already is a node identity (`--kubeconfig`, one `--name`), or let
the agent issue `system:node:<name>` identities from the CA of the `python -m tests.cluster up`
cluster (`--from-cluster-up`, any number of `--name`). Only the latter also serves
`kubectl logs` (the kubelet serving certificate needs the CA's key).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from tests.cluster import state
from tests.cluster.certificates import CertificateAuthority
from tests.cluster.kubeconfig import write_kubeconfig

from .agent import NodeAgent
from .nodes import node_serving_certificate
from .registering import NodeConfig
from .rest import ApiClient
from .serving import ServingCertificate


def _default_state_dir() -> Path:
    return state.cluster_dir().parent / "processnode"


def _from_cluster_up(name: str, folder: Path) -> tuple[Path, ServingCertificate]:
    """A node identity and a kubelet serving certificate from the `cluster up` CA."""
    current = state.load()
    if current is None:
        raise SystemExit("no `python -m tests.cluster up` cluster is up")
    certs = current.work_dir / "certs"
    ca = CertificateAuthority.load(certs / "ca.crt", certs / "ca.key")
    user = f"system:node:{name}"
    kubeconfig = write_kubeconfig(
        folder / f"node-{name}.kubeconfig",
        server=current.server,
        ca_pem=ca.cert_pem,
        client=ca.issue_client(user, ("system:nodes",)),
        user=user,
    )
    return kubeconfig, node_serving_certificate(ca, name, folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster.processnode", description=__doc__
    )
    parser.add_argument("--kubeconfig", type=Path, help="a system:node:<name> kubeconfig")
    parser.add_argument("--from-cluster-up", action="store_true", help="issue node identities")
    parser.add_argument("--name", action="append", required=True, help="node name (repeatable)")
    parser.add_argument("--cpu", default="4")
    parser.add_argument("--memory", default="8Gi")
    parser.add_argument("--pods", default="110")
    parser.add_argument("--state-dir", type=Path, default=None, help="logs, credentials, pids")
    parser.add_argument("--cwd", type=Path, default=None, help="working directory of pods")
    parser.add_argument(
        "--keep-pods-on-exit",
        action="store_true",
        help="leave pod processes running on exit (a restarted agent reports them lost)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    if args.kubeconfig is None and not args.from_cluster_up:
        parser.error("give --kubeconfig or --from-cluster-up")
    if args.kubeconfig is not None and len(args.name) != 1:
        parser.error("one --kubeconfig is one identity: give exactly one --name")
    root = args.state_dir or _default_state_dir()
    agents: list[NodeAgent] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        for name in args.name:
            folder = root / name
            serving = None
            kubeconfig = args.kubeconfig
            if kubeconfig is None:
                kubeconfig, serving = _from_cluster_up(name, folder / "identity")
            api = ApiClient.from_kubeconfig(kubeconfig, folder / "identity" / "tls")
            config = NodeConfig(name=name, cpu=args.cpu, memory=args.memory, pods=args.pods)
            extra = {"cwd": args.cwd} if args.cwd else {}
            agent = NodeAgent(config, api, state_dir=folder / "state", serving=serving, **extra)
            agents.append(agent.start())
            print(f"node {name} ready; pod logs under {folder / 'state' / 'logs'}", file=sys.stderr)
        while not stop.wait(1.0):
            pass
    finally:
        for agent in agents:
            agent.stop(terminate_pods=not args.keep_pods_on_exit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
