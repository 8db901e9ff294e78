"""Faults of the control plane and the operator, which hit no pod: the operator SIGKILLed (every
replica, restarted after a delay), a leader failover (the leading replica SIGKILLed, the other
takes the Lease), and a kube-apiserver restart (etcd and the rest keep running)."""

from __future__ import annotations

import time

from tests.cluster.waiting import wait_for
from tests.soak.cluster import LEASE_NAME, LEASE_NAMESPACE, Replica
from tests.soak.schedule import Fault

from .base import FaultContext, Injector, Skipped

LEADER_WAIT_SECONDS = 90.0


def _holder(ctx: FaultContext) -> str | None:
    try:
        return ctx.api.lease_holder(LEASE_NAMESPACE, LEASE_NAME)
    except Exception:
        return None


def _new_leader(ctx: FaultContext, killed: list[int]) -> Replica | None:
    """The replica leading now, if it is none of the killed processes."""
    replica = ctx.operators.leader(_holder(ctx))
    return replica if replica is not None and replica.pid not in killed else None


def operator_kill(ctx: FaultContext, fault: Fault) -> None:
    """Every replica killed, restarted after the hold; `took`: until one leads again (the
    liveness judge's allowance: the replicas start late, so they wait a whole lease duration)."""
    indexes = [r.index for r in ctx.operators.replicas]
    t = time.time()
    pids = ctx.operators.kill(indexes)
    try:
        time.sleep(fault.hold)
    finally:
        ctx.operators.release(indexes)
    wait_for(
        lambda: _new_leader(ctx, pids),
        timeout=LEADER_WAIT_SECONDS,
        what="a restarted operator replica to take the Lease",
    )
    took = time.time() - t
    ctx.log.hit(t, fault.kind, reached=False, killed_pids=pids, down_for=fault.hold, took=took)


def leader_failover(ctx: FaultContext, fault: Fault) -> None:
    leader = wait_for(
        lambda: ctx.operators.leader(_holder(ctx)),
        timeout=LEADER_WAIT_SECONDS,
        what="an operator replica holding the Lease",
    )
    others = [r for r in ctx.operators.replicas if r is not leader and r.running()]
    if not others:
        raise Skipped("no other replica running to take over")
    t = time.time()
    pids = ctx.operators.kill([leader.index])
    try:
        successor = wait_for(
            lambda: _new_leader(ctx, pids),
            timeout=LEADER_WAIT_SECONDS,
            what="another replica to take the Lease",
        )
        took = time.time() - t
        time.sleep(fault.hold)
    finally:
        ctx.operators.release([leader.index])
    ctx.log.hit(
        t,
        fault.kind,
        reached=False,
        killed_pids=pids,
        old_leader=leader.index,
        new_leader=successor.index,
        took=took,
    )


def apiserver_restart(ctx: FaultContext, fault: Fault) -> None:
    t = time.time()
    ctx.control_plane.stop_apiserver()
    try:
        time.sleep(fault.hold)
    finally:
        ready_in = ctx.spawner.call(ctx.control_plane.start_apiserver)
    ctx.log.hit(
        t,
        fault.kind,
        reached=False,
        down_for=fault.hold,
        back_after=time.time() - t,
        ready_in=ready_in,
    )


INJECTORS: dict[str, Injector] = {
    "operator-kill": operator_kill,
    "leader-failover": leader_failover,
    "apiserver-restart": apiserver_restart,
}
