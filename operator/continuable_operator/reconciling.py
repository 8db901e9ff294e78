"""Carries out a plan for one job: the only place where decisions meet the API.

Reconciles of one job are serialised (a lock per job), since a pod event and a job event can
arrive together; the status writes are fenced on the attempt anyway, so even two operators
could not both launch. A plan that hits a conflict stops where it is and is recomputed shortly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from continuable.names import (
    RESTART_FROM_STEP_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
    RESULTS_ATTEMPT_KEY,
)

from . import planning
from .cluster import ApiError, ClusterApi
from .metrics import OperatorMetrics
from .planning import (
    CreatePod,
    DeleteJob,
    DeletePod,
    Emit,
    EnsureObject,
    PatchStatus,
    Plan,
    RemoveFinalizer,
    ResetCheckpoint,
    timestamp,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
# After a conflict or an API error, try again this soon.
RETRY_SECONDS = 2.0


class Stop(Exception):
    """The rest of this plan must not run; reconcile again after `retry_after` seconds."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def status_patch(action: PatchStatus) -> tuple[Any, bool]:
    """The body and kind of a status write: a JSON patch fenced on the attempt, or, for the
    first write, a merge patch."""
    if action.expected_attempt is None:
        return {"status": action.fields}, False
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/status/attempt", "value": action.expected_attempt}
    ]
    ops += [{"op": "add", "path": f"/status/{k}", "value": v} for k, v in action.fields.items()]
    return ops, True


class Reconciler:
    def __init__(
        self,
        api: ClusterApi,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.api = api
        self.clock = clock
        self.metrics = metrics or OperatorMetrics()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._timers: dict[tuple[str, str], threading.Timer] = {}

    def reconcile(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        began = time.monotonic()
        try:
            with lock:
                retry = self._reconcile(namespace, name, began)
        except ApiError as err:
            log.warning("reconciling %s/%s failed: %s; retrying", namespace, name, err)
            self.metrics.observe_reconcile(time.monotonic() - began, failed=True)
            retry = RETRY_SECONDS
        else:
            self.metrics.observe_reconcile(time.monotonic() - began, failed=False)
        if retry is not None:
            self.schedule(namespace, name, retry)

    def schedule(self, namespace: str, name: str, delay: float) -> None:
        """Reconcile again after `delay` seconds (a backoff ending, a retry)."""
        key = (namespace, name)
        with self._locks_guard:
            existing = self._timers.get(key)
            if existing is not None and existing.is_alive():
                existing.cancel()
            timer = threading.Timer(max(delay, 0.0), self.reconcile, (namespace, name))
            timer.daemon = True
            self._timers[key] = timer
            timer.start()

    def stop(self) -> None:
        with self._locks_guard:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

    def _reconcile(self, namespace: str, name: str, began: float) -> float | None:
        job = self.api.get_job(namespace, name)
        pods = self.api.list_pods(namespace, name)
        now = self.clock()
        result = planning.plan_orphans(pods) if job is None else planning.plan(job, pods, now)
        try:
            self._execute(job, pods, result, began)
        except Stop as stop:
            return stop.retry_after
        return result.requeue_after

    def _execute(self, job: Object | None, pods: list[Object], plan: Plan, began: float) -> None:
        by_name = {p["metadata"]["name"]: p for p in pods}
        status: dict[str, Any] = dict((job or {}).get("status") or {})
        for action in plan.actions:
            if isinstance(action, RemoveFinalizer):
                self._remove_finalizer(by_name[action.name])
                continue
            assert job is not None
            namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
            if isinstance(action, PatchStatus):
                body, json_patch = status_patch(action)
                try:
                    self.api.patch_job(namespace, name, body, json_patch=json_patch, status=True)
                except ApiError as err:
                    if err.status in (409, 422):
                        log.info("%s/%s changed meanwhile (%s); replanning", namespace, name, err)
                        raise Stop(0.2) from err
                    raise
                self.metrics.observe_status(status, action.fields)
                status.update(action.fields)
            elif isinstance(action, EnsureObject):
                self._ensure(action.manifest)
            elif isinstance(action, CreatePod):
                if self._create_pod(job, action.manifest, began):
                    self.metrics.observe_launch(int(status.get("attempt") or 0), began)
            elif isinstance(action, DeletePod):
                self._delete_pod(namespace, action)
            elif isinstance(action, ResetCheckpoint):
                self._reset_checkpoint(job, action)
            elif isinstance(action, DeleteJob):
                try:
                    self.api.delete_job(namespace, action.name, action.uid)
                except ApiError as err:
                    if err.status not in (404, 409):
                        raise
            elif isinstance(action, Emit):
                try:
                    self.api.emit(job, action.type, action.reason, action.message)
                except ApiError as err:
                    log.warning(
                        "posting event %s on %s/%s failed: %s", action.reason, namespace, name, err
                    )

    def _reset_checkpoint(self, job: Object, action: ResetCheckpoint) -> None:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/status/attempt", "value": action.expected_attempt}
        ]
        if action.checkpoint is not None:
            ops.append({"op": "add", "path": "/status/checkpoint", "value": action.checkpoint})
        elif (job.get("status") or {}).get("checkpoint") is not None:
            ops.append({"op": "remove", "path": "/status/checkpoint"})
        try:
            self.api.patch_job(namespace, name, ops, json_patch=True, status=True)
        except ApiError as err:
            if err.status in (409, 422):
                raise Stop(0.2) from err
            raise
        if action.dropped_steps:
            self.api.drop_results(namespace, name, action.dropped_steps)
        self.api.patch_job(
            namespace,
            name,
            {
                "metadata": {
                    "annotations": {
                        RESTART_FROM_STEP_ANNOTATION: None,
                        RESTART_NONCE_ANNOTATION: None,
                    }
                }
            },
            json_patch=False,
        )

    def _ensure(self, manifest: Object) -> None:
        """Bring the object to `manifest`: a patch, since after the first attempt it exists (one
        call on the relaunch path, not a refused create and then a patch); created on 404."""
        update = manifest
        if manifest["kind"] == "ConfigMap":
            # The results: only the fencing key changes, results stay.
            update = {
                **manifest,
                "data": {RESULTS_ATTEMPT_KEY: manifest["data"][RESULTS_ATTEMPT_KEY]},
            }
        try:
            self.api.merge(update)
        except ApiError as err:
            if err.status != 404:
                raise
            try:
                self.api.create(manifest)
            except ApiError as conflict:
                if conflict.status != 409:
                    raise
                self.api.merge(update)  # created meanwhile by another reconcile

    def _create_pod(self, job: Object, manifest: Object, began: float) -> bool:
        """Whether the pod was created now (False: it already existed)."""
        try:
            self.api.create(manifest)
        except ApiError as err:
            if err.status == 409:
                return False  # created by an earlier reconcile that did not live to see it
            log.warning("creating pod %s failed: %s", manifest["metadata"]["name"], err)
            fresh = self.api.get_job(job["metadata"]["namespace"], job["metadata"]["name"])
            if fresh is None:
                raise Stop(None) from err
            failure = planning.plan_create_failure(fresh, err.status, err.message, self.clock())
            self._execute(fresh, [], failure, began)
            raise Stop(failure.requeue_after) from err
        return True

    def _delete_pod(self, namespace: str, action: DeletePod) -> None:
        try:
            if action.disruption is not None:
                reason, message = action.disruption
                condition = {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": timestamp(self.clock()),
                }
                self.api.stamp_pod(namespace, action.name, action.uid, condition)
            self.api.delete_pod(namespace, action.name, action.uid)
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    def _remove_finalizer(self, pod: Object) -> None:
        metadata = pod["metadata"]
        try:
            self.api.remove_finalizer(metadata["namespace"], metadata["name"], pod)
        except ApiError as err:
            if err.status == 422:
                raise Stop(0.2) from err  # the finalizers changed: look again
            if err.status != 404:
                raise
