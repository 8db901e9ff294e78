"""`make demo`: a local Kubernetes, the operator, and two jobs interrupted before your eyes.

It starts a real control plane on loopback (etcd, kube-apiserver, controller-manager, scheduler),
a process node that runs pods as host processes, and the operator from this working tree. Then
it applies examples/order-batch and examples/ai-report, deletes order-batch's pod half way (as a
node drain would), rolls out a changed template of ai-report mid-run (as a deploy would), and
ends with what the checkpoints saved. Ctrl-C stops it; everything it started is stopped and
removed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.crds import apply_crds
from tests.cluster.kubectl import Kubectl
from tests.cluster.operating import OperatorProcess
from tests.cluster.processnode import NodeConfig, ProcessNodes
from tests.cluster.session import temporary_namespace

HERE = Path(__file__).resolve().parent
JOBS = ("order-batch", "ai-report")
DEADLINE_SECONDS = 300


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def manifest(name: str, namespace: str, scratch: Path) -> dict[str, Any]:
    job: dict[str, Any] = yaml.safe_load((HERE / name / "job.yaml").read_text())
    job["metadata"]["namespace"] = namespace
    container = job["spec"]["template"]["spec"]["containers"][0]
    container.setdefault("env", []).extend(
        [
            {"name": "LEDGER_FILE", "value": str(scratch / "ledger.txt")},
            {"name": "WORK_DIR", "value": str(scratch / name)},
            {"name": "REPORT_PATH", "value": str(scratch / "report.md")},
        ]
    )
    return job


class Demo:
    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.shown: dict[str, str] = {}

    def status(self, name: str) -> dict[str, Any]:
        raw = self.kubectl("get", "cjob", name, "-n", self.namespace, "-o", "json")
        status: dict[str, Any] = json.loads(raw).get("status") or {}
        return status

    def show(self) -> dict[str, dict[str, Any]]:
        """Print a line for each job whose row changed, as `kubectl get cjob -w` would."""
        statuses = {name: self.status(name) for name in JOBS}
        for name, status in statuses.items():
            checkpoint = status.get("checkpoint") or {}
            row = (
                f"{name:<12} {status.get('phase', '-'):<11} "
                f"{checkpoint.get('currentStep') or '-':<15} "
                f"{(checkpoint.get('progress') or {}).get('summary', '-'):<10} "
                f"attempt {status.get('attempt', 0)}"
            )
            if self.shown.get(name) != row:
                self.shown[name] = row
                print(f"  {row}", flush=True)
        return statuses

    def progress(self, status: dict[str, Any], step: str) -> float:
        checkpoint = status.get("checkpoint") or {}
        progress = checkpoint.get("progress") or {}
        if checkpoint.get("currentStep") != step or not progress.get("total"):
            return 0.0
        return float(progress["done"]) / float(progress["total"])

    def run(self, scratch: Path) -> None:
        say(f"applying examples/order-batch and examples/ai-report in namespace {self.namespace}")
        for name in JOBS:
            self.kubectl(
                "apply", "-f", "-", input=json.dumps(manifest(name, self.namespace, scratch))
            )
        say("watching (kubectl get cjob -w)")
        print(f"  {'NAME':<12} {'PHASE':<11} {'STEP':<15} {'PROGRESS':<10} ATTEMPT", flush=True)
        deleted = rolled = False
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            statuses = self.show()
            if not deleted and self.progress(statuses["order-batch"], "process_orders") > 0.4:
                say("deleting order-batch's pod half way, as a node drain would")
                pod = statuses["order-batch"]["podName"]
                self.kubectl("delete", "pod", pod, "-n", self.namespace, "--wait=false")
                deleted = True
            if not rolled and self.progress(statuses["ai-report"], "summarise") > 0.5:
                say("rolling out a new template of ai-report mid-run, as a deploy would")
                patch = [
                    {
                        "op": "add",
                        "path": "/spec/template/spec/containers/0/env/-",
                        "value": {"name": "MODEL_VERSION", "value": "v2"},
                    }
                ]
                self.kubectl(
                    "patch",
                    "cjob",
                    "ai-report",
                    "-n",
                    self.namespace,
                    "--type=json",
                    "-p",
                    json.dumps(patch),
                )
                rolled = True
            if all(s.get("phase") in ("Succeeded", "Failed") for s in statuses.values()):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the demo's jobs did not finish in time")
        self.report(scratch)

    def launches(self, name: str) -> list[str]:
        """The operator's Launched events: they say which steps a resumed attempt skipped."""
        raw = self.kubectl(
            "get",
            "events",
            "-n",
            self.namespace,
            "--field-selector",
            f"involvedObject.name={name},reason=Launched",
            "-o",
            "json",
        )
        items = sorted(json.loads(raw)["items"], key=lambda e: e["metadata"]["creationTimestamp"])
        return [str(e["message"]) for e in items]

    def report(self, scratch: Path) -> None:
        say("what the checkpoints saved")
        for name in JOBS:
            status = self.status(name)
            attempts = status.get("attempts") or []
            steps = (status.get("checkpoint") or {}).get("steps") or []
            total = sum(float(s.get("durationSeconds") or 0) for s in steps)
            print(f"  {name}: {status.get('phase')} after {len(attempts)} attempts")
            for record in attempts:
                print(
                    f"    attempt {record['attempt']}: {record['outcome']:<11} "
                    f"{record.get('reason', '')}"
                )
            for launch in self.launches(name)[1:]:
                print(f"    {launch}")
            print(
                f"    work saved by resuming: {float(status.get('savedSeconds') or 0):.1f} s "
                f"of {total:.1f} s (a plain retry would have redone it)"
            )
        ledger = (scratch / "ledger.txt").read_text().split()
        orders = Counter(line for line in ledger if line.isdigit())
        repeated = sum(1 for count in orders.values() if count > 1)
        print(f"  order-batch ledger: {len(orders)} orders, {repeated} processed twice")


def main() -> int:
    say("starting a local Kubernetes (etcd, kube-apiserver, controller-manager, scheduler)")
    with tempfile.TemporaryDirectory(prefix="continuable-demo-") as folder, ControlPlane() as cp:
        scratch = Path(folder)
        scratch.chmod(0o777)
        kubectl = Kubectl.for_kubeconfig(cp.kubeconfig)
        apply_crds(kubectl)
        say("starting a process node and the operator from this working tree")
        with (
            ProcessNodes(cp, [NodeConfig(name="demo-node")]),
            OperatorProcess(cp.kubeconfig, scratch / "operator.log", namespaces=["demo-*"]),
            temporary_namespace(kubectl, "demo", prefix="demo-") as namespace,
        ):
            print(f"  kubeconfig: {cp.kubeconfig}\n  operator log: {scratch / 'operator.log'}")
            Demo(kubectl, namespace).run(scratch)
        say("stopping everything the demo started")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nstopped; everything the demo started is stopped and removed", file=sys.stderr)
        sys.exit(130)
