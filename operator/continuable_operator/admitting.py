"""Kueue's word on a queued job (issue 25), for the planner: the job's Workload is created once,
a pod is launched only while the Workload is admitted (with what the admission adds to it),
an eviction stops the pod and gives the quota back once the pod has ended, and the Workload
hears the pod's readiness and the job's end. Pure functions over a `Draft`; the Workload's
state comes in `draft.queue` (None: the job is not Kueue's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import conditions as c
from . import queueing as q
from .actions import CreateWorkload, PatchWorkload, PatchWorkloadStatus
from .drafting import Draft


def ensure_workload(draft: Draft) -> None:
    """A queued job without its Workload gets one (kept for the job's life: a preempted job
    keeps its place in the queue)."""
    queue = draft.queue
    if queue is None or queue.workload is not None:
        return
    pod_spec = draft.job["spec"]["template"]["spec"]
    draft.act(CreateWorkload(q.workload_for(draft.job, pod_spec, queue.priority)))


def may_launch(draft: Draft) -> bool:
    """Whether the next attempt may start now by Kueue's word: always for a job that is not
    queued; for a queued one only while its Workload is admitted. A job that waits says so
    (phase Queued, a Queued condition in Kueue's words); the Workload's next change wakes it."""
    queue = draft.queue
    if queue is None:
        return True
    if queue.workload is not None and q.is_admitted(queue.workload):
        draft.clear(c.QUEUED, c.ADMITTED_BY_KUEUE, f"admitted from LocalQueue {queue.name}")
        return True
    message = f"waiting in LocalQueue {queue.name}: {q.waiting_reason(queue.workload)}"
    if not c.is_true(draft.status["conditions"], c.QUEUED):
        draft.emit("Normal", c.QUEUED, message)
    draft.condition(c.QUEUED, True, c.WAITING_FOR_ADMISSION, message)
    draft.status["phase"] = "Queued"
    return False


def admitted_pod(draft: Draft, pod: Mapping[str, Any]) -> dict[str, Any]:
    """The attempt's pod with what the admission adds (flavors' node labels and tolerations,
    the admission checks' updates)."""
    queue = draft.queue
    if queue is None or queue.workload is None:
        return dict(pod)
    return q.apply_changes(pod, q.pod_changes(queue.workload, queue.flavors))


def eviction(draft: Draft) -> tuple[str, str] | None:
    """Kueue's reason and message for evicting the job's Workload, while the pod must stop."""
    queue = draft.queue
    if queue is None or queue.workload is None:
        return None
    return q.eviction(queue.workload)


def no_pod_runs(draft: Draft) -> None:
    """No pod of the job runs: an evicted Workload's quota goes back to its queue (Kueue waits
    for this before the preemptor is admitted); an admitted one hears that its pod is not
    ready until the next attempt's runs (PodsReady, bounded by Kueue's recovery timeout)."""
    queue = draft.queue
    if queue is None or queue.workload is None:
        return
    if q.eviction(queue.workload) is not None:
        status = q.released(queue.workload, draft.stamp)
        name = q.workload_name(draft.job)
        draft.act(PatchWorkloadStatus(name, _version(queue.workload), status))
    elif draft.attempt > 0:
        report_ready(draft, False)


def report_ready(draft: Draft, ready: bool) -> None:
    """Tell the Workload whether the attempt's pod runs (PodsReady): without it Kueue evicts an
    admitted Workload once waitForPodsReady's timeout passes."""
    queue = draft.queue
    if queue is None or queue.workload is None or not q.holds_quota(queue.workload):
        return
    conditions = q.pods_ready(queue.workload, ready, draft.stamp)
    if conditions is not None:
        name = q.workload_name(draft.job)
        status = {"conditions": conditions}
        draft.act(PatchWorkloadStatus(name, _version(queue.workload), status))


def finish(draft: Draft) -> None:
    """The job has ended for good: its Workload is Finished, and Kueue frees its quota."""
    queue = draft.queue
    if queue is None or queue.workload is None or not draft.finished:
        return
    succeeded = draft.status.get("phase") == "Succeeded"
    message = "the job succeeded" if succeeded else "the job failed"
    conditions = q.finished(queue.workload, succeeded, message, draft.stamp)
    if conditions is not None:
        name = q.workload_name(draft.job)
        status = {"conditions": conditions}
        draft.act(PatchWorkloadStatus(name, _version(queue.workload), status))


def follow_suspend(draft: Draft) -> None:
    """spec.suspend is the Workload's spec.active, inverted: a suspended job gives its quota
    back (Kueue evicts the Workload as Deactivated), a resumed one queues again."""
    queue = draft.queue
    if queue is None or queue.workload is None:
        return
    active = not bool(draft.spec.get("suspend"))
    if bool((queue.workload.get("spec") or {}).get("active", True)) != active:
        draft.act(PatchWorkload(q.workload_name(draft.job), {"spec": {"active": active}}))


def _version(workload: Mapping[str, Any]) -> str | None:
    version = (workload.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None
