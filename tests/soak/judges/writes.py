"""The audit log read as writes: who wrote which job's status or results, fenced on what.

A job's pod writes as its ServiceAccount, `system:serviceaccount:<ns>:<job>-checkpoint` (the
operator creates one per job; the soak's templates name none). With a pod-bound token the
API server also records the pod's name in `user.extra`, which gives the writer's real attempt
(`<job>-<attempt>`) independently of the attempt its patch claims. Every other user writing a
job's status is taken as the operator (nobody else writes the status subresource in a soak).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from tests.soak.records import CHECKPOINT_PATH, AuditEvent, Records

SA_SUFFIX: Final = "-checkpoint"
RESULTS_SUFFIX: Final = "-results"
POD_NAME_EXTRA: Final = "authentication.kubernetes.io/pod-name"
WRITE_VERBS: Final = frozenset({"create", "update", "patch", "delete", "deletecollection"})

Target = Literal["status", "results", "other"]


def sa_job(event: AuditEvent, names: set[str]) -> str | None:
    """The job whose ServiceAccount made the request, if a job's pod made it."""
    prefix = "system:serviceaccount:"
    if not event.user.startswith(prefix):
        return None
    account = event.user.rsplit(":", 1)[-1]
    if account.endswith(SA_SUFFIX) and account[: -len(SA_SUFFIX)] in names:
        return account[: -len(SA_SUFFIX)]
    return None


def attempt_of_pod(pod: str, job: str) -> int | None:
    """The attempt in a pod name `<job>-<attempt>`."""
    rest = pod[len(job) + 1 :] if pod.startswith(f"{job}-") else ""
    return int(rest) if rest.isdigit() else None


def writer_attempt(event: AuditEvent, job: str) -> int | None:
    """The attempt of the pod whose bound token made the request (None without the extra)."""
    pods = event.extra.get(POD_NAME_EXTRA) or []
    return attempt_of_pod(pods[0], job) if pods else None


def _labels(obj: Any) -> dict[str, Any]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def object_job(event: AuditEvent, names: set[str]) -> str | None:
    """The job an object written belongs to, by its name (or a pod's job label)."""
    name = event.name
    if event.resource == "continuablejobs" and name in names:
        return name
    if event.resource == "configmaps" and name.endswith(RESULTS_SUFFIX):
        job = name[: -len(RESULTS_SUFFIX)]
        return job if job in names else None
    if event.resource == "pods":
        for obj in (event.response, event.request):
            label = _labels(obj).get("continuable.dev/job") if isinstance(obj, dict) else None
            if label in names:
                return str(label)
        # `<job>-<attempt>`: only one job name leaves a number after it.
        return next((j for j in names if attempt_of_pod(name, j) is not None), None)
    if name.endswith(SA_SUFFIX) and name[: -len(SA_SUFFIX)] in names:
        return name[: -len(SA_SUFFIX)]
    return None


def target(event: AuditEvent) -> Target:
    if event.resource == "continuablejobs" and event.subresource == "status":
        return "status"
    if event.resource == "configmaps" and event.name.endswith(RESULTS_SUFFIX):
        return "results"
    return "other"


def _test(ops: Any, path: str) -> Any:
    """The value of the patch's `test` op on `path`, or None."""
    for op in ops if isinstance(ops, list) else []:
        if isinstance(op, dict) and op.get("op") == "test" and op.get("path") == path:
            return op.get("value")
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def response_uid(event: AuditEvent, kind: Target) -> str | None:
    """The uid of the job the written object is (status) or belongs to (results)."""
    metadata = (event.response or {}).get("metadata") if isinstance(event.response, dict) else None
    if not metadata:
        return None
    if kind == "status":
        uid = metadata.get("uid")
    else:
        owners = [r for r in metadata.get("ownerReferences") or [] if r.get("controller")]
        uid = owners[0].get("uid") if owners else None
    return str(uid) if uid else None


@dataclass(frozen=True)
class Write:
    """A write to a job's status or results by a job's pod."""

    event: AuditEvent
    writer: str  # the job whose ServiceAccount wrote
    job: str  # the job whose object was written
    kind: Target
    tested_attempt: int | None  # the fence: None if the patch tests no attempt
    tested_uid: str | None
    pod_attempt: int | None  # from the token's pod name, when recorded
    uid: str | None  # the written job's uid, from the response or the patch's test

    @property
    def attempt(self) -> int | None:
        return self.pod_attempt if self.pod_attempt is not None else self.tested_attempt

    @property
    def stop_reason(self) -> str | None:
        """The `stopReason` of the checkpoint this write saves, if it says one."""
        for op in self.event.request if isinstance(self.event.request, list) else []:
            value = op.get("value")
            if op.get("path") == CHECKPOINT_PATH and isinstance(value, dict):
                reason = value.get("stopReason")
                return str(reason) if reason is not None else None
        return None


def sdk_writes(records: Records) -> list[Write]:
    """Every write request made by a job's ServiceAccount, refused ones included."""
    return records.memo("sdk_writes", lambda: _sdk_writes(records))


def _sdk_writes(records: Records) -> list[Write]:
    names = set(records.names())
    found: list[Write] = []
    for event in records.audit:
        writer = sa_job(event, names)
        if writer is None or event.verb not in WRITE_VERBS:
            continue
        kind = target(event)
        ops = event.request
        if kind == "status":
            tested_attempt = _int(_test(ops, "/status/attempt"))
            tested_uid = _test(ops, "/metadata/uid")
        elif kind == "results":
            tested_attempt = _int(_test(ops, "/data/attempt"))
            tested_uid = _test(ops, "/metadata/ownerReferences/0/uid")
        else:
            tested_attempt, tested_uid = None, None
        job = object_job(event, names) or event.name
        found.append(
            Write(
                event=event,
                writer=writer,
                job=job,
                kind=kind,
                tested_attempt=tested_attempt,
                tested_uid=str(tested_uid) if tested_uid is not None else None,
                pod_attempt=writer_attempt(event, writer),
                uid=response_uid(event, kind) or (str(tested_uid) if tested_uid else None),
            )
        )
    return found


def attempt_saves(records: Records, uid: str, attempt: int) -> list[Write]:
    """The checkpoint writes of an attempt's pod that the API server accepted, for that uid."""
    return [
        w
        for w in sdk_writes(records)
        if w.kind == "status"
        and w.event.accepted
        and w.attempt == attempt
        and (w.uid or records.uid_at(w.job, w.event.t)) == uid
    ]


def checkpoint_latency(records: Records, uid: str, attempt: int) -> float:
    """The longest accepted checkpoint write of an attempt (received to complete): the SDK
    schedules its next write an interval after the last one ended, so a slow write stretches
    the span of work a SIGKILL can cost by as much."""
    durations = [w.event.t - w.event.received for w in attempt_saves(records, uid, attempt)]
    return max(durations, default=0.0)


# Stop reasons of a pod that ended by itself, not because something stopped it.
OWN_STOPS: Final = frozenset({"Isolated", "Completed"})


def stopped_by_itself(records: Records, uid: str, attempt: int) -> bool:
    """Whether the attempt's pod said, in its last accepted status write, that it stopped on
    its own (at an isolated step's boundary, or with the job done): in its own words, which
    the API server accepted, not in the operator's."""
    said = attempt_saves(records, uid, attempt)
    return bool(said) and max(said, key=lambda w: w.event.t).stop_reason in OWN_STOPS
