"""What a soak run left in its folder, loaded into plain dataclasses for the judges, which
never talk to a cluster (a kept run folder can be judged again). Loading tolerates what a chaos
run does to its own records: a cut last line, a ledger line glued to the next (its writer was
killed mid-line), an unreadable line (counted in `Records.skipped`, never fatal).

The contract with the harness, beyond the dataclasses' fields:
- `faults.jsonl`: a fault that reached several pods (drain, partition, agent restart) is one
  line per pod, same `t`, `kind`, `node`; `attempt` is set whenever `reached_pod` is; a
  `restart`'s `detail` is the step (or `from-step=<step>`), its `attempt` the one it stopped.
- `ledger/<job>.csv`: `<job>,<what>,<attempt>,<pid>,<epoch>[,<job uid>]`; the optional uid
  makes attribution exact (else by time: the uid created last before the line).
- `jobs.json`: `{"jobs": [...]}`, one entry per uid, `steps` in order.
- `pods.jsonl`: no DELETED may be missed (resume the watch from its resourceVersion, or write
  DELETED for a pod gone after a relist); `nodes.jsonl` starts with every node's state.
- `audit*.log`, `metrics.txt` (the leader's, at the end), `operator*.log` (text or JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
# The named ledger lines; the others are item numbers.
WHAT = ("fetch", "notify")


@dataclass(frozen=True)
class Fault:
    t: float
    kind: str
    job: str | None = None
    pod: str | None = None
    attempt: int | None = None
    node: str | None = None
    reached_pod: bool = False
    graceful: bool = False
    detail: str = ""

    def said(self, key: str) -> str | None:
        """The value `detail` gives `key` (the harness writes `key=value` words), or None."""
        for word in self.detail.split():
            name, sep, value = word.partition("=")
            if sep and name == key:
                return value
        return None

    def seconds(self, key: str) -> float:
        """A duration `detail` gives `key`, in seconds (0 when it gives none)."""
        try:
            return float(self.said(key) or 0.0)
        except ValueError:
            return 0.0


@dataclass(frozen=True)
class LedgerLine:
    job: str
    what: str  # an item number, "fetch" or "notify"
    attempt: int
    pid: int
    t: float
    uid: str | None = None  # the optional 6th field (CONTINUABLE_JOB_UID)
    index: int = 0  # position in the file: the order of the writes

    @property
    def item(self) -> int | None:
        return int(self.what) if self.what.isdigit() else None


@dataclass(frozen=True)
class JobRecord:
    name: str
    uid: str
    items: int
    interval_seconds: float
    steps: tuple[str, ...]
    created: float
    final: dict[str, Any] | None = None

    @property
    def status(self) -> dict[str, Any]:
        return dict((self.final or {}).get("status") or {})

    @property
    def spec(self) -> dict[str, Any]:
        return dict((self.final or {}).get("spec") or {})


@dataclass(frozen=True)
class PodEvent:
    t: float
    type: str  # ADDED | MODIFIED | DELETED
    name: str
    uid: str
    job: str | None
    attempt: int | None
    job_uid: str | None
    phase: str | None
    node: str | None
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.type == "DELETED" or self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class NodeEvent:
    t: float
    node: str
    ready: bool


@dataclass(frozen=True)
class AuditEvent:
    t: float  # stageTimestamp: the response was complete (the write, if any, committed)
    received: float  # requestReceivedTimestamp
    verb: str
    user: str
    extra: dict[str, list[str]]
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    request: Any  # requestObject: a JSON patch (list of ops), a merge patch or an object
    response: Any  # responseObject
    # etcd's revision of the written object: one total order of all writes in one etcd.
    rv: int | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300


@dataclass
class Records:
    faults: list[Fault] = field(default_factory=list)
    ledger: dict[str, list[LedgerLine]] = field(default_factory=dict)
    jobs: list[JobRecord] = field(default_factory=list)
    pods: list[PodEvent] = field(default_factory=list)
    nodes: list[NodeEvent] = field(default_factory=list)
    audit: list[AuditEvent] = field(default_factory=list)
    metrics: str | None = None  # the Prometheus exposition; None: no metrics.txt
    operator_log: list[str] = field(default_factory=list)
    # Lines that could not be read, per file kind: reported, never fatal.
    skipped: dict[str, int] = field(default_factory=dict)
    # Derived lookups, computed once: the judges ask the same questions for every line.
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()`, once per key (records are not changed once loaded)."""
        value: T = self._memo[key] if key in self._memo else compute()
        self._memo[key] = value
        return value

    def skip(self, kind: str, lines: int = 1) -> None:
        if lines:
            self.skipped[kind] = self.skipped.get(kind, 0) + lines

    def names(self) -> list[str]:
        return self.memo("names", lambda: sorted({j.name for j in self.jobs}))

    def uids_of(self, name: str) -> list[JobRecord]:
        """Every uid a job name had, oldest first."""
        return self.memo(
            ("uids", name),
            lambda: sorted((j for j in self.jobs if j.name == name), key=lambda j: j.created),
        )

    def last(self, name: str) -> JobRecord:
        return self.uids_of(name)[-1]

    def by_uid(self, uid: str) -> JobRecord | None:
        return next((j for j in self.jobs if j.uid == uid), None)

    def uid_at(self, name: str, t: float) -> str | None:
        """The uid the name had at time t: the newest created at or before t (else the first)."""
        records = self.uids_of(name)
        if not records:
            return None
        before = [j for j in records if j.created <= t]
        return (before[-1] if before else records[0]).uid

    def fault_uid(self, fault: Fault) -> str | None:
        """The uid a fault hit: that of the pod it names, as the pod watch saw it at the time,
        else the uid the job's name had then."""
        if fault.job is None:
            return None
        if fault.pod is not None:
            seen = [p for p in self._pods_by("name", fault.pod) if p.t <= fault.t and p.job_uid]
            if seen:
                return seen[-1].job_uid
        return self.uid_at(fault.job, fault.t)

    def pods_of(self, job_uid: str) -> list[PodEvent]:
        """The watch events of the pods a job uid controls, in watch order."""
        return self._pods_by("job_uid", job_uid)

    def _pods_by(self, attribute: str, value: str) -> list[PodEvent]:
        def index() -> dict[str, list[PodEvent]]:
            found: dict[str, list[PodEvent]] = {}
            for event in self.pods:
                found.setdefault(str(getattr(event, attribute)), []).append(event)
            return found

        return self.memo(("pods_by", attribute), index).get(value, [])

    def line_uid(self, line: LedgerLine) -> str | None:
        return line.uid or self.uid_at(line.job, line.t)

    def window(self) -> tuple[float, float]:
        """The run's first and last recorded instants."""
        times = [j.created for j in self.jobs] + [f.t for f in self.faults]
        times += [p.t for p in self.pods] + [n.t for n in self.nodes] + [a.t for a in self.audit]
        times += [line.t for lines in self.ledger.values() for line in lines]
        return (min(times), max(times)) if times else (0.0, 0.0)


def load(run: Path) -> Records:
    records = Records()
    records.faults = [_fault(o) for o in _jsonl(run / "faults.jsonl", records, "faults")]
    for path in sorted((run / "ledger").glob("*.csv")):
        lines, bad = parse_ledger(path.read_text(errors="replace"), job=path.stem)
        records.ledger[path.stem] = lines
        records.skip("ledger", bad)
    if (run / "jobs.json").exists():
        records.jobs = [_job(o) for o in json.loads((run / "jobs.json").read_text())["jobs"]]
    records.pods = [_pod(o) for o in _jsonl(run / "pods.jsonl", records, "pods")]
    records.nodes = [
        NodeEvent(float(o["t"]), str(o["node"]), bool(o["ready"]))
        for o in _jsonl(run / "nodes.jsonl", records, "nodes")
    ]
    for path in sorted(run.glob("audit*.log")):
        for event in _jsonl(path, records, "audit"):
            parsed = parse_audit_event(event)
            if parsed is not None:
                records.audit.append(parsed)
    records.audit.sort(key=lambda a: a.t)
    if (run / "metrics.txt").exists():
        records.metrics = (run / "metrics.txt").read_text()
    for path in sorted(run.glob("operator*.log")):
        records.operator_log += path.read_text(errors="replace").splitlines()
    return records


def _jsonl(path: Path, records: Records, kind: str) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    # Line by line: the audit log of a long run is hundreds of megabytes.
    with path.open(errors="replace") as lines:
        yield from _objects(lines, records, kind)


def _objects(lines: Iterable[str], records: Records, kind: str) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            records.skip(kind)
            continue
        if isinstance(value, dict):
            yield value


def _number(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _fault(o: dict[str, Any]) -> Fault:
    return Fault(
        t=float(o["t"]),
        kind=str(o["kind"]),
        attempt=_number(o.get("attempt")),
        **{k: o.get(k) for k in ("job", "pod", "node")},
        reached_pod=bool(o.get("reached_pod", False)),
        graceful=bool(o.get("graceful", False)),
        detail=str(o.get("detail") or ""),
    )


def _job(o: dict[str, Any]) -> JobRecord:
    return JobRecord(
        name=str(o["name"]),
        uid=str(o["uid"]),
        items=int(o["items"]),
        interval_seconds=float(o["interval_seconds"]),
        steps=tuple(str(s) for s in o.get("steps") or ()),
        created=float(o["created"]),
        final=o.get("final"),
    )


def _pod(o: dict[str, Any]) -> PodEvent:
    return PodEvent(
        t=float(o["t"]),
        type=str(o["type"]),
        name=str(o["name"]),
        uid=str(o["uid"]),
        attempt=_number(o.get("attempt")),
        **{k: o.get(k) for k in ("job", "job_uid", "phase", "node")},
        deleting=bool(o.get("deleting", False)),
        finalizers=tuple(o.get("finalizers") or ()),
    )


def _ledger_fields(text: str, job: str, index: int) -> LedgerLine | None:
    parts = text.split(",")
    if len(parts) not in (5, 6) or parts[0] != job or not (parts[1].isdigit() or parts[1] in WHAT):
        return None
    try:
        return LedgerLine(
            job=job,
            what=parts[1],
            attempt=int(parts[2]),
            pid=int(parts[3]),
            t=float(parts[4]),
            uid=(parts[5] or None) if len(parts) == 6 else None,
            index=index,
        )
    except ValueError:
        return None


def parse_ledger(text: str, *, job: str) -> tuple[list[LedgerLine], int]:
    """The ledger's lines, and how many could not be read. A line cut short by a SIGKILL has
    no newline, so the next writer's line is glued to it: the last `<job>,` starts the one to
    keep (a job name cannot contain a comma)."""
    lines: list[LedgerLine] = []
    bad = 0
    raws = text.splitlines()
    if raws and not text.endswith("\n"):
        # Cut short by a SIGKILL: even if it parses, its epoch may have lost digits.
        raws.pop()
        bad += 1
    for raw in raws:
        if not raw.strip():
            continue
        parsed = _ledger_fields(raw, job, len(lines))
        if parsed is None:
            start = raw.rfind(f"{job},", 1)
            parsed = _ledger_fields(raw[start:], job, len(lines)) if start > 0 else None
            bad += 1
        if parsed is not None:
            lines.append(parsed)
    return lines, bad


def _stamp(value: Any) -> float:
    if not value:
        return 0.0
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


# Where the SDK writes its checkpoint (the whole document, in one `add`).
CHECKPOINT_PATH = "/status/checkpoint"
# What the judges read of a written object (the rest is dropped: a run's log is large).
_KEPT = ("uid", "resourceVersion", "ownerReferences", "labels")


def _slim_request(request: Any) -> Any:
    """A JSON patch keeps its ops, without the values of all but `test` ops and the attempt,
    and of a checkpoint only its `stopReason` (how the pod said it stopped); an object (a merge
    patch, a created pod) keeps its labels and `status.attempt`."""
    if isinstance(request, list):
        return [_slim_op(op) for op in request if isinstance(op, dict)]
    if not isinstance(request, dict):
        return None
    labels = (request.get("metadata") or {}).get("labels")
    status: dict[str, Any] = request.get("status") or {}
    slim: dict[str, Any] = {"metadata": {"labels": labels}} if labels else {}
    if "attempt" in status:
        slim["status"] = {"attempt": status["attempt"]}
    return slim


def _slim_op(op: dict[str, Any]) -> dict[str, Any]:
    slim = {k: v for k, v in op.items() if k != "value"}
    value = op.get("value")
    if op.get("op") == "test" or op.get("path") == "/status/attempt":
        slim["value"] = value
    elif op.get("path") == CHECKPOINT_PATH and isinstance(value, dict) and "stopReason" in value:
        slim["value"] = {"stopReason": value["stopReason"]}
    return slim


def parse_audit_event(event: dict[str, Any]) -> AuditEvent | None:
    """An audit Event, or None unless its stage is ResponseComplete (the one that says how
    the request ended)."""
    if event.get("stage") != "ResponseComplete":
        return None
    ref = event.get("objectRef") or {}
    user = event.get("user") or {}
    response = event.get("responseObject")
    metadata = (response.get("metadata") or {}) if isinstance(response, dict) else {}
    version = str(metadata.get("resourceVersion") or "")
    return AuditEvent(
        t=_stamp(event.get("stageTimestamp")),
        received=_stamp(event.get("requestReceivedTimestamp") or event.get("stageTimestamp")),
        verb=str(event.get("verb") or ""),
        user=str(user.get("username") or ""),
        extra={str(k): [str(x) for x in v] for k, v in (user.get("extra") or {}).items()},
        resource=str(ref.get("resource") or ""),
        subresource=str(ref.get("subresource") or ""),
        namespace=str(ref.get("namespace") or ""),
        name=str(ref.get("name") or ""),
        code=int((event.get("responseStatus") or {}).get("code") or 0),
        request=_slim_request(event.get("requestObject")),
        response={"metadata": {k: metadata[k] for k in _KEPT if k in metadata}},
        rv=int(version) if version.isdigit() else None,
    )
