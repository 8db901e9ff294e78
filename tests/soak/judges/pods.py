"""Judge 3, the pod watch: one pod of a job at a time, and an attempt number never reused.

Rules:
- Never two pods of one job name non-terminal at the same time while both their nodes are
  Ready. Non-terminal: seen, not DELETED, phase neither Succeeded nor Failed (a pod being
  deleted still counts: its process may run). Pods of different uids of the same name count
  together: a re-created job must not start while the old one's pod still runs. A pod on a
  NotReady node is excused (a partitioned node's pod is declared Lost after its grace and
  replaced while the API still shows it); a pod not yet bound to a node is taken as on a
  Ready one (it can start any moment). Nodes are Ready until `nodes.jsonl` says otherwise.
- Never two pod uids with the same (job uid, attempt): an attempt number is used once.
- Per job uid, attempts are created in increasing order (a replacement gets a new number).

Cannot detect: overlap shorter than the watch's resolution or hidden by a watch gap (the
harness resumes its watch from the last resourceVersion, or writes DELETED for a pod gone
during a gap); a zombie process whose pod object is gone (force-deleted): that is the audit
judge's (its writes) and the ledger judge's (its items). Can wrongly accuse if the harness
records a DELETED late: the watch's own order is trusted (events are judged in file order).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.soak.records import NodeEvent, PodEvent, Records

from .verdict import Verdict, short, verdict

NAME = "pods"


@dataclass
class _Live:
    event: PodEvent
    since: float


def _node_ready(nodes: dict[str, bool], node: str | None) -> bool:
    return node is None or nodes.get(node, True)


def _describe(live: _Live, nodes: dict[str, bool]) -> str:
    e = live.event
    state = f"{e.phase}{', deleting' if e.deleting else ''}"
    ready = "Ready" if _node_ready(nodes, e.node) else "NotReady"
    return (
        f"{e.name} (uid {short(e.uid)}, job uid {short(e.job_uid)}, attempt {e.attempt}, "
        f"{state}, node {e.node} {ready})"
    )


def overlaps(records: Records, figures: dict[str, float]) -> list[str]:
    """Sweep the pod and node events in order, checking the jobs each event touches."""
    stream: list[tuple[float, int, PodEvent | NodeEvent]] = [
        (e.t, i, e) for i, e in enumerate(records.pods)
    ]
    stream += [(e.t, len(records.pods) + i, e) for i, e in enumerate(records.nodes)]
    stream.sort(key=lambda x: (x[0], x[1]))
    nodes: dict[str, bool] = {}
    live: dict[str, dict[str, _Live]] = {}  # job name -> pod uid -> state
    reported: set[frozenset[str]] = set()
    excused: set[frozenset[str]] = set()
    violations: list[str] = []
    for t, _, event in stream:
        if isinstance(event, NodeEvent):
            nodes[event.node] = event.ready
            touched = [
                job
                for job, pods in live.items()
                if any(p.event.node == event.node for p in pods.values())
            ]
        else:
            if not event.job:
                continue  # not a job's pod (a preemptor, say)
            pods = live.setdefault(event.job, {})
            if event.terminal:
                pods.pop(event.uid, None)
            else:
                since = pods[event.uid].since if event.uid in pods else t
                pods[event.uid] = _Live(event, since)
            touched = [event.job]
        for job in touched:
            pods_now = list(live.get(job, {}).values())
            for i, a in enumerate(pods_now):
                for b in pods_now[i + 1 :]:
                    pair = frozenset((a.event.uid, b.event.uid))
                    both = _node_ready(nodes, a.event.node) and _node_ready(nodes, b.event.node)
                    if not both:
                        excused.add(pair)
                    elif pair not in reported:
                        reported.add(pair)
                        violations.append(
                            f"two pods of {job} at {t:.3f}: {_describe(a, nodes)} since "
                            f"{a.since:.3f} and {_describe(b, nodes)} since {b.since:.3f}"
                        )
    figures["overlaps"] = len(reported)
    figures["overlaps_excused_not_ready"] = len(excused - reported)
    return violations


def attempts(records: Records, figures: dict[str, float]) -> list[str]:
    first_seen: dict[str, PodEvent] = {}
    for event in records.pods:
        if event.job_uid and event.attempt is not None and event.uid not in first_seen:
            first_seen[event.uid] = event
    violations: list[str] = []
    by_attempt: dict[tuple[str, int], PodEvent] = {}
    newest: dict[str, PodEvent] = {}
    for event in sorted(first_seen.values(), key=lambda e: e.t):
        uid, attempt = str(event.job_uid), int(event.attempt or 0)
        other = by_attempt.setdefault((uid, attempt), event)
        if other is not event:
            violations.append(
                f"attempt {attempt} of {event.job} (uid {short(uid)}) has two pods: "
                f"{other.name} (uid {short(other.uid)}, seen {other.t:.3f}) and "
                f"{event.name} (uid {short(event.uid)}, seen {event.t:.3f})"
            )
        last = newest.get(uid)
        if last is not None and attempt < (last.attempt or 0):
            violations.append(
                f"{event.job} (uid {short(uid)}): pod of attempt {attempt} created at "
                f"{event.t:.3f}, after attempt {last.attempt}'s at {last.t:.3f}"
            )
        if last is None or attempt > (last.attempt or 0):
            newest[uid] = event
    figures["pods"] = len(first_seen)
    return violations


def judge(records: Records) -> Verdict:
    figures: dict[str, float] = {"pod_events": len(records.pods), "node_events": len(records.nodes)}
    violations = overlaps(records, figures) + attempts(records, figures)
    if not records.pods:
        violations.append("the pod watch is empty: nothing could be checked")
    return verdict(NAME, violations, figures)
