"""The kopf handlers: they only turn kopf's events into calls of the reconciler.

- a ContinuableJob created, changed (spec or annotations), or found at start-up: reconcile it;
- a job pod changed in a way that matters (phase, deletion): reconcile its job;
- a checkpoint-only change of a job's status: no API call, no handler chain (it happens every
  interval for every running job), only the `observe` callback for metrics.

kopf keeps its bookkeeping in annotations under its own prefix, never in the user's status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from continuable.names import GROUP, JOB_LABEL, PLURAL, VERSION

from .reconciling import Reconciler

log = logging.getLogger(__name__)
KOPF_PREFIX = "kopf.continuable.dev"


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

    def reconcile_job(namespace: str, name: str) -> None:
        try:
            reconciler.reconcile(namespace, name)
        except Exception:
            # One bad object must never stop the operator: log, and the next event retries.
            log.exception("reconciling %s/%s failed", namespace, name)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def job_changed(namespace: str | None, name: str, **_: Any) -> None:
        if namespace:
            reconcile_job(namespace, name)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def job_observed(body: Mapping[str, Any], type: str | None, **_: Any) -> None:
        reconciler.metrics.observe_job(body, type)

    @kopf.on.event("", "v1", "pods", labels={JOB_LABEL: kopf.PRESENT}, registry=registry)
    def pod_changed(
        event: kopf.RawEvent, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> None:
        if namespace and _pod_matters(event):
            reconcile_job(namespace, labels[JOB_LABEL])

    return registry
