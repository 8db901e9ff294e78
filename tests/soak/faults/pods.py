"""Faults that hit one job's running pod: a graceful delete, a SIGKILL of its process, the
Eviction API, a preemption by the scheduler, and `continuable interrupt`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from kubernetes.client.rest import ApiException

from tests.soak.schedule import Fault

from .base import FaultContext, Injector, Skipped

PREEMPTOR_PRIORITY_CLASS = "soak-preemptor"
PREEMPTOR_PRIORITY = 1_000_000
# How long the scheduler gets to pick the victim and stamp its deletion.
PREEMPT_WAIT_SECONDS = 30.0
# How long a fault that may have acted (a preemptor deleted, a CLI out of time) looks for the pod
# it may have stopped.
AFTERMATH_SECONDS = 5.0
CLI_TIMEOUT = 60.0


# A pod fault that finds its job between pods (relaunching after an earlier fault) waits this
# long for the next one to run before it is skipped: under load a relaunch takes a while, and a
# kind skipped every time would never be tested.
POD_WAIT_SECONDS = 30.0


def _pod(ctx: FaultContext, fault: Fault, *, on_live_node: bool = False) -> dict[str, Any]:
    assert fault.job is not None
    deadline = time.monotonic() + POD_WAIT_SECONDS
    while True:
        pod = ctx.running_pod(fault.job, on_live_node=on_live_node)
        if pod is not None:
            return pod
        if time.monotonic() >= deadline:
            raise Skipped(f"no running pod for {POD_WAIT_SECONDS:.0f}s")
        time.sleep(1.0)


def _gone(err: ApiException) -> bool:
    # 404: gone; 409: the UID precondition failed (a namesake); 429 from an eviction: refused.
    return err.status in (404, 409)


def pod_delete(ctx: FaultContext, fault: Fault) -> None:
    pod = _pod(ctx, fault)
    meta = pod["metadata"]
    reached, seen = ctx.reach(pod)
    t = time.time()
    try:
        ctx.api.delete_pod(ctx.namespace, meta["name"], meta["uid"])
    except ApiException as err:
        if _gone(err):
            raise Skipped(f"the pod went away first ({err.status})") from None
        raise
    ctx.log.hit(t, fault.kind, job=fault.job, pod=pod, reached=reached, **seen)


def sigkill(ctx: FaultContext, fault: Fault) -> None:
    # Not on a partitioned node: its frozen agent never reports the exit code, so the pod ends
    # Lost with the partition, and the SIGKILL would be no crash anyone could count.
    pod = _pod(ctx, fault, on_live_node=True)
    node = ctx.nodes.get(pod["spec"].get("nodeName", ""))
    if node is None:
        raise Skipped(f"pod on an unknown node {pod['spec'].get('nodeName')}")
    if node.paused:
        raise Skipped(f"its node {node.name} is partitioned (agent frozen)")
    t = time.time()
    killed = node.sigkill_pod(pod["metadata"]["uid"])
    if not killed:
        raise Skipped("no live container process recorded for the pod")
    ctx.log.hit(t, fault.kind, job=fault.job, pod=pod, reached=True, pids=killed)


def evict(ctx: FaultContext, fault: Fault) -> None:
    pod = _pod(ctx, fault)
    reached, seen = ctx.reach(pod)
    t = time.time()
    try:
        ctx.api.evict_pod(ctx.namespace, pod["metadata"]["name"])
    except ApiException as err:
        if _gone(err):
            raise Skipped(f"the pod went away first ({err.status})") from None
        raise
    ctx.log.hit(t, fault.kind, job=fault.job, pod=pod, reached=reached, **seen)


def ensure_priority_class(ctx: FaultContext) -> None:
    body = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": PREEMPTOR_PRIORITY_CLASS},
        "value": PREEMPTOR_PRIORITY,
        "preemptionPolicy": "PreemptLowerPriority",
        "description": "The soak's preemptor pods: they preempt one job pod each.",
    }
    try:
        ctx.api.scheduling.create_priority_class(body, _request_timeout=(5, 30))
    except ApiException as err:
        if err.status != 409:
            raise


def preemptor(job: str, node: str, name: str) -> dict[str, Any]:
    """A high-priority pod that fits on `node` only once the job's pod is gone: it refuses to
    share a node with the job's pods (required anti-affinity), and asks for nothing else, so
    the scheduler's preemption picks exactly that one victim."""
    from continuable.names import JOB_LABEL

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"soak.continuable.dev/preemptor": job}},
        "spec": {
            "priorityClassName": PREEMPTOR_PRIORITY_CLASS,
            "nodeSelector": {"kubernetes.io/hostname": node},
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {JOB_LABEL: job}},
                            "topologyKey": "kubernetes.io/hostname",
                        }
                    ]
                }
            },
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{"name": "preemptor", "image": "pause", "command": ["sleep", "60"]}],
        },
    }


def _stopped(
    ctx: FaultContext, job: str, pod: dict[str, Any], wait: float
) -> dict[str, Any] | None:
    """The pod as last seen once it is being deleted or gone, waiting up to `wait`; None while
    it still runs untouched."""

    def stopping(current: dict[str, Any] | None) -> bool:
        return current is None or bool(current["metadata"].get("deletionTimestamp"))

    return ctx.jobs.wait_pod(job, pod, stopping, wait, poll=0.3)


def preempt(ctx: FaultContext, fault: Fault) -> None:
    pod = _pod(ctx, fault)
    assert fault.job is not None
    meta = pod["metadata"]
    node = pod["spec"]["nodeName"]
    name = f"preemptor-{meta['name']}-{int(time.time() * 1000) % 100000}"
    ensure_priority_class(ctx)
    reached, seen = ctx.reach(pod)
    t = time.time()
    ctx.api.create_pod(ctx.namespace, preemptor(fault.job, node, name))
    victim = None
    try:
        victim = _stopped(ctx, fault.job, pod, PREEMPT_WAIT_SECONDS)
    finally:
        try:
            ctx.api.core.delete_namespaced_pod(
                name, ctx.namespace, grace_period_seconds=0, _request_timeout=(5, 30)
            )
        except ApiException as err:
            if err.status != 404:
                raise
    # The scheduler may have preempted the pod in the instant before the preemptor went (it
    # was found late, under load, by the first run that checked only up to here).
    victim = victim or _stopped(ctx, fault.job, pod, AFTERMATH_SECONDS)
    if victim is None:
        # The pod ended by itself meanwhile, or the scheduler found another way: record it,
        # the preemptor did exist and ask for the node.
        ctx.log.hit(t, fault.kind, job=fault.job, pod=pod, reached=False, preemptor=name)
        return
    reason = next(
        (
            c.get("reason")
            for c in (victim.get("status") or {}).get("conditions") or []
            if c.get("type") == "DisruptionTarget"
        ),
        None,
    )
    ctx.log.hit(
        t,
        fault.kind,
        job=fault.job,
        pod=pod,
        reached=reached,
        preemptor=name,
        preempted_after=time.time() - t,
        reason=reason,
        **seen,
    )


# What the CLI prints when no API server answers (one is restarting): worth another try.
UNREACHABLE = ("cannot reach the API server", "Connection refused", "503", "timed out")


def continuable_cli(ctx: FaultContext, *args: str) -> subprocess.CompletedProcess[str]:
    """`continuable -o json <args>`, as a person runs it (again while no API server answers,
    for at most CLI_TIMEOUT seconds)."""
    argv = [
        sys.executable,
        "-m",
        "continuable.cli",
        "--kubeconfig",
        str(ctx.kubeconfig),
        "-n",
        ctx.namespace,
        "-o",
        "json",
        *args,
    ]
    deadline = time.monotonic() + CLI_TIMEOUT
    while True:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
        )
        unreachable = any(marker in done.stderr for marker in UNREACHABLE)
        if done.returncode == 0 or not unreachable or time.monotonic() >= deadline:
            return done
        time.sleep(1.0)


def interrupt(ctx: FaultContext, fault: Fault) -> None:
    assert fault.job is not None
    pod = _pod(ctx, fault)
    reached, seen = ctx.reach(pod)
    t = time.time()
    try:
        done = continuable_cli(ctx, "interrupt", fault.job)
    except subprocess.TimeoutExpired:
        # The CLI may have stopped the pod before it ran out of time: the pod says whether.
        if _stopped(ctx, fault.job, pod, AFTERMATH_SECONDS) is None:
            raise Skipped(f"continuable interrupt timed out after {CLI_TIMEOUT:.0f}s") from None
        ctx.log.hit(t, fault.kind, job=fault.job, pod=pod, reached=reached, cli="timed_out", **seen)
        return
    if done.returncode != 0:
        raise Skipped(f"continuable interrupt: {done.stderr.strip()[:200]}")
    answer = json.loads(done.stdout)
    hit = next((p for p in ctx.jobs.pods(fault.job) if p["metadata"]["name"] == answer["pod"]), pod)
    if hit["metadata"]["uid"] != pod["metadata"]["uid"]:
        reached, seen = ctx.reach(hit)
    ctx.log.hit(t, fault.kind, job=fault.job, pod=hit, reached=reached, **seen)


INJECTORS: dict[str, Injector] = {
    "pod-delete": pod_delete,
    "sigkill": sigkill,
    "evict": evict,
    "preempt": preempt,
    "interrupt": interrupt,
}
