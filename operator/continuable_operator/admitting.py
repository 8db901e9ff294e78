"""Kueue's word on a queued job (issue 25), for the planner: the job's Workload is created once,
a pod is launched only while the Workload is admitted (with what the admission adds to it),
an eviction stops the pod and gives the quota back once the pod has ended, and the Workload
hears the pod's readiness and the job's end. Pure functions over a `Draft`; the Workload's
state comes in `draft.queue` (None: the job is not Kueue's).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import conditions as c
from . import priorities
from . import queueing as q
from .actions import CreateWorkload, DeleteWorkload, PatchWorkload, PatchWorkloadStatus
from .drafting import Draft, checkpoint_interval, parse_time
from .ending import any_pod_runs
from .launching import template_hash

# A job whose priority class does not exist looks for it again this often (classes are not
# watched: they are cluster-scoped, and rarely change).
PRIORITY_RETRY_SECONDS = 10.0


def ensure_workload(draft: Draft) -> None:
    """A queued job without its Workload gets one (kept for the job's life: a preempted job
    keeps its place in the queue). A finished job gets none (nothing is left to queue); one
    restarted after it finished gets a new one, the finished one deleted first (Kueue never
    admits a finished Workload again). A job with an invalid Kueue label fails, naming it."""
    queue = draft.queue
    if queue is None or draft.finished:
        return
    workload = queue.workload
    if workload is not None:
        if q.is_finished(workload):
            uid = str(workload["metadata"]["uid"])
            draft.act(DeleteWorkload(q.workload_name(draft.job), uid))
        return
    if queue.unresolved is not None:
        draft.requeue(PRIORITY_RETRY_SECONDS)
        return
    template = draft.spec["template"]
    try:
        made = q.workload_for(draft.job, template["spec"], queue.priority, template_hash(template))
    except ValueError as err:
        draft.fail(c.INVALID_KUEUE_LABEL, str(err))
        return
    draft.act(CreateWorkload(made))


def may_launch(draft: Draft) -> bool:
    """Whether the next attempt may start now by Kueue's word: always for a job that is not
    queued; for a queued one only while its Workload is admitted. A job that waits says so
    (phase Queued, a Queued condition in Kueue's words); the Workload's next change wakes it."""
    queue = draft.queue
    if queue is None:
        return True
    if queue.workload is not None and q.is_admitted(queue.workload) and not _stale(draft):
        draft.clear(c.QUEUED, c.ADMITTED_BY_KUEUE, f"admitted from LocalQueue {queue.name}")
        return True
    if queue.unresolved is not None:
        reason, message = c.PRIORITY_CLASS_NOT_FOUND, queue.unresolved
    else:
        reason = c.WAITING_FOR_ADMISSION
        message = f"waiting in LocalQueue {queue.name}: {q.waiting_reason(queue.workload)}"
    before = c.find(draft.status["conditions"], c.QUEUED) or {}
    if before.get("status") != "True" or before.get("reason") != reason:
        if reason == c.WAITING_FOR_ADMISSION:
            draft.emit("Normal", c.QUEUED, message)
        else:
            draft.emit("Warning", reason, message)
    draft.condition(c.QUEUED, True, reason, message)
    draft.status["phase"] = "Queued"
    return False


def deactivation(draft: Draft) -> tuple[str, str] | None:
    """(reason, message) to fail the job with when Kueue has deactivated its Workload itself
    (its requeuing limit, its maximum execution time, a rejected admission check): Kueue will
    not admit it again, so the job ends here rather than waiting forever."""
    queue = draft.queue
    if queue is None or queue.workload is None:
        return None
    found = q.deactivation(queue.workload)
    if found is None:
        return None
    why, message = found
    return c.DEACTIVATED_BY_KUEUE, f"Kueue deactivated the job's Workload ({why}): {message}"


def unadmitted(draft: Draft) -> str | None:
    """Why the running pod of a queued job must stop although Kueue evicted nothing: its
    Workload is gone (deleted by hand) or no longer admitted; None while it may run. A pod
    runs only on quota Kueue has reserved for it."""
    queue = draft.queue
    if queue is None:
        return None
    if queue.workload is None:
        return "the job's Workload is gone; the job queues again with a new one"
    if q.is_admitted(queue.workload) or q.eviction(queue.workload) is not None:
        return None
    return "the job's Workload is no longer admitted; the job waits to be admitted again"


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
    name = q.workload_name(draft.job)
    if q.eviction(queue.workload) is not None:
        status = q.released(queue.workload, draft.stamp)
        draft.act(PatchWorkloadStatus(name, _version(queue.workload), status))
    elif _stale(draft):
        follow_template(draft, queue.workload)
    elif draft.attempt > 0:
        report_ready(draft, False)


def _stale(draft: Draft) -> bool:
    """Whether the Workload's pod set was made from another pod template than the job's now (a
    Workload that does not say which is taken as current)."""
    queue = draft.queue
    if queue is None or queue.workload is None:
        return False
    made_from = q.template_of(queue.workload)
    return made_from is not None and made_from != template_hash(draft.spec["template"])


def follow_template(draft: Draft, workload: Mapping[str, Any]) -> None:
    """The pod set follows a changed pod template once no pod runs: Kueue's quota goes back
    first (a pod set cannot change while quota is reserved), then the Workload takes the new
    template and queues again, for the flavors and quota the new pod needs."""
    name = q.workload_name(draft.job)
    if q.holds_quota(workload):
        cause = (c.TEMPLATE_CHANGED, "the job's pod template changed; its pod set follows")
        status = q.released(workload, draft.stamp, cause)
        draft.act(PatchWorkloadStatus(name, _version(workload), status))
    template = draft.spec["template"]
    fresh = q.workload_for(draft.job, template["spec"], None, template_hash(template))
    patch = {
        "metadata": {"annotations": fresh["metadata"]["annotations"]},
        "spec": {"podSets": fresh["spec"]["podSets"]},
    }
    draft.act(PatchWorkload(name, patch))


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
    if any_pod_runs(draft):
        return  # the quota is the pod's until it has stopped; its end brings a reconcile
    succeeded = draft.status.get("phase") == "Succeeded"
    message = "the job succeeded" if succeeded else "the job failed"
    conditions = q.finished(queue.workload, succeeded, message, draft.stamp)
    if conditions is not None:
        name = q.workload_name(draft.job)
        status = {"conditions": conditions}
        draft.act(PatchWorkloadStatus(name, _version(queue.workload), status))


def follow_suspend(draft: Draft) -> None:
    """spec.suspend is the Workload's spec.active, inverted: a suspended job gives its quota
    back (Kueue evicts the Workload as Deactivated), a resumed one queues again. Not once the
    job or its Workload has finished, nor against Kueue's own deactivation (which fails the
    job: activating the Workload again would undo Kueue's limit)."""
    queue = draft.queue
    if queue is None or queue.workload is None or draft.finished:
        return
    if q.is_finished(queue.workload) or q.deactivation(queue.workload) is not None:
        return
    active = not bool(draft.spec.get("suspend"))
    if bool((queue.workload.get("spec") or {}).get("active", True)) != active:
        draft.act(PatchWorkload(q.workload_name(draft.job), {"spec": {"active": active}}))


def _version(workload: Mapping[str, Any]) -> str | None:
    version = (workload.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def boost_priority(draft: Draft) -> None:
    """--kueue-priority-boost: the Workload's priority boost follows the age of the work a
    preemption would lose (`priorities.boost`, `_unsaved_since`), written only when it changes.
    The reconcile looks again once the age reaches the next step, and every interval while a
    boost is set (the operator hears of no checkpoint by itself: a save brings the boost back
    to 0 there)."""
    queue = draft.queue
    if queue is None or not queue.boost or queue.workload is None:
        return
    if not q.is_admitted(queue.workload) or draft.status.get("phase") != "Running":
        return
    age = max((draft.now - _unsaved_since(draft)).total_seconds(), 0.0)
    interval = checkpoint_interval(draft.spec)
    wanted = priorities.boost(age, interval)
    if wanted != priorities.boost_of(queue.workload):
        patch = {"metadata": {"annotations": {priorities.BOOST_ANNOTATION: str(wanted)}}}
        draft.act(PatchWorkload(q.workload_name(draft.job), patch))
    draft.requeue(interval if wanted else max(2 * interval - age, 0.0) + 0.1)


def _unsaved_since(draft: Draft) -> datetime:
    """When the work a graceful stop would lose began: the last save, while the current step
    keeps a cursor (it resumes there; the SDK saves it every interval); the step's start in
    this attempt, while it keeps none (it starts over, however often its checkpoint is
    written for its duration)."""
    checkpoint = draft.checkpoint
    record = draft.record(draft.attempt) or {}
    attempt_began = parse_time(record.get("startTime")) or draft.now
    saved = parse_time(checkpoint.get("updatedAt")) or attempt_began
    name = checkpoint.get("currentStep")
    steps = checkpoint.get("steps") or []
    current = next((s for s in steps if s.get("name") == name), None)
    if current is None or current.get("state") == "Completed":
        return saved
    if current.get("cursor") is not None:
        return saved
    return max(parse_time(current.get("startedAt")) or attempt_began, attempt_began)
