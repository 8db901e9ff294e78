"""Small synthetic soak records: one job `j` with 10 items, one item every 0.2 s, a 1 s
checkpoint interval, built attempt by attempt so each test states only what it is about."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.soak.records import (
    AuditEvent,
    Fault,
    JobRecord,
    LedgerLine,
    NodeEvent,
    PodEvent,
    Records,
    parse_audit_event,
)

UID = "uid-j-1"
ITEM_SECONDS = 0.2
STEPS = ("fetch", "items", "notify")
OPERATOR = "system:serviceaccount:continuable-system:continuable-operator"


def sa(job: str = "j") -> str:
    return f"system:serviceaccount:soak:{job}-checkpoint"


def final(phase: str = "Succeeded", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"phase": phase, "interruptions": 0, "failures": 0, **status}
    if phase == "Succeeded":
        body.setdefault("completionTime", "1970-01-01T00:01:40Z")  # t = 100
    return {"metadata": {"name": "j", "uid": UID}, "spec": {"backoffLimit": 6}, "status": body}


def job(
    name: str = "j",
    uid: str = UID,
    *,
    items: int = 10,
    interval: float = 1.0,
    steps: tuple[str, ...] = STEPS,
    created: float = 0.0,
    phase: str | None = "Succeeded",
    **status: Any,
) -> JobRecord:
    return JobRecord(
        name=name,
        uid=uid,
        items=items,
        interval_seconds=interval,
        steps=steps,
        created=created,
        final=final(phase, **status) if phase else None,
    )


class Ledger:
    """Appends ledger lines in order; `t` moves on by ITEM_SECONDS per line."""

    def __init__(self, job: str = "j", t: float = 1.0) -> None:
        self.job = job
        self.t = t
        self.lines: list[LedgerLine] = []

    def add(self, attempt: int, whats: Iterable[int | str], *, uid: str | None = None) -> float:
        """Lines for `whats` by `attempt`; returns the time of the last."""
        for what in whats:
            self.lines.append(
                LedgerLine(
                    self.job, str(what), attempt, 100 + attempt, self.t, uid, len(self.lines)
                )
            )
            self.t += ITEM_SECONDS
        return self.t - ITEM_SECONDS

    def wait(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def clean_ledger(items: int = 10) -> Ledger:
    ledger = Ledger()
    ledger.add(1, ["fetch", *range(items), "notify"])
    return ledger


def fault(
    kind: str,
    t: float,
    attempt: int | None = 1,
    *,
    job: str | None = "j",
    reached: bool = True,
    graceful: bool | None = None,
    detail: str = "",
    node: str | None = None,
) -> Fault:
    lossy = kind in ("sigkill", "partition")
    return Fault(
        t=t,
        kind=kind,
        job=job,
        pod=f"{job}-{attempt}" if job and attempt else None,
        attempt=attempt,
        node=node,
        reached_pod=reached,
        graceful=(not lossy) if graceful is None else graceful,
        detail=detail,
    )


def pod(
    t: float,
    attempt: int,
    phase: str = "Running",
    *,
    type: str = "MODIFIED",
    job: str = "j",
    job_uid: str = UID,
    uid: str | None = None,
    node: str | None = "n1",
    deleting: bool = False,
    finalizers: tuple[str, ...] = (),
) -> PodEvent:
    return PodEvent(
        t=t,
        type=type,
        name=f"{job}-{attempt}",
        uid=uid or f"pod-{job_uid}-{attempt}",
        job=job,
        attempt=attempt,
        job_uid=job_uid,
        phase=phase,
        node=node,
        deleting=deleting,
        finalizers=finalizers,
    )


def node(t: float, name: str, ready: bool) -> NodeEvent:
    return NodeEvent(t, name, ready)


def audit(
    t: float,
    user: str,
    *,
    name: str = "j",
    resource: str = "continuablejobs",
    subresource: str = "status",
    code: int = 200,
    ops: Any = None,
    uid: str | None = UID,
    rv: int | None = None,
    verb: str = "patch",
    pod_name: str | None = None,
    owner: bool = False,
    took: float = 0.01,
) -> AuditEvent:
    """An audit event as the API server logs it, read through the loader; `took`: seconds from
    the request received to its answer (at `t`)."""
    event = parse_audit_event(
        raw_audit(
            t,
            user,
            name=name,
            resource=resource,
            subresource=subresource,
            code=code,
            ops=ops,
            uid=uid,
            rv=rv,
            verb=verb,
            pod_name=pod_name,
            owner=owner,
            took=took,
        )
    )
    assert event is not None
    return event


def raw_audit(
    t: float,
    user: str,
    *,
    name: str,
    resource: str,
    subresource: str,
    code: int,
    ops: Any,
    uid: str | None,
    rv: int | None,
    verb: str,
    pod_name: str | None,
    owner: bool,
    took: float = 0.01,
) -> dict[str, Any]:
    """An audit.k8s.io/v1 Event of stage ResponseComplete, as a line of audit.log."""
    metadata: dict[str, Any] = {}
    if rv is not None:
        metadata["resourceVersion"] = str(rv)
    if uid is not None:
        if owner:
            metadata["ownerReferences"] = [{"uid": uid, "controller": True}]
        else:
            metadata["uid"] = uid
    stamp = _rfc3339(t)
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {
            "username": user,
            "extra": {"authentication.kubernetes.io/pod-name": [pod_name]} if pod_name else {},
        },
        "objectRef": {
            "resource": resource,
            "subresource": subresource,
            "namespace": "soak",
            "name": name,
        },
        "responseStatus": {"code": code},
        "requestObject": ops,
        "responseObject": {"metadata": metadata} if code < 300 else {"kind": "Status"},
        "requestReceivedTimestamp": _rfc3339(t - took),
        "stageTimestamp": stamp,
    }


def _rfc3339(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sdk_status(
    t: float,
    attempt: int,
    *,
    job: str = "j",
    uid: str = UID,
    stop_reason: str | None = None,
    **kw: Any,
) -> AuditEvent:
    checkpoint: dict[str, Any] = {"attempt": attempt}
    if stop_reason:
        checkpoint["stopReason"] = stop_reason
    ops = [
        {"op": "test", "path": "/status/attempt", "value": attempt},
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "add", "path": "/status/checkpoint", "value": checkpoint},
    ]
    kw.setdefault("pod_name", f"{job}-{attempt}")
    return audit(t, sa(job), name=job, ops=ops, uid=uid, **kw)


def sdk_result(t: float, attempt: int, *, job: str = "j", uid: str = UID, **kw: Any) -> AuditEvent:
    ops = [
        {"op": "test", "path": "/data/attempt", "value": str(attempt)},
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": uid},
        {"op": "add", "path": "/data/fetch.json", "value": "{}"},
    ]
    kw.setdefault("pod_name", f"{job}-{attempt}")
    return audit(
        t,
        sa(job),
        name=f"{job}-results",
        resource="configmaps",
        subresource="",
        ops=ops,
        uid=uid,
        owner=True,
        **kw,
    )


def operator_raise(
    t: float, attempt: int, *, job: str = "j", uid: str = UID, **kw: Any
) -> AuditEvent:
    ops = [
        {"op": "test", "path": "/status/attempt", "value": attempt - 1},
        {"op": "add", "path": "/status/attempt", "value": attempt},
    ]
    return audit(t, OPERATOR, name=job, ops=ops, uid=uid, **kw)


def records(
    *,
    jobs: list[JobRecord] | None = None,
    ledger: Ledger | list[Ledger] | None = None,
    faults: list[Fault] | None = None,
    pods: list[PodEvent] | None = None,
    nodes: list[NodeEvent] | None = None,
    audit: list[AuditEvent] | None = None,
    **more: Any,
) -> Records:
    ledgers = ledger if isinstance(ledger, list) else [ledger] if ledger else []
    return Records(
        faults=faults or [],
        ledger={x.job: x.lines for x in ledgers},
        jobs=jobs if jobs is not None else [job()],
        pods=pods or [],
        nodes=nodes or [],
        audit=sorted(audit or [], key=lambda a: a.t),
        **more,
    )
