"""The kopf handlers: they only turn kopf's events into calls of the reconciler.

- a ContinuableJob created or changed (spec or annotations): reconcile it;
- found at start-up: reconcile it, except a finished one, which only waits for its TTL: its
  reconcile goes to the scheduler a little later, so the running and pending jobs go first;
- a job pod changed in a way that matters (phase, deletion): reconcile its job;
- a job being deleted (a `deletionTimestamp`: a foreground deletion waits for its pods, which
  wait for their finalizers; kopf calls no update handler then) or deleted: a reconcile soon
  (from the scheduler), which records what it can, releases the pods and, once the job is gone,
  forgets it;
- a checkpoint-only change of a job's status: no API call, no handler chain (it happens every
  interval for every running job), only the `observe` callback for metrics.

The reconciler never raises: it logs a failure and schedules its own retry.

kopf keeps its bookkeeping in annotations under its own prefix, never in the user's status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from continuable.names import GROUP, JOB_LABEL, PLURAL, VERSION

from .reconciling import Reconciler

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


def _pod_matters(event: Mapping[str, Any]) -> bool:
    pod = event.get("object") or {}
    if event.get("type") in ("ADDED", "DELETED", None):
        return True
    status = pod.get("status") or {}
    return bool(
        (pod.get("metadata") or {}).get("deletionTimestamp")
        or status.get("phase") in ("Running", "Succeeded", "Failed")
    )


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
            reconciler.schedule(namespace, name, FINISHED_RESUME_DELAY_SECONDS)
        else:
            reconciler.reconcile(namespace, name)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def job_changed(namespace: str | None, name: str, **_: Any) -> None:
        if namespace:
            reconciler.reconcile(namespace, name)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def job_observed(
        body: Mapping[str, Any], type: str | None, namespace: str | None, name: str, **_: Any
    ) -> None:
        reconciler.metrics.observe_job(body, type)
        deleting = (body.get("metadata") or {}).get("deletionTimestamp")
        if namespace and (type == "DELETED" or deleting):
            reconciler.schedule(namespace, name, 0)

    @kopf.on.event("", "v1", "pods", labels={JOB_LABEL: kopf.PRESENT}, registry=registry)
    def pod_changed(
        event: kopf.RawEvent, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> None:
        if namespace and _pod_matters(event):
            reconciler.reconcile(namespace, labels[JOB_LABEL])

    return registry
