"""The kopf handlers: they only turn kopf's events into calls of the reconciler.

- a ContinuableJob created or changed (spec or annotations): reconcile it;
- found at start-up: reconcile it, except a finished one, which only waits for its TTL: its
  reconcile goes to the background queue a little later, so the running and pending jobs, and
  every pod that ends meanwhile, go first;
- a job pod changed in a way that matters (`pod_matters`: phase, deletion, node, finalizers),
  as the store tells (from the pods' informer, `informing.py`, or the operator's own write):
  reconcile its job, through the scheduler;
- a job being deleted (a `deletionTimestamp`: a foreground deletion waits for its pods, which
  wait for their finalizers; kopf calls no update handler then) or deleted: a reconcile soon
  (from the scheduler), which records what it can, releases the pods and, once the job is gone,
  forgets it;
- every event of a job goes into the store first (`caching.py`), which the reconciles read; a
  checkpoint-only change of a job's status makes no API call and no reconcile (it happens every
  interval for every running job), only that and the `observe` callback for metrics.

The reconciler never raises: it logs a failure and schedules its own retry.

kopf keeps its bookkeeping in annotations under its own prefix, never in the user's status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from continuable.names import GROUP, JOB_LABEL, KIND, PLURAL, VERSION

from .classifying import is_terminal
from .drafting import has_finalizer
from .reconciling import Reconciler

Object = dict[str, Any]

KOPF_PREFIX = "kopf.continuable.dev"
FINISHED_PHASES = ("Succeeded", "Failed")
# At start-up kopf resumes every job at once. A finished job needs nothing but its TTL, so it
# waits this long in the scheduler: the running and pending jobs, whose pods may need a decision
# now, have the API rate limit to themselves for their first reconcile.
FINISHED_RESUME_DELAY_SECONDS = 10.0


def settings() -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    # A prefix of kopf's own: kopf drops its storage prefix from change detection, so with
    # continuable.dev our own annotations (restart requests) would never fire on.update.
    configured.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    configured.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled"
    )
    # kopf would post an Event for every handler run; ours say what happened instead.
    configured.posting.level = logging.WARNING
    configured.execution.max_workers = 16
    return configured


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
    only when an end is waiting to be recorded or a deletion to be followed (kopf's resume
    reconciles every job anyway)."""
    if event == "DELETED":
        return True
    if old is None and event == "LISTED":
        deleting = bool((new.get("metadata") or {}).get("deletionTimestamp"))
        return has_finalizer(new) and (deleting or is_terminal(new))
    return old is None or _what_matters(old) != _what_matters(new)


def build_registry(reconciler: Reconciler) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as our own client: the pod's service account, or $KUBECONFIG.
        return kopf.login_via_client(**kwargs)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    def job_resumed(namespace: str | None, name: str, status: Mapping[str, Any], **_: Any) -> None:
        if not namespace:
            return
        if status.get("phase") in FINISHED_PHASES:
            reconciler.schedule(namespace, name, FINISHED_RESUME_DELAY_SECONDS, background=True)
        else:
            reconciler.reconcile(namespace, name)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def job_changed(namespace: str | None, name: str, **_: Any) -> None:
        if namespace:
            reconciler.reconcile(namespace, name)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def job_observed(
        event: kopf.RawEvent,
        body: Mapping[str, Any],
        type: str | None,
        namespace: str | None,
        name: str,
        **_: Any,
    ) -> None:
        reconciler.store.apply(KIND, type, event["object"])
        reconciler.metrics.observe_job(body, type)
        deleting = (body.get("metadata") or {}).get("deletionTimestamp")
        if namespace and (type == "DELETED" or deleting):
            reconciler.schedule(namespace, name, 0)

    return registry


def on_store_change(reconciler: Reconciler) -> Callable[[str, str, Object | None, Object], None]:
    """The store's listener: a pod's change that matters, seen by its watch or in the answer to
    the operator's own write, schedules its job's reconcile (the scheduler's workers run it;
    neither the informer thread nor the writer waits for it)."""

    def changed(kind: str, event: str, old: Object | None, new: Object) -> None:
        metadata = new.get("metadata") or {}
        job = (metadata.get("labels") or {}).get(JOB_LABEL)
        if kind == "Pod" and job and metadata.get("namespace") and pod_matters(event, old, new):
            reconciler.schedule(metadata["namespace"], job, 0)

    return changed
