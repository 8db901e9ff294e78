"""Faults that hit a node and every job pod on it: a drain (cordon + evict, uncordoned later),
a restart of the node agent, and a partition. Each picks the node with the most running job
pods, so it hits as much as it can.

A partition, as it happens to a node cut off from the API server: its agent is frozen (SIGSTOP)
while its pods' processes run on and keep writing; once the node is NotReady, a person cordons
it and force-deletes its pods (grace 0), as the docs for a lost node say; the operator records
the attempts as Lost and starts replacements on other nodes, whose newer attempt numbers fence
the old processes out. The agent is continued a while later (and kills what is left), and the
node uncordoned.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from kubernetes.client.rest import ApiException

from tests.soak.kube import node_ready
from tests.soak.schedule import Fault

from .base import FaultContext, Injector

DRAIN_TIMEOUT_SECONDS = 90
NOT_READY_TIMEOUT_SECONDS = 120.0
BUSY_WAIT_SECONDS = 30.0


def job_pods_on(ctx: FaultContext, node: str) -> list[dict[str, Any]]:
    """The job pods bound to `node` that have not ended."""
    from continuable.names import JOB_LABEL

    return [
        p
        for p in ctx.api.list_pods(ctx.namespace, JOB_LABEL)
        if p["spec"].get("nodeName") == node
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def busiest(ctx: FaultContext, wait: float = BUSY_WAIT_SECONDS) -> str:
    """The node with the most running job pods, once one has any (waiting up to `wait`: after
    another fault no pod may run for a while)."""
    from continuable.names import JOB_LABEL

    deadline = time.monotonic() + wait
    while True:
        counts = Counter(
            p["spec"].get("nodeName")
            for p in ctx.api.list_pods(ctx.namespace, JOB_LABEL)
            if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        )
        if any(counts.get(name) for name in ctx.nodes) or time.monotonic() >= deadline:
            return max(sorted(ctx.nodes), key=lambda name: counts.get(name, 0))
        time.sleep(1.0)


def _job_of(pod: dict[str, Any]) -> str | None:
    from continuable.names import JOB_LABEL

    return (pod["metadata"].get("labels") or {}).get(JOB_LABEL)


def states(ctx: FaultContext, pods: list[dict[str, Any]]) -> dict[str, str | None]:
    """Per pod uid, its process's state now (see FaultContext.process_state)."""
    return {p["metadata"]["uid"]: ctx.process_state(p) for p in pods}


def _lines(
    ctx: FaultContext,
    t: float,
    kind: str,
    node: str,
    pods: list[dict[str, Any]],
    seen: dict[str, str | None],
    **detail: Any,
) -> None:
    """One line per pod. Reached: for an agent restart, a running process (a pod that never
    started just starts on the new agent); for a drain or a partition, any pod whose process
    has not already ended (a never-started pod is deleted all the same, and its attempt must
    end). The API's phase decides when the process cannot be looked at."""
    if not pods:
        ctx.log.hit(t, kind, reached=False, node=node, **detail)
    for pod in pods:
        state = seen.get(pod["metadata"]["uid"])
        phase = (pod.get("status") or {}).get("phase")
        if state is None:
            reached = phase == "Running"
        elif kind == "agent-restart":
            reached = state == "running"
        else:
            reached = state != "exited"
        # A pod already being deleted (gracefully) is still hit: its process dies harder.
        deleting = True if pod["metadata"].get("deletionTimestamp") else None
        ctx.log.hit(
            t,
            kind,
            job=_job_of(pod),
            pod=pod,
            reached=reached,
            deleting=deleting,
            process=state if state != "running" else None,
            **detail,
        )


def _uncordon(ctx: FaultContext, node: str) -> None:
    done = ctx.kubectl_until_ok("uncordon", node, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl uncordon {node}: {done.stderr.strip()}")


def drain(ctx: FaultContext, fault: Fault) -> None:
    node = busiest(ctx)
    pods = job_pods_on(ctx, node)
    running = states(ctx, pods)
    t = time.time()
    try:
        done = ctx.kubectl_until_ok(
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            f"--timeout={DRAIN_TIMEOUT_SECONDS}s",
            timeout=DRAIN_TIMEOUT_SECONDS + 30,
            attempt_timeout=DRAIN_TIMEOUT_SECONDS + 30,
        )
        drained = time.time()
        _lines(
            ctx,
            t,
            fault.kind,
            node,
            pods,
            running,
            drain_exit=done.returncode,
            drained_after=drained - t,
            uncordon_after=fault.hold,
            error=done.stderr.strip().splitlines()[-1][:120] if done.returncode else None,
        )
        time.sleep(fault.hold)
    finally:
        _uncordon(ctx, node)


def agent_restart(ctx: FaultContext, fault: Fault) -> None:
    name = busiest(ctx)
    node = ctx.nodes[name]
    t = time.time()
    node.stop_agent()
    try:
        # Read once the agent is down, when it can start nothing more: read before, a pod it
        # started in between was logged as never started (found by the soak).
        pods = job_pods_on(ctx, name)
        running = states(ctx, pods)
        time.sleep(fault.hold)
    finally:
        node.start()
    _lines(ctx, t, fault.kind, name, pods, running, down_for=fault.hold, back_after=time.time() - t)


def _ready(ctx: FaultContext, node: str) -> str:
    for item in ctx.api.list_nodes():
        if item["metadata"]["name"] == node:
            return node_ready(item)
    return "Gone"


def partition(ctx: FaultContext, fault: Fault) -> None:
    name = busiest(ctx)
    node = ctx.nodes[name]
    t = time.time()
    node.pause()
    cordoned = False
    try:
        # Until the node is NotReady the scheduler may still bind new pods to it: they never
        # start, and are force-deleted with the others.
        deadline = time.monotonic() + NOT_READY_TIMEOUT_SECONDS
        while _ready(ctx, name) == "True" and time.monotonic() < deadline:
            time.sleep(1.0)
        not_ready = time.time()
        # The runbook for a lost node: cordon it, force-delete its pods.
        done = ctx.kubectl_until_ok("cordon", name, timeout=60)
        cordoned = done.returncode == 0
        pods = job_pods_on(ctx, name)
        running = states(ctx, pods)
        forced = time.time()
        deleted = []
        for pod in pods:
            meta = pod["metadata"]
            try:
                ctx.api.delete_pod(ctx.namespace, meta["name"], meta["uid"], grace=0)
                deleted.append(pod)
            except ApiException as err:
                if err.status not in (404, 409):
                    raise
        _lines(
            ctx,
            t,
            fault.kind,
            name,
            deleted,
            running,
            not_ready_after=not_ready - t,
            ready=_ready(ctx, name),
            force_deleted_at=forced,
            resumed_after_force=fault.hold,
        )
        time.sleep(fault.hold)
    finally:
        node.resume()
        if cordoned:
            _uncordon(ctx, name)


INJECTORS: dict[str, Injector] = {
    "drain": drain,
    "agent-restart": agent_restart,
    "partition": partition,
}
