"""What a change the store takes (from a watch or an own write's answer) asks of the
reconciler: whether the job needs a reconcile, and how soon.

- a ContinuableJob created, or changed where the planner looks (its generation: the spec; its
  labels or annotations: a restart request; a deletion begun) or deleted: reconcile it now
  (a foreground deletion waits for its pods, which wait for their finalizers: the reconcile
  records what it can, releases the pods and, once the job is gone, forgets it);
- found by the first list at start-up: reconcile it now, except a finished one that only
  waits for its TTL (not being deleted, no restart asked for): its reconcile goes to the
  background queue a little later, so the running and pending jobs, and every pod that ends
  meanwhile, go first;
- a checkpoint-only change of a job's status (every interval, for every running job): no
  reconcile and no API call, only the metrics' `observe_job`;
- a job pod changed in a way that matters (`pod_matters`: phase, deletion, node, finalizers):
  reconcile its job.

Every reconcile runs on the reconciler's scheduler: neither an informer's thread nor a writer
waits for it. The reconciler never raises: it logs a failure and schedules its own retry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from continuable.names import KIND, RESTART_FROM_STEP_ANNOTATION

from .caching import WORKLOAD, job_of
from .classifying import is_terminal
from .drafting import FINISHED, has_finalizer
from .reconciling import Reconciler

Object = dict[str, Any]

# At start-up every job is found at once. A finished job needs nothing but its TTL, so it
# waits this long in the background queue: the running and pending jobs, whose pods may need a
# decision now, have the API rate limit to themselves for their first reconcile.
FINISHED_RESUME_DELAY_SECONDS = 10.0
# The annotations of kopf, which ran the operator before it had watches of its own: jobs made
# then still carry them, and a change in them is nobody's request.
KOPF_PREFIX = "kopf.continuable.dev/"


def _job_essence(job: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a job the planner acts on besides its status, which the operator writes and the
    SDK checkpoints into."""
    metadata = job.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return (
        metadata.get("generation"),
        metadata.get("deletionTimestamp"),
        metadata.get("labels"),
        {k: v for k, v in annotations.items() if not k.startswith(KOPF_PREFIX)},
    )


def job_matters(event: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a job's change needs a reconcile (a checkpoint-only status change does not)."""
    return event == "DELETED" or old is None or _job_essence(old) != _job_essence(new)


def _what_matters(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a pod the planner acts on: a change in anything else needs no reconcile."""
    metadata = pod.get("metadata") or {}
    return (
        (pod.get("status") or {}).get("phase"),
        metadata.get("deletionTimestamp"),
        (pod.get("spec") or {}).get("nodeName"),
        tuple(metadata.get("finalizers") or ()),
    )


def pod_matters(event: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a pod's event needs its job reconciled. A pod the first list finds needs one
    only when an end is waiting to be recorded or a deletion to be followed (the jobs' first
    list reconciles every unfinished job anyway)."""
    if event == "DELETED":
        return True
    if old is None and event == "LISTED":
        return has_finalizer(new) and (_deleting(new) or is_terminal(new))
    return old is None or _what_matters(old) != _what_matters(new)


def on_store_change(reconciler: Reconciler) -> Callable[[str, str, Object | None, Object], None]:
    """The store's listener: a job's or a pod's change that matters schedules the job's
    reconcile (the scheduler's workers run it)."""

    def changed(kind: str, event: str, old: Object | None, new: Object) -> None:
        metadata = new.get("metadata") or {}
        namespace = metadata.get("namespace")
        if not namespace:
            return
        if kind == KIND:
            reconciler.metrics.observe_job(new, event)
            if not job_matters(event, old, new):
                return
            if event == "LISTED" and old is None and _only_waits(new):
                reconciler.schedule(
                    namespace, metadata["name"], FINISHED_RESUME_DELAY_SECONDS, background=True
                )
            else:
                reconciler.schedule(namespace, metadata["name"], 0)
        elif kind == "Pod":
            job = job_of(new)
            if job and pod_matters(event, old, new):
                reconciler.schedule(namespace, job, 0)
        elif kind == WORKLOAD:
            # Kueue admitted, evicted or requeued the job (its Workload changes only then).
            job = job_of(new)
            if job:
                reconciler.schedule(namespace, job, 0)

    return changed


def _only_waits(job: Mapping[str, Any]) -> bool:
    """A finished job with nothing asked of it: not being deleted, no restart requested."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    finished = (job.get("status") or {}).get("phase") in FINISHED
    return finished and not _deleting(job) and RESTART_FROM_STEP_ANNOTATION not in annotations


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
