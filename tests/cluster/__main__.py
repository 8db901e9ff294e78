"""`python -m tests.cluster up|down|status`: a long-lived local cluster for demos and poking.

`up` starts the components detached (they outlive this command), records their pids and start
times in a state file, and prints the kubeconfig path. `down` stops exactly those processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

from . import crds, processes, state
from .binaries import BinariesMissing
from .controlplane import ControlPlane, ControlPlaneError
from .kubectl import Kubectl, KubectlError
from .operating import OperatorProcess
from .probe import ClientTLS, is_ok
from .realnode import images
from .realnode.configs import TAINT_KEY
from .realnode.node import JoinInfo, RealNode, RealNodeError
from .realnode.nodestate import NodeState
from .realnode.teardown import teardown
from .waiting import WaitTimeout, wait_for


def _apply_crds(kubeconfig: Path) -> int:
    try:
        applied = crds.apply_crds(Kubectl.for_kubeconfig(kubeconfig))
    except (KubectlError, WaitTimeout) as err:
        # The cluster stays up: a rejected CRD is easiest to debug against it.
        print(f"error: the CRDs in {crds.CRD_DIR} were not applied: {err}", file=sys.stderr)
        return 1
    for crd in applied:
        print(f"CRD {crd.name} established", file=sys.stderr)
    return 0


def _up(args: argparse.Namespace) -> int:
    current = state.load()
    if current is not None:
        if len(current.running()) == len(current.processes):
            print(f"cluster already up: {current.server}", file=sys.stderr)
            # Re-applied so the cluster follows the working tree's CRD (server-side apply is
            # idempotent).
            code = 0 if args.no_crds else _apply_crds(current.kubeconfig)
            print(current.kubeconfig)
            return code
        print("cluster partly down; cleaning it up before starting again", file=sys.stderr)
        _stop(current)
    began = time.monotonic()
    try:
        # keep_work_dir: the folder must outlive this command; `down` removes it.
        cp = ControlPlane(work_dir=state.data_dir(), keep_work_dir=True, die_with_parent=False)
        cp.start()
    except (BinariesMissing, ControlPlaneError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    node: processes.ProcessRecord | None = None
    try:
        kubeconfig = state.kubeconfig_path()
        shutil.copyfile(cp.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        state.save(state.ClusterState(cp.server, kubeconfig, cp.work_dir, cp.processes))
        # Started last, so `down` (which stops in reverse order) stops its pods first.
        node = _start_process_node(cp.logs_dir / "process-node.log")
        state.save(state.ClusterState(cp.server, kubeconfig, cp.work_dir, [*cp.processes, node]))
        _wait_until_pods_can_run(Kubectl.for_kubeconfig(kubeconfig))
    except BaseException:
        if node is not None:
            processes.stop(node)
        cp.keep_work_dir = False
        cp.stop()
        state.clear()
        raise
    print(
        f"cluster up in {time.monotonic() - began:.1f}s "
        f"(apiserver ready after {cp.timings.apiserver:.1f}s): {cp.server}\n"
        f"logs: {cp.logs_dir}\n"
        f"export KUBECONFIG={kubeconfig}",
        file=sys.stderr,
    )
    code = 0 if args.no_crds else _apply_crds(kubeconfig)
    if code == 0 and not args.no_crds and not args.no_operator:
        operator = OperatorProcess(
            kubeconfig, cp.logs_dir / "operator.log", die_with_parent=False
        ).start()
        assert operator.record is not None
        state.save(
            state.ClusterState(
                cp.server, kubeconfig, cp.work_dir, [*cp.processes, node, operator.record]
            )
        )
        print(
            f"operator from the working tree: metrics {operator.metrics_url}, "
            f"log {operator.log_path}",
            file=sys.stderr,
        )
    if code == 0 and args.real_node:
        code = _start_real_node(cp, kubeconfig)
    print(kubeconfig)
    return code


def _start_real_node(cp: ControlPlane, kubeconfig: Path) -> int:
    """real-0, detached like the rest; its folder goes into the state so `down` undoes it."""
    current = state.load()
    assert current is not None
    root = cp.work_dir / "real-0"
    try:
        node = RealNode(
            JoinInfo.from_certs(cp.server, cp.certs_dir, kubeconfig),
            images.build(),
            root,
            die_with_parent=False,
        )
        state.save(dataclasses.replace(current, real_node=root))
        node.start()
    except (images.ImagesError, RealNodeError, KubectlError, WaitTimeout) as err:
        print(f"error: the real node did not start: {err}", file=sys.stderr)
        state.save(current)
        return 1
    print(
        f"real node {node.name} Ready in {node.timings['ready']:.1f}s (taint "
        f"{TAINT_KEY}:NoSchedule; images {node.images.operator.name}, {node.images.job.name}); "
        f"logs: {node.layout.logs}",
        file=sys.stderr,
    )
    return 0


NODE_NAME = "local-node"


def _start_process_node(log_path: Path) -> processes.ProcessRecord:
    """The process node that runs the cluster's pods, detached like the components."""
    repo_root = Path(__file__).resolve().parents[2]
    _, record = processes.spawn(
        "process-node",
        [
            sys.executable,
            "-m",
            "tests.cluster.processnode",
            "--from-cluster-up",
            "--name",
            NODE_NAME,
        ],
        log_path,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        die_with_parent=False,
    )
    return record


def _wait_until_pods_can_run(kubectl: Kubectl) -> None:
    """The node is Ready and the `default` ServiceAccount exists (pods are refused before)."""
    ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    wait_for(
        lambda: kubectl.run("get", "node", NODE_NAME, "-o", ready, check=False).stdout == "True",
        timeout=60,
        what=f"node {NODE_NAME} Ready",
        interval=0.2,
    )
    wait_for(
        lambda: kubectl.run("get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=60,
        what="service account default/default",
        interval=0.2,
    )


def _stop(current: state.ClusterState) -> None:
    errors: list[str] = []
    node_state = current.real_node / "node.json" if current.real_node else None
    if node_state is not None and node_state.exists():
        # First, while the API server runs: its pods are deleted through it.
        errors += teardown(NodeState.load(node_state), Kubectl.for_kubeconfig(current.kubeconfig))
    # Reverse start order: the apiserver does not exit on SIGTERM once etcd is gone.
    for record in reversed(current.processes):
        try:
            processes.stop(record, grace=5.0)
        except RuntimeError as err:
            errors.append(str(err))
    if errors:
        # Keep the state file: it is the only record of which pids are still ours.
        raise RuntimeError("; ".join(errors))
    shutil.rmtree(current.work_dir, ignore_errors=True)
    state.clear()


def _down(_: argparse.Namespace) -> int:
    current = state.load()
    if current is None:
        print("no cluster is up", file=sys.stderr)
        return 0
    _stop(current)
    print("cluster down", file=sys.stderr)
    return 0


def _status(_: argparse.Namespace) -> int:
    current = state.load()
    if current is None:
        print("down")
        return 1
    running = {p.pid for p in current.running()}
    for record in current.processes:
        alive = "running" if record.pid in running else "GONE"
        print(f"{record.name:<24} pid {record.pid:<8} {alive}")
    certs = current.work_dir / "certs"
    ready = is_ok(
        f"{current.server}/readyz",
        ClientTLS(certs / "ca.crt", certs / "admin.crt", certs / "admin.key"),
    )
    print(f"apiserver {current.server}: {'ready' if ready else 'NOT ready'}")
    print(f"kubeconfig: {current.kubeconfig}")
    return 0 if ready and len(running) == len(current.processes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the long-lived local cluster and apply crds/")
    up.add_argument("--no-crds", action="store_true", help="do not apply crds/*.yaml")
    up.add_argument(
        "--no-operator", action="store_true", help="do not run the operator from the working tree"
    )
    up.add_argument(
        "--real-node",
        action="store_true",
        help="also start the real node real-0 (kubelet, containerd, kube-proxy)",
    )
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop it and remove its data").set_defaults(func=_down)
    sub.add_parser("status", help="report whether it is up").set_defaults(func=_status)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
