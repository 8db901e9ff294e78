"""What every injector shares: the fault log, the context, and the dispatch by kind."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.cluster import processes
from tests.cluster.kubectl import Kubectl
from tests.soak.cluster import Operators, SoakControlPlane, SoakNode, Spawner
from tests.soak.jobs import Jobs, attempt_of
from tests.soak.kube import Api
from tests.soak.recording import JsonLines
from tests.soak.schedule import Fault

# Whether a hit pod gets its grace period (SIGTERM, then SIGKILL only after it).
GRACEFUL = {
    "pod-delete": True,
    "sigkill": False,
    "evict": True,
    "preempt": True,
    "drain": True,
    "rollout": True,
    "suspend": True,
    "interrupt": True,
    "restart": True,
    "operator-kill": False,
    "leader-failover": False,
    "apiserver-restart": False,
    "agent-restart": False,
    "partition": False,
    "recreate": True,
    "foreground-delete": True,
}
# How long a pod fault waits for its job to have a running pod (it may be relaunching).
POD_WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class FaultRecord:
    t: float
    kind: str
    job: str | None
    pod: str | None
    attempt: int | None
    node: str | None
    reached_pod: bool
    graceful: bool
    detail: str


class FaultLog:
    """faults.jsonl (what was injected) and skipped.jsonl (planned, but nothing to hit)."""

    def __init__(self, run_dir: Path) -> None:
        self.faults = JsonLines(run_dir / "faults.jsonl")
        self.skipped = JsonLines(run_dir / "skipped.jsonl")

    def hit(
        self,
        t: float,
        kind: str,
        *,
        job: str | None = None,
        pod: dict[str, Any] | None = None,
        reached: bool = False,
        **detail: Any,
    ) -> FaultRecord:
        record = FaultRecord(
            t=t,
            kind=kind,
            job=job,
            pod=pod["metadata"]["name"] if pod else None,
            attempt=attempt_of(pod) if pod else None,
            node=(pod.get("spec") or {}).get("nodeName") if pod else detail.pop("node", None),
            reached_pod=reached,
            graceful=GRACEFUL[kind],
            detail=words(detail),
        )
        self.faults.write(asdict(record))
        return record

    def skip(self, fault: Fault, why: str, job: str | None = None) -> None:
        self.skipped.write(
            {
                "t": time.time(),
                "kind": fault.kind,
                "job": job or fault.job,
                "planned_at": fault.at,
                "why": why,
            }
        )

    def close(self) -> None:
        self.faults.close()
        self.skipped.close()


def words(detail: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        if isinstance(value, (list, tuple)):
            return ",".join(text(v) for v in value) or "-"
        return str(value).replace(" ", "_")

    return " ".join(f"{key}={text(value)}" for key, value in detail.items() if value is not None)


@dataclass
class FaultContext:
    api: Api
    jobs: Jobs
    namespace: str
    nodes: dict[str, SoakNode]
    operators: Operators
    control_plane: SoakControlPlane
    kubectl: Kubectl
    kubeconfig: Path
    spawner: Spawner
    log: FaultLog
    run_dir: Path

    def running_pod(
        self, job: str, wait: float = POD_WAIT_SECONDS, *, on_live_node: bool = False
    ) -> dict[str, Any] | None:
        """The job's running pod, waiting up to `wait`; with `on_live_node`, only one on a node
        whose agent is not frozen (a partition)."""
        deadline = time.monotonic() + wait
        while True:
            pod = self.jobs.running_pod(job)
            if pod is not None and not (on_live_node and self.on_frozen_node(pod)):
                return pod
            if time.monotonic() >= deadline or self.jobs.finished(job):
                return None
            time.sleep(1.0)

    def on_frozen_node(self, pod: dict[str, Any]) -> bool:
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        return node is not None and node.paused

    def process_alive(self, pod: dict[str, Any]) -> bool | None:
        """Whether a container process of the pod runs now, from the process node's own
        records (pid + start time), not from the API: a pod on a frozen node stays Running in
        the API after its process has exited. None when the pod is on no node of ours."""
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None:
            return None
        return any(processes.is_running(r) for r in node.pod_processes(pod["metadata"]["uid"]))

    def process_state(self, pod: dict[str, Any]) -> str | None:
        """`running`, `exited` (it ran and ended, whatever the API still says) or `never` (it
        never started: bound to a node, Pending); None when the pod is on no node of ours."""
        alive = self.process_alive(pod)
        if alive is None:
            return None
        if alive:
            return "running"
        status = pod.get("status") or {}
        started = status.get("phase") in ("Running", "Succeeded", "Failed") or any(
            "running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {})
            for c in status.get("containerStatuses") or []
        )
        return "exited" if started else "never"

    def reach(self, pod: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """(reached_pod, detail) for a fault that stops or deletes a pod: reached unless its
        process has already ended (a pod that never started is reached: the operator must
        record an outcome for its attempt)."""
        state = self.process_state(pod)
        return state != "exited", {"process": state if state != "running" else None}

    def kubectl_until_ok(
        self, *args: str, timeout: float = 120.0, attempt_timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """kubectl, again after any failure (the API server may be restarting), until it
        succeeds or `timeout` seconds have passed; the last result either way."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(5.0, min(attempt_timeout, deadline - time.monotonic()))
            try:
                result = self.kubectl.run(*args, check=False, timeout=left)
            except subprocess.TimeoutExpired as err:
                result = subprocess.CompletedProcess(list(args), 124, "", f"timed out: {err}")
            if result.returncode == 0 or time.monotonic() >= deadline:
                return result
            time.sleep(1.0)


class Skipped(Exception):
    """Raised by an injector when there was nothing to hit; the fault goes to skipped.jsonl."""


Injector = Callable[[FaultContext, Fault], None]


def inject(ctx: FaultContext, fault: Fault, job: str | None = None) -> bool:
    """Run the injector of `fault.kind` (on `job`, which may differ from the planned one);
    False when it found nothing to hit (the fault went to skipped.jsonl)."""
    from . import control, jobs, nodes, pods

    injectors: dict[str, Injector] = {
        **pods.INJECTORS,
        **jobs.INJECTORS,
        **nodes.INJECTORS,
        **control.INJECTORS,
    }
    if job is not None and job != fault.job:
        fault = Fault(fault.at, fault.kind, fault.lane, job, fault.step, fault.hold)
    try:
        injectors[fault.kind](ctx, fault)
    except Skipped as why:
        ctx.log.skip(fault, str(why))
        return False
    return True
