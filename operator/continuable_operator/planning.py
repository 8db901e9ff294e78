"""What to do next for one ContinuableJob: a pure function of the job, its pods and the time.

`plan()` reads the job as the API server returns it and the pods labelled with its name, and
returns ordered actions for `reconciling.py` to carry out. The order is the safety argument:
  - an attempt's outcome is written to status before its pod's tracking finalizer is removed,
    so how a pod ended is never lost (invariant 7);
  - `status.attempt` is raised (fenced on its old value) before the next pod is created, and a
    pod is created only once the previous one is terminal or gone, so two pods of one job never
    run at once and a zombie's checkpoint writes are refused (invariant 3); a pod that vanished
    without an outcome makes its attempt `Lost` and the next pod gets a new attempt number;
  - only pods the job's UID controls are its attempts; a pod of the same name held by anything
    else is a name conflict, never adopted (a job deleted and created again is another job);
  - interruptions relaunch at once and count against maxResumptions only; failures count
    against backoffLimit and wait out an exponential backoff (invariant 5).

The decisions live in one module each: `ending.py` (how an attempt ended), `pausing.py`
(suspend, deadline, TTL), `restarting.py` (restart requests), `relaunching.py` (the next
attempt); this module orders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from continuable.names import TEMPLATE_HASH_ANNOTATION, pod_name

from . import admitting, pausing, relaunching, restarting
from . import conditions as c
from .actions import ClearRestartRequest, DeletePod, Plan
from .classifying import is_terminal
from .drafting import Draft, has_finalizer, release
from .ending import (
    close_attempt,
    is_gone,
    lost_in,
    record_ending,
    record_lost,
    release_when_fenced,
    settle_finished,
)
from .launching import template_hash
from .queueing import Queue

# A job being deleted whose pods have not ended yet looks again this often.
DELETION_POLL_SECONDS = 5.0
# A name conflict is looked at again this often: the holder may go (garbage collection).
NAME_CONFLICT_RETRY_SECONDS = relaunching.POD_CREATE_RETRY_SECONDS


def plan_orphans(pods: Sequence[Mapping[str, Any]]) -> Plan:
    """The job is gone: release its pods so garbage collection can finish them."""
    return Plan([release(p) for p in pods if has_finalizer(p)])


def plan(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    shared_with: str | None = None,
    queue: Queue | None = None,
) -> Plan:
    """`shared_with`: another job using the service account the template names (see
    `relaunching.shared_with`), which keeps this one from launching. `queue`: the job's Kueue
    Workload and what it needs, for a job Kueue queues (see `admitting`)."""
    draft = Draft(job, pods, now, queue)
    _release_foreign(draft)
    if job["metadata"].get("deletionTimestamp"):
        _while_deleted(draft)
    else:
        admitting.ensure_workload(draft)
        admitting.follow_suspend(draft)
        _run(draft, shared_with)
        pausing.requeue_at_deadline(draft)
        relaunching.unbind_when_finished(draft)
        admitting.finish(draft)
    return draft.done()


def plan_create_failure(job: Mapping[str, Any], status: int, message: str, now: datetime) -> Plan:
    """The API server refused the attempt's pod: say why in a condition, and either retry later
    or, for a template it calls invalid (which only a spec change can fix), fail the job."""
    draft = Draft(job, [], now)
    if "exceeded quota" in message:
        reason = "ExceededQuota"
    else:
        reason = {403: "Forbidden", 422: "Invalid", 400: "BadRequest"}.get(status, "Refused")
    draft.condition(c.POD_CREATE_FAILED, True, reason, message)
    if status in (400, 422):
        draft.fail(c.INVALID_POD_TEMPLATE, f"the API server refused the pod: {message}")
    else:
        draft.emit("Warning", c.POD_CREATE_FAILED, f"creating the pod failed: {message}")
        draft.requeue(relaunching.POD_CREATE_RETRY_SECONDS)
    return draft.done()


def plan_name_conflict(
    job: Mapping[str, Any], kind: str, name: str, holder: str, now: datetime
) -> Plan:
    """An object the job needs has its name taken by something the job does not control: the
    job waits (Pending) and says so; the object is never adopted or granted to the job's pod."""
    draft = Draft(job, [], now)
    message = (
        f"{kind} {name} exists and is not this job's (controlled by {holder}); the job waits "
        "until the name is free: delete that object, or rename the job"
    )
    draft.emit("Warning", c.NAME_CONFLICT, message)
    draft.condition(c.NAME_CONFLICT, True, c.NAME_TAKEN, message)
    if not draft.finished:
        draft.status["phase"] = "Pending"
    draft.requeue(NAME_CONFLICT_RETRY_SECONDS)
    return draft.done()


def _run(draft: Draft, shared: str | None) -> None:
    attempt = draft.attempt
    _tidy_older_pods(draft, attempt)
    pod = draft.pods.get(attempt)
    request = restarting.request_of(draft)
    if request is not None and restarting.name_if_unnamed(draft, request):
        return
    if request is not None and restarting.acted_on(draft, request):
        draft.act(ClearRestartRequest(request.nonce))
        request = None
    if request is not None and restarting.refuse_unknown(draft, request):
        request = None
    live = pod is not None and not is_terminal(pod) and not is_gone(pod, draft)
    if draft.finished and (request is None or live):
        settle_finished(draft, attempt)
        draft.flush()
        pausing.expire_when_due(draft)
        return
    cut = None if draft.finished else _cut_short(draft)
    if cut is not None:
        draft.fail(*cut)
        settle_finished(draft, attempt, cut)
        return
    if pod is not None and live:
        _stop_if_asked(draft, pod, request)
        _observe_live(draft, pod)
        return
    if pod is not None:
        if draft.is_open(attempt):
            _record_end(draft, attempt, pod)
        # Released once the end is written: with the next attempt's launch when there is one.
        release_when_fenced(draft, attempt, pod)
    elif attempt > 0 and draft.is_open(attempt) and request is None:
        if relaunching.is_blocked(draft):
            if pausing.is_suspended(draft):
                pausing.suspend(draft)
            else:
                relaunching.create_current_pod(draft)
            return
        record_lost(
            draft,
            attempt,
            pod_name(draft.name, attempt),
            "the pod is gone without a recorded end (force-deleted, or its node lost)",
        )
    admitting.no_pod_runs(draft)
    follow = restarting.restart(draft, request) if request is not None else []
    if draft.finished:
        # Ended by this plan: the TTL counts from now, and no later event need come to start it.
        pausing.expire_when_due(draft)
        return
    if pausing.is_suspended(draft):
        pausing.suspend(draft)
        draft.flush()
        for action in follow:
            draft.act(action)
        return
    if request is not None:
        relaunching.launch(draft, shared, follow)  # a person asked: no backoff to wait out
    else:
        relaunching.after_ending(draft, shared)


def _cut_short(draft: Draft) -> tuple[str, str] | None:
    """(reason, message) when the job ends before its steps do: its active deadline has
    passed, or Kueue deactivated its Workload (it will not be admitted again)."""
    if pausing.past_deadline(draft):
        return c.DEADLINE_EXCEEDED, pausing.deadline_message(draft)
    return admitting.deactivation(draft)


def _record_end(draft: Draft, attempt: int, pod: Mapping[str, Any]) -> None:
    """A pod on a node that never confirmed its deletion is Lost; any other ended normally."""
    if is_gone(pod, draft) and (pod.get("spec") or {}).get("nodeName"):
        message = "the pod's node never confirmed its end; its process may still run, fenced out"
        record_lost(draft, attempt, str(pod["metadata"]["name"]), message)
    else:
        record_ending(draft, attempt, pod)


def _while_deleted(draft: Draft) -> None:
    """The job is being deleted (a foreground deletion waits for its pods): stop the pods that
    still run, record how the current attempt ended where it can, and release every pod so
    garbage collection can finish."""
    released = []
    for attempt, pod in draft.pods.items():
        if is_terminal(pod) or is_gone(pod, draft):
            if attempt == draft.attempt and draft.is_open(attempt):
                close_attempt(draft, attempt, pod)
            if has_finalizer(pod):
                released.append(release(pod))
            continue
        if not pod["metadata"].get("deletionTimestamp"):
            name = str(pod["metadata"]["name"])
            why = (c.JOB_DELETED, "the job is being deleted")
            draft.act(DeletePod(name, str(pod["metadata"]["uid"]), why))
        draft.requeue(lost_in(pod, draft) or DELETION_POLL_SECONDS)
    draft.flush()
    for action in released:
        draft.act(action)


def _release_foreign(draft: Draft) -> None:
    """Pods with our finalizer that this job does not control belong to a deleted job of the
    same name: nothing is left to record for them, so they are released to garbage collection
    (never adopted: their process is fenced out by the job's UID)."""
    for pod in draft.foreign:
        if has_finalizer(pod):
            draft.act(release(pod))


def _tidy_older_pods(draft: Draft, attempt: int) -> None:
    for number, pod in draft.pods.items():
        if number == attempt:
            continue
        if is_terminal(pod) or is_gone(pod, draft):
            release_when_fenced(draft, number or 0, pod)
        elif not pod["metadata"].get("deletionTimestamp"):
            why = (c.SUPERSEDED, f"attempt {attempt} has replaced attempt {number}")
            draft.act(DeletePod(str(pod["metadata"]["name"]), str(pod["metadata"]["uid"]), why))


def _stop_if_asked(
    draft: Draft, pod: Mapping[str, Any], request: restarting.Request | None
) -> None:
    """Stop a running pod gracefully when the spec or a restart asks for it; the stamp says
    why. A pod already being deleted is waited for, up to the time it counts as lost."""
    waiting = lost_in(pod, draft)
    if waiting is not None:
        draft.requeue(waiting)
        return
    name = str(pod["metadata"]["name"])
    why: tuple[str, str] | None = None
    if pausing.is_suspended(draft):
        why = (c.SUSPENDED_BY_USER, "the job was suspended (spec.suspend)")
    elif request is not None:
        why = (c.RESTART_REQUESTED, f"a restart from step {request.step} was requested")
    elif (evicted := admitting.eviction(draft)) is not None:
        why = (c.EVICTED_BY_KUEUE, f"Kueue evicted the job's Workload ({evicted[0]}): {evicted[1]}")
    elif (unadmitted := admitting.unadmitted(draft)) is not None:
        why = (c.NOT_ADMITTED_BY_KUEUE, unadmitted)
    elif _template_changed(draft, pod):
        why = (c.TEMPLATE_CHANGED, "the pod template changed; resuming on the new one")
    if why is not None:
        draft.act(DeletePod(name, str(pod["metadata"]["uid"]), why))
        draft.emit("Normal", why[0], f"stopping pod {name}: {why[1]}")


def _template_changed(draft: Draft, pod: Mapping[str, Any]) -> bool:
    if draft.spec.get("restartPolicyOnTemplateChange", "Resume") != "Resume":
        return False
    annotations = pod["metadata"].get("annotations") or {}
    running = annotations.get(TEMPLATE_HASH_ANNOTATION)
    return running is not None and running != template_hash(draft.spec["template"])


def _observe_live(draft: Draft, pod: Mapping[str, Any]) -> None:
    status = draft.status
    name = pod["metadata"]["name"]
    running = (pod.get("status") or {}).get("phase") == "Running"
    deleting = bool(pod["metadata"].get("deletionTimestamp"))
    if running and not deleting:
        if status.get("phase") != "Running":
            node = (pod.get("spec") or {}).get("nodeName")
            draft.emit("Normal", "Running", f"pod {name} runs on {node}")
        status["phase"] = "Running"
        draft.condition(c.RUNNING, True, c.POD_RUNNING, f"pod {name} is running")
        admitting.report_ready(draft, True)
        admitting.boost_priority(draft)
        for kind in (c.INTERRUPTED, c.SUSPENDED):
            draft.clear(kind, c.RESUMED, "a new attempt is running")
    elif not running:
        status["phase"] = "Pending"
        draft.condition(c.RUNNING, False, c.POD_PENDING, f"pod {name} is pending")
    elif relaunching.is_creating(draft):
        # Seen, if only while being deleted: should it vanish, its attempt is Lost.
        draft.condition(c.RUNNING, False, c.POD_DELETED, f"pod {name} is being deleted")
    draft.clear(c.POD_CREATE_FAILED, c.POD_CREATED, "the pod was created")
    draft.clear(c.NAME_CONFLICT, c.NAME_FREE, "the pod was created")
