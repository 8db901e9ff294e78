"""Faults that change a job: a template rollout, suspend and resume, `continuable restart
--from-step`, and the deletion of the job (background or foreground) followed by its
re-creation under the same name. The operator stops the job's pod gracefully for each.

These faults act on the job whatever its pod is doing: `reached_pod` says a pod of the job
existed and had not ended (Running, or Pending: `pod_phase` in the detail says which), since
the operator stops it either way.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.soak.jobs import TERMINAL_PHASES
from tests.soak.schedule import Fault

from .base import FaultContext, Injector, Skipped
from .pods import continuable_cli

# A running pod is waited for this briefly: these faults act on the job either way.
LOOK_SECONDS = 5.0
# A suspended job's pod must have stopped within this (grace period included); one still
# running then is the operator's failure, which the accounting judge reports.
STOP_WAIT_SECONDS = 60.0


def _pod(ctx: FaultContext, job: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The job's pod the fault will reach (a running one if it comes within LOOK_SECONDS),
    and the detail words that say its phase."""
    pod = ctx.running_pod(job, wait=LOOK_SECONDS) or ctx.jobs.live_pod(job)
    phase = (pod.get("status") or {}).get("phase") if pod else None
    state = ctx.process_state(pod) if pod else None
    return pod, {"pod_phase": phase, "process": state}


def rollout(ctx: FaultContext, fault: Fault) -> None:
    assert fault.job is not None
    pod, seen = _pod(ctx, fault.job)
    t = time.time()
    version = ctx.jobs.rollout(fault.job)
    ctx.log.hit(
        t, fault.kind, job=fault.job, pod=pod, reached=pod is not None, version=version, **seen
    )


def _ended(pod: dict[str, Any] | None) -> bool:
    return pod is None or pod["status"].get("phase") in TERMINAL_PHASES


def suspend(ctx: FaultContext, fault: Fault) -> None:
    assert fault.job is not None
    pod, seen = _pod(ctx, fault.job)
    t = time.time()
    ctx.jobs.set_suspend(fault.job, True)
    try:
        # Held until the operator has stopped the pod, as a person would wait for it: a resume
        # that came first would leave the pod running, and the fault would have reached nothing.
        began = time.monotonic()
        ended = ctx.jobs.wait_pod(fault.job, pod, _ended, STOP_WAIT_SECONDS) if pod else None
        stopped = time.monotonic() - began if ended else None
        time.sleep(max(0.0, fault.hold - (time.time() - t)))
    finally:
        ctx.jobs.set_suspend(fault.job, False)
    ctx.log.hit(
        t,
        fault.kind,
        job=fault.job,
        pod=pod,
        reached=pod is not None,
        stopped_after=stopped,
        resumed_after=time.time() - t,
        **seen,
    )


def restart_step(planned: str, steps: list[str], reported: list[str]) -> str:
    """The step to restart from, as a person would pick it: the planned one when the job has
    reported it (the CLI refuses others), else the last reported step before it, else the
    first step ("*")."""
    if planned in reported:
        return planned
    before = [s for s in steps[: steps.index(planned)] if s in reported] if planned in steps else []
    return before[-1] if before else "*"


def restart(ctx: FaultContext, fault: Fault) -> None:
    assert fault.job is not None
    assert fault.step is not None
    pod, seen = _pod(ctx, fault.job)
    job = ctx.jobs.get(fault.job) or {}
    checkpoint = (job.get("status") or {}).get("checkpoint") or {}
    reported = [str(s.get("name")) for s in checkpoint.get("steps") or []]
    step = restart_step(fault.step, list((job.get("spec") or {}).get("steps") or []), reported)
    args = ["restart", fault.job, "--yes"] + (["--from-step", step] if step != "*" else [])
    t = time.time()
    done = continuable_cli(ctx, *args)
    if done.returncode != 0:
        raise Skipped(f"continuable restart: {done.stderr.strip()[:200]}")
    answer = json.loads(done.stdout)
    ctx.log.hit(
        t,
        fault.kind,
        job=fault.job,
        pod=pod,
        reached=pod is not None,
        from_step=step,
        planned_step=fault.step if step != fault.step else None,
        rerun=answer.get("rerun"),
        kept=answer.get("kept"),
        nonce=answer.get("nonce"),
        **seen,
    )


def _recreate(ctx: FaultContext, fault: Fault, *, foreground: bool) -> None:
    assert fault.job is not None
    pod, seen = _pod(ctx, fault.job)
    t = time.time()
    old = ctx.jobs.delete(fault.job, foreground=foreground)
    gone = time.time()
    new = ctx.jobs.create(fault.job)
    ctx.log.hit(
        t,
        fault.kind,
        job=fault.job,
        pod=pod,
        reached=pod is not None,
        old_uid=old.uid,
        new_uid=new.uid,
        gone_after=gone - t,
        recreated_at=new.created,
        **seen,
    )


def recreate(ctx: FaultContext, fault: Fault) -> None:
    _recreate(ctx, fault, foreground=False)


def foreground_delete(ctx: FaultContext, fault: Fault) -> None:
    _recreate(ctx, fault, foreground=True)


INJECTORS: dict[str, Injector] = {
    "rollout": rollout,
    "suspend": suspend,
    "restart": restart,
    "recreate": recreate,
    "foreground-delete": foreground_delete,
}
