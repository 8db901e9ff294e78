"""Carries out a `Plan`, action by action, against the cluster: the only place where the
planner's decisions meet the API. `reconciling.py` calls it once per reconcile with the job and
pods it read; what it decides itself is only what an answer of the API server means.

- A status write refused with 409/422: the job is read again. Another attempt or another UID is
  a fencing conflict (someone wrote meanwhile): the plan stops and is recomputed at once. The
  same attempt means the API server refused the content (a validation error): logged with its
  message and raised, so the loop's per-job backoff retries it, never in a hot loop.
- An object the job needs (its results ConfigMap, ServiceAccount, Role, RoleBinding, pod) is the
  job's only when the job's UID controls it (invariant 7). One held by anything else (a deleted
  job of the same name, a StatefulSet, a user) is a name conflict, planned by
  `planning.plan_name_conflict`: never adopted, never granted to the job's pod. An object the
  job controls is brought to the manifest by a JSON patch whose `test` ops check that it has not
  changed hands since it was read.
- A restart request is removed only while its nonce is the one acted on: a request made
  meanwhile stays for the next plan.

`Stop` ends a plan early: the rest of it was decided on a state that no longer holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from continuable.backends.kubernetes import result_key
from continuable.names import (
    KIND,
    RESTART_FROM_STEP_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
    results_config_map,
)

from . import planning
from .actions import (
    ClearRestartRequest,
    CreatePod,
    CreateWorkload,
    DeleteJob,
    DeletePod,
    DeleteWorkload,
    DropResults,
    Emit,
    EnsureObject,
    NameRestartRequest,
    PatchStatus,
    PatchWorkload,
    PatchWorkloadStatus,
    Plan,
    RemoveFinalizer,
)
from .caching import Store
from .cluster import ApiError, ClusterApi
from .drafting import timestamp
from .metrics import OperatorMetrics
from .ownership import controlled_by, describe_owner
from .patching import (
    controller_guard,
    pointer,
    restart_request_naming,
    restart_request_removal,
    status_patch,
    update_ops,
)
from .workloads import delete_workload, write_workload

log = logging.getLogger(__name__)
Object = dict[str, Any]
# A plan stopped by a change made meanwhile is recomputed this soon: the change is news, and
# the write that found it cost nothing.
REPLAN_SECONDS = 0.2
# An object that changed between our read and our write is read again at most this many times
# in one reconcile; past that the error goes to the loop's backoff.
TRIES = 3


class Stop(Exception):
    """The rest of this plan must not run; reconcile again after `retry_after` seconds (None:
    no reconcile needed, e.g. the job is gone)."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Executor:
    def __init__(
        self,
        api: ClusterApi,
        store: Store,
        *,
        clock: Callable[[], datetime],
        metrics: OperatorMetrics,
    ) -> None:
        self.api = api
        self.store = store
        self.clock = clock
        self.metrics = metrics

    # Reads: from the store, unless a refused write says it is behind.

    def _remember(self, kind: str, obj: Object | None) -> Object | None:
        """Keep a write's answer (read-your-writes)."""
        if obj is not None:
            self.store.apply(kind, None, obj)
        return obj

    def _read(self, kind: str, namespace: str, name: str, *, fresh: bool) -> Object | None:
        """The object as the store has it; `fresh`, or before the kind's first list is in: as
        the API server has it (after a write found the store behind), kept in the store."""
        if not fresh and self.store.synced(kind):
            return self.store.get(kind, namespace, name)
        return self._kept(kind, namespace, name, self.api.get(kind, namespace, name))

    def fresh_job(self, namespace: str, name: str, *, cached: bool = False) -> Object | None:
        """The job as the API server has it now (`cached`: as its watch cache has it), kept in
        the store."""
        found = self.api.get_job(namespace, name, cached=cached)
        return self._kept(KIND, namespace, name, found)

    def _kept(self, kind: str, namespace: str, name: str, found: Object | None) -> Object | None:
        """What a read of the API server found, kept in the store; None (gone) removes the
        store's copy."""
        if found is None:
            stored = self.store.get(kind, namespace, name)
            if stored is not None:
                self.store.apply(kind, "DELETED", stored)
            return None
        return self._remember(kind, found)

    def execute(self, job: Object | None, pods: Sequence[Object], plan: Plan, began: float) -> None:
        """Carry out the plan's actions in order; raises `Stop` when the rest must not run.
        `job` is None only for a plan of the job's orphaned pods (`plan_orphans`)."""
        by_name = {p["metadata"]["name"]: p for p in pods}
        status: dict[str, Any] = dict((job or {}).get("status") or {})
        # Events wait until the plan's writes are done (or it stops): off the path from a pod's
        # end to its replacement. Each follows the status write it describes, which succeeded
        # since the loop got past it.
        events: list[Emit] = []
        try:
            self._carry_out(job, plan, by_name, status, began, events)
        finally:
            for event in events:
                self._post(job, event)

    def _carry_out(
        self,
        job: Object | None,
        plan: Plan,
        by_name: Mapping[str, Object],
        status: dict[str, Any],
        began: float,
        events: list[Emit],
    ) -> None:
        for action in plan.actions:
            if isinstance(action, Emit):
                events.append(action)
                continue
            if isinstance(action, RemoveFinalizer):
                # Possibly a pod this job does not control (a deleted job's of the same name):
                # found by name among the pods listed, as the planner saw it.
                self._remove_finalizer(by_name[action.name])
                continue
            if job is None:
                raise ValueError(f"{action} needs the job, which is gone")
            namespace = job["metadata"]["namespace"]
            if isinstance(action, PatchStatus):
                self._patch_status(job, status, action)
            elif isinstance(action, EnsureObject):
                self._ensure(job, action.manifest, began)
            elif isinstance(action, CreatePod):
                if self._create_pod(job, action.manifest, began):
                    self.metrics.observe_launch(int(status.get("attempt") or 0), began)
            elif isinstance(action, DeletePod):
                self._delete_pod(namespace, action)
            elif isinstance(action, DropResults):
                self._drop_results(job, action.steps)
            elif isinstance(action, ClearRestartRequest):
                self._clear_restart_request(job, action.nonce)
            elif isinstance(action, NameRestartRequest):
                self._name_restart_request(job, action)
            elif isinstance(action, CreateWorkload | PatchWorkload | PatchWorkloadStatus):
                if write_workload(self.api, self.store, namespace, action):
                    raise Stop(REPLAN_SECONDS)
            elif isinstance(action, DeleteWorkload):
                delete_workload(self.api, self.store, namespace, action)
            elif isinstance(action, DeleteJob):
                try:
                    self.api.delete_job(namespace, action.name, action.uid)
                except ApiError as err:
                    if err.status not in (404, 409):
                        raise

    def _post(self, job: Object | None, event: Emit) -> None:
        if job is None:
            raise ValueError(f"{event} needs the job, which is gone")
        try:
            self.api.emit(job, event.type, event.reason, event.message)
        except ApiError as err:
            metadata = job["metadata"]
            log.warning(
                "posting event %s on %s/%s failed: %s",
                *(event.reason, metadata["namespace"], metadata["name"], err),
            )

    # Status.

    def _patch_status(self, job: Object, status: dict[str, Any], action: PatchStatus) -> None:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        body, json_patch = status_patch(action, status)
        try:
            patched = self.api.patch_job(namespace, name, body, json_patch=json_patch, status=True)
        except ApiError as err:
            if err.status not in (409, 422):
                raise
            self._judge_refusal(job, action.expected_attempt, err)
            raise
        self._remember(KIND, patched)
        self.metrics.observe_status(status, action.fields)
        status.update(action.fields)
        if status.get("checkpoint") is None:
            status.pop("checkpoint", None)

    def _judge_refusal(self, job: Object, expected: int | None, err: ApiError) -> None:
        """A status write got 409/422: raise `Stop` when it is a fencing conflict (the job
        changed hands or attempts meanwhile); return when it is the API server refusing the
        content, after saying so with its words."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        fresh = self.fresh_job(namespace, name)
        if fresh is None:
            raise Stop(None) from err
        attempt = (fresh.get("status") or {}).get("attempt")
        if fresh["metadata"].get("uid") != job["metadata"]["uid"] or attempt != expected:
            log.info("%s/%s changed meanwhile (%s); replanning", namespace, name, err)
            raise Stop(REPLAN_SECONDS) from err
        log.warning(
            "status write of %s/%s refused, attempt %s unchanged (not a conflict; retried with "
            "backoff): %s",
            *(namespace, name, expected, err),  # the error carries the API server's message
        )

    # Objects the job controls.

    def _ensure(self, job: Object, manifest: Object, began: float) -> None:
        """Create the object, or bring the one the job controls to the manifest; one held by
        anything else is a name conflict."""
        kind, metadata = manifest["kind"], manifest["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        uid = job["metadata"]["uid"]
        last: ApiError | None = None
        for tried in range(TRIES):
            found = self._read(kind, namespace, name, fresh=tried > 0)
            if found is not None and not controlled_by(found, uid):
                self._name_conflict(job, kind, name, found, began)
            try:
                if found is None:
                    self._remember(kind, self.api.create(manifest))
                elif ops := update_ops(found, manifest):
                    guarded = [*controller_guard(found, uid), *ops]
                    self._remember(kind, self.api.patch(kind, namespace, name, guarded))
                return
            except ApiError as err:
                # 409: created meanwhile; 404: deleted meanwhile; 422: a `test` failed (it
                # changed hands), or a refusal, which repeats and goes to the backoff.
                if err.status not in (404, 409, 422):
                    raise
                last = err
        assert last is not None
        raise last

    def _create_pod(self, job: Object, manifest: Object, began: float) -> bool:
        """Whether the pod was created now (False: this job's pod already existed)."""
        try:
            self._remember("Pod", self.api.create(manifest))
        except ApiError as err:
            namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
            if err.status == 409:
                found = self._read("Pod", namespace, name, fresh=True)
                if found is None:
                    raise Stop(REPLAN_SECONDS) from err  # gone meanwhile: look again
                if controlled_by(found, job["metadata"]["uid"]):
                    return False  # created by an earlier reconcile that did not live to see it
                self._name_conflict(job, "Pod", name, found, began)
            log.warning("creating pod %s/%s failed: %s", namespace, name, err)
            now, status, message = self.clock(), err.status, err.message
            self._divert(
                job,
                lambda fresh: planning.plan_create_failure(fresh, status, message, now),
                began,
            )
        return True

    def _name_conflict(
        self, job: Object, kind: str, name: str, found: Object, began: float
    ) -> NoReturn:
        holder = describe_owner(found)
        namespace = job["metadata"]["namespace"]
        job_name = job["metadata"]["name"]
        log.warning("%s %s/%s is not job %s's but %s's", kind, namespace, name, job_name, holder)
        now = self.clock()
        self._divert(
            job, lambda fresh: planning.plan_name_conflict(fresh, kind, name, holder, now), began
        )

    def _divert(self, job: Object, replan: Callable[[Object], Plan], began: float) -> NoReturn:
        """Stop this plan and carry out another, made from the job as it is now (this plan may
        have written its status already)."""
        fresh = self.fresh_job(job["metadata"]["namespace"], job["metadata"]["name"])
        if fresh is None or fresh["metadata"].get("uid") != job["metadata"]["uid"]:
            raise Stop(None if fresh is None else REPLAN_SECONDS)
        other = replan(fresh)
        self.execute(fresh, [], other, began)
        raise Stop(other.requeue_after)

    def _drop_results(self, job: Object, steps: tuple[str, ...]) -> None:
        """Remove these steps' results from the job's results ConfigMap, if the job controls
        it (one held by anything else is left alone: the launch reports the conflict)."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        config_map = results_config_map(name)
        uid = job["metadata"]["uid"]
        last: ApiError | None = None
        for tried in range(TRIES):
            found = self._read("ConfigMap", namespace, config_map, fresh=tried > 0)
            if found is None:
                return
            if not controlled_by(found, uid):
                holder = describe_owner(found)
                log.warning("results %s/%s left alone: held by %s", namespace, config_map, holder)
                return
            data = found.get("data") or {}
            keys = [result_key(s) for s in steps if result_key(s) in data]
            if not keys:
                return
            ops = [{"op": "remove", "path": pointer("data", key)} for key in keys]
            try:
                guarded = controller_guard(found, uid) + ops
                self._remember(
                    "ConfigMap", self.api.patch("ConfigMap", namespace, config_map, guarded)
                )
                return
            except ApiError as err:
                if err.status not in (404, 409, 422):
                    raise
                last = err  # changed meanwhile: look again
        assert last is not None
        raise last

    def _name_restart_request(self, job: Object, action: NameRestartRequest) -> None:
        """Add the nonce while the request is still the one planned on (its step's value);
        a request changed or removed meanwhile is planned again."""
        refused = self._patch_request(job, restart_request_naming(action.step, action.nonce))
        if refused is not None:
            raise Stop(REPLAN_SECONDS) from refused

    def _patch_request(self, job: Object, ops: list[Object]) -> ApiError | None:
        """A JSON patch of the job's restart annotations; the 409/422 it got when its `test`
        ops found the request changed (or refused), None once written. A job gone stops."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        try:
            self._remember(KIND, self.api.patch_job(namespace, name, ops, json_patch=True))
        except ApiError as err:
            if err.status == 404:
                raise Stop(None) from err
            if err.status not in (409, 422):
                raise
            return err
        return None

    def _clear_restart_request(self, job: Object, nonce: str | None) -> None:
        """Remove the restart annotations, on the condition that the request is still the one
        acted on: its nonce; without a nonce (set by hand), the step annotation's value."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        step = (job["metadata"].get("annotations") or {}).get(RESTART_FROM_STEP_ANNOTATION)
        ops = restart_request_removal(step, nonce)
        if not ops:
            return
        err = self._patch_request(job, ops)
        if err is None:
            return
        fresh = self.fresh_job(namespace, name)
        if fresh is None:
            raise Stop(None) from err
        now = fresh["metadata"].get("annotations") or {}
        request = (now.get(RESTART_NONCE_ANNOTATION), now.get(RESTART_FROM_STEP_ANNOTATION))
        if request == (nonce, step):
            log.warning(
                "removing the restart request of %s/%s was refused: %s", namespace, name, err
            )
            raise err  # the request is unchanged: a refusal, retried with backoff
        log.info("%s/%s got a new restart request meanwhile; planning it", namespace, name)
        raise Stop(REPLAN_SECONDS) from err

    # Pods.

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
                self._remember(
                    "Pod", self.api.stamp_pod(namespace, action.name, action.uid, condition)
                )
            self._remember("Pod", self.api.delete_pod(namespace, action.name, action.uid))
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    def _remove_finalizer(self, pod: Object) -> None:
        metadata = pod["metadata"]
        try:
            self._remember(
                "Pod", self.api.remove_finalizer(metadata["namespace"], metadata["name"], pod)
            )
        except ApiError as err:
            if err.status == 422:
                raise Stop(REPLAN_SECONDS) from err  # the finalizers changed: look again
            if err.status != 404:
                raise
