"""Kueue (issue 25): the Workload a queued ContinuableJob asks for, what Kueue's admission makes
of its pods, and the Workload status writes Kueue leaves to the job's controller. Pure
functions over plain objects.

A job with the label `kueue.x-k8s.io/queue-name` gets one Workload (kueue.x-k8s.io/v1beta2),
controlled by the job and kept across attempts, so a preempted job keeps its place. Kueue runs
no controller for an external framework's jobs: what its jobframework does for a batch/v1 Job
(start on admission, stop on eviction and then give the quota back, PodsReady, Finished) the
operator does for ours, with the condition types, reasons and messages Kueue's own code writes
(v0.19.2: pkg/controller/jobframework/reconciler.go, pkg/workload/workload.go).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from continuable.names import TEMPLATE_HASH_ANNOTATION

from . import conditions as c
from .ownership import owned_metadata
from .priorities import Priority

Object = dict[str, Any]

GROUP: Final = "kueue.x-k8s.io"
VERSION: Final = "v1beta2"
KIND: Final = "Workload"
PLURAL: Final = "workloads"
QUEUE_LABEL: Final = "kueue.x-k8s.io/queue-name"
JOB_UID_LABEL: Final = "kueue.x-k8s.io/job-uid"
# Kueue's label for a job's maximum execution time (seconds admitted, summed over admissions):
# past it Kueue deactivates the Workload.
MAX_EXEC_TIME_LABEL: Final = "kueue.x-k8s.io/max-exec-time-seconds"
POD_SET_LABEL: Final = "kueue.x-k8s.io/podset"
POD_SET: Final = "main"

# Workload condition types and the reasons this controller writes (Kueue's constants).
QUOTA_RESERVED: Final = "QuotaReserved"
ADMITTED: Final = "Admitted"
EVICTED: Final = "Evicted"
PODS_READY: Final = "PodsReady"
REQUEUED: Final = "Requeued"
FINISHED: Final = "Finished"
# Set by Kueue on a Workload it deactivates itself (a requeuing limit, the maximum execution
# time, a rejected admission check); the eviction that follows has reason DeactivatedDueTo<why>.
DEACTIVATION_TARGET: Final = "DeactivationTarget"
DEACTIVATED_DUE_TO: Final = "DeactivatedDueTo"
WAIT_FOR_START: Final = "WaitForStart"
WAIT_FOR_RECOVERY: Final = "WaitForRecovery"
STARTED: Final = "Started"
RECOVERED: Final = "Recovered"
# Evictions after which Kueue requeues the Workload at once; after the others (a PodsReady
# timeout, a deactivation, a stopped queue) Kueue itself decides when it is requeued.
REQUEUED_AT_ONCE: Final = frozenset({"Preempted", "NodeFailures"})


def queue_name(job: Mapping[str, Any]) -> str | None:
    """The LocalQueue a job asks for, or None: the job is not Kueue's."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    name = labels.get(QUEUE_LABEL)
    return str(name) if name else None


def workload_name(job: Mapping[str, Any]) -> str:
    """The job's Workload has the job's name (another kind, so no clash with the job itself)."""
    return str(job["metadata"]["name"])


@dataclass(frozen=True)
class Queue:
    """What the reconciler knows of a queued job's Workload, for the planner: the Workload
    (None: not created yet), the ResourceFlavors its admission names, and the priority its
    class resolves to (read only while the Workload is to be created)."""

    name: str
    workload: Mapping[str, Any] | None = None
    flavors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    priority: Priority | None = None
    boost: bool = False  # --kueue-priority-boost
    # Why the job's priority class could not be resolved (it does not exist): no Workload is
    # made until it does.
    unresolved: str | None = None


def max_execution_seconds(job: Mapping[str, Any]) -> int | None:
    """The job's maximum execution time from Kueue's label, None without the label; ValueError,
    naming the label, for a value that is not a positive whole number of seconds."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    raw = labels.get(MAX_EXEC_TIME_LABEL)
    if raw is None:
        return None
    text = str(raw).strip()
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(
            f"metadata.labels[{MAX_EXEC_TIME_LABEL}]: expected a positive whole number of "
            f"seconds, got {str(raw)!r}"
        )
    return int(text)


def workload_for(
    job: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    priority: Priority | None,
    template: str | None = None,
) -> Object:
    """The Workload of a queued job: one pod set of one pod, the pod spec its attempts run;
    `template`: the hash of the job's pod template it was made from (a change of the template
    makes the pod set follow it). A job with an invalid max-exec-time label raises ValueError
    (see `max_execution_seconds`)."""
    metadata = job["metadata"]
    spec: Object = {
        "queueName": queue_name(job),
        "active": not bool((job.get("spec") or {}).get("suspend")),
        "podSets": [{"name": POD_SET, "count": 1, "template": {"spec": dict(pod_spec)}}],
    }
    seconds = max_execution_seconds(job)
    if seconds is not None:
        spec["maximumExecutionTimeSeconds"] = seconds
    if priority is not None:
        spec["priorityClassRef"] = {
            "group": priority.group,
            "kind": priority.kind,
            "name": priority.name,
        }
        spec["priority"] = priority.value
    owned = owned_metadata(job, workload_name(job))
    owned["labels"][JOB_UID_LABEL] = metadata["uid"]
    if template is not None:
        owned["annotations"] = {TEMPLATE_HASH_ANNOTATION: template}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": owned, "spec": spec}


def _conditions(workload: Mapping[str, Any]) -> list[c.Condition]:
    return list((workload.get("status") or {}).get("conditions") or [])


def is_admitted(workload: Mapping[str, Any]) -> bool:
    """Admitted and not evicted or finished since: a pod may run."""
    found = _conditions(workload)
    return (
        c.is_true(found, ADMITTED)
        and not c.is_true(found, EVICTED)
        and not c.is_true(found, FINISHED)
    )


def is_finished(workload: Mapping[str, Any]) -> bool:
    """Finished: Kueue is done with it (its quota freed) and never admits it again."""
    return c.is_true(_conditions(workload), FINISHED)


def deactivation(workload: Mapping[str, Any]) -> tuple[str, str] | None:
    """(why, message) when Kueue has deactivated the Workload itself, or is about to: a
    DeactivationTarget, or an eviction of reason DeactivatedDueTo<why>. A deactivation asked
    for by `spec.active: false` (the job's suspend, or a person) is not one."""
    found = _conditions(workload)
    target = c.find(found, DEACTIVATION_TARGET)
    if target is not None and target.get("status") == "True":
        return str(target.get("reason") or "Deactivated"), str(target.get("message") or "")
    evicted = c.find(found, EVICTED)
    reason = str((evicted or {}).get("reason") or "")
    if evicted is None or evicted.get("status") != "True":
        return None
    if not reason.startswith(DEACTIVATED_DUE_TO):
        return None
    return reason[len(DEACTIVATED_DUE_TO) :], str(evicted.get("message") or "")


def holds_quota(workload: Mapping[str, Any]) -> bool:
    return c.is_true(_conditions(workload), QUOTA_RESERVED)


def eviction(workload: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of the Workload's eviction while it still holds its quota: Kueue has
    asked for the pod to stop, and the quota goes back once it has."""
    found = c.find(_conditions(workload), EVICTED)
    if found is None or found.get("status") != "True" or not holds_quota(workload):
        return None
    return str(found.get("reason") or "Evicted"), str(found.get("message") or "")


def waiting_reason(workload: Mapping[str, Any] | None) -> str:
    """Why a queued job does not run yet, in Kueue's words where it gave some."""
    if workload is None:
        return "its Workload is being created"
    if is_finished(workload):
        return "its Workload has finished; a new one is being made"
    evicted = eviction(workload)
    if evicted is not None:
        return f"evicted ({evicted[0]}: {evicted[1]}); waiting to be admitted again"
    found = c.find(_conditions(workload), QUOTA_RESERVED)
    if found is not None and found.get("status") == "False" and found.get("message"):
        return str(found["message"])
    if holds_quota(workload):
        return "quota is reserved; waiting for the admission checks"
    return "waiting for quota"


@dataclass(frozen=True)
class PodChanges:
    """What an admission adds to the attempt's pod: its flavors' node labels and tolerations,
    the admission checks' updates, and Kueue's pod set label."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Object] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def flavors_of(workload: Mapping[str, Any]) -> list[str]:
    """The ResourceFlavors the admission assigned to the job's pod set, each once."""
    admission = (workload.get("status") or {}).get("admission") or {}
    names: list[str] = []
    for assignment in admission.get("podSetAssignments") or []:
        if assignment.get("name") == POD_SET:
            for flavor in (assignment.get("flavors") or {}).values():
                if flavor not in names:
                    names.append(str(flavor))
    return names


def pod_changes(
    workload: Mapping[str, Any], flavors: Mapping[str, Mapping[str, Any]]
) -> PodChanges:
    """The admission applied as Kueue applies it to a batch/v1 Job's pods (podset.go, then
    every admission check's podSetUpdates for the pod set). `flavors`: ResourceFlavor objects
    by name; a flavor missing there adds nothing (Kueue admits only with flavors it has)."""
    changes = PodChanges(labels={POD_SET_LABEL: POD_SET})
    for name in flavors_of(workload):
        spec = (flavors.get(name) or {}).get("spec") or {}
        changes.node_selector.update(
            {str(k): str(v) for k, v in (spec.get("nodeLabels") or {}).items()}
        )
        changes.tolerations.extend(dict(t) for t in spec.get("tolerations") or [])
    for check in (workload.get("status") or {}).get("admissionChecks") or []:
        for update in check.get("podSetUpdates") or []:
            if update.get("name") != POD_SET:
                continue
            changes.node_selector.update(update.get("nodeSelector") or {})
            changes.tolerations.extend(dict(t) for t in update.get("tolerations") or [])
            changes.labels.update(update.get("labels") or {})
            changes.annotations.update(update.get("annotations") or {})
    return changes


def apply_changes(pod: Mapping[str, Any], changes: PodChanges) -> Object:
    """`pod` with the admission's changes added (a template's own keys are kept where the
    admission names the same one: Kueue refuses to start a job whose keys conflict, and the
    template is what the person wrote)."""
    metadata = dict(pod.get("metadata") or {})
    spec = dict(pod.get("spec") or {})
    metadata["labels"] = {**changes.labels, **(metadata.get("labels") or {})}
    if changes.annotations:
        metadata["annotations"] = {**changes.annotations, **(metadata.get("annotations") or {})}
    if changes.node_selector:
        spec["nodeSelector"] = {**changes.node_selector, **(spec.get("nodeSelector") or {})}
    if changes.tolerations:
        existing = list(spec.get("tolerations") or [])
        spec["tolerations"] = existing + [t for t in changes.tolerations if t not in existing]
    return {**pod, "metadata": metadata, "spec": spec}


def _set(
    conditions: Sequence[c.Condition],
    kind: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[c.Condition]:
    return c.with_condition(
        conditions, kind, status, reason, message, generation=generation, now=now
    )


def released(workload: Mapping[str, Any], now: str, cause: tuple[str, str] | None = None) -> Object:
    """The status write that gives the Workload's quota back, once its pod is gone (as Kueue's
    jobframework writes it after an eviction): Requeued (after an eviction True only for a
    preemption or node failures, Kueue requeues the others itself after its backoff or a
    reactivation; True for a `cause` of ours, a template change), QuotaReserved False, no
    admission, Admitted False, PodsReady back to waiting for a start."""
    generation = (workload.get("metadata") or {}).get("generation")
    reason, message = cause or eviction(workload) or ("Evicted", "")
    requeued = cause is not None or reason in REQUEUED_AT_ONCE
    found = _conditions(workload)
    found = _set(found, REQUEUED, requeued, reason, message, now, generation)
    found = _set(found, QUOTA_RESERVED, False, "Pending", message, now, generation)
    found = _set(
        found, ADMITTED, False, "NoReservation", "The workload has no reservation", now, generation
    )
    found = _set(
        found,
        PODS_READY,
        False,
        WAIT_FOR_START,
        "Not all pods are ready or succeeded",
        now,
        generation,
    )
    return {"admission": None, "conditions": found}


def pods_ready(workload: Mapping[str, Any], ready: bool, now: str) -> list[c.Condition] | None:
    """The Workload's conditions with PodsReady as Kueue's jobframework computes it for one pod
    (generatePodsReadyCondition), or None when it is already so: without PodsReady=True within
    waitForPodsReady's timeout after admission, Kueue evicts the Workload."""
    found = _conditions(workload)
    previous = c.find(found, PODS_READY)
    before = (previous or {}).get("reason")
    if ready:
        reason = RECOVERED if before in (WAIT_FOR_RECOVERY, RECOVERED) else STARTED
        status, message = True, "All pods reached readiness and the workload is running"
    elif previous is not None and (previous.get("status") == "True" or before == WAIT_FOR_RECOVERY):
        reason, status = WAIT_FOR_RECOVERY, False
        message = "At least one pod has failed, waiting for recovery"
    else:
        reason, status, message = WAIT_FOR_START, False, "Not all pods are ready or succeeded"
    value = "True" if status else "False"
    if previous is not None and previous.get("status") == value and before == reason:
        return None
    generation = (workload.get("metadata") or {}).get("generation")
    return _set(found, PODS_READY, status, reason, message, now, generation)


def finished(
    workload: Mapping[str, Any], succeeded: bool, message: str, now: str
) -> list[c.Condition] | None:
    """The Workload's conditions with Finished=True (Succeeded or Failed): Kueue frees its quota.
    None when it is finished already."""
    found = _conditions(workload)
    if c.is_true(found, FINISHED):
        return None
    generation = (workload.get("metadata") or {}).get("generation")
    reason = "Succeeded" if succeeded else "Failed"
    return _set(found, FINISHED, True, reason, message, now, generation)


def template_of(workload: Mapping[str, Any]) -> str | None:
    """The hash of the pod template the Workload's pod set was made from (None: not said)."""
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    found = annotations.get(TEMPLATE_HASH_ANNOTATION)
    return str(found) if found else None
