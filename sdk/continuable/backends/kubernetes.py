"""The backend in a pod: `status.checkpoint` of the job's ContinuableJob, and step results in
its `<job>-results` ConfigMap.

Every write is fenced (invariant 3): a JSON patch whose first op tests the attempt number, on
`/status/attempt` for the checkpoint and on the ConfigMap's `attempt` key for results. A pod of
an older attempt (a zombie on a partitioned node) has its write refused with 422 and stops
itself, so it can never overwrite a newer attempt's progress. The second op tests the job's
identity, its UID (`CONTINUABLE_JOB_UID`): on `/metadata/uid` for the checkpoint, and on the
ConfigMap's one owner reference (the operator creates it controlled by the job) for results. A
pod of a job that was deleted, and maybe created again under the same name, can never write into
the new job.

A zombie may not even get that far: its service-account token is bound to its pod, so once the
pod object is deleted (force-deleted on a lost node) every call it makes answers 401. A 401 is
retried for a while (an API server that just restarted answers it too); when it outlasts that
grace and the token worked earlier in this process, the pod stops as fenced out (exit 75).

The API calls go through `JobApi` (`jobapi.py`), a seam with the five calls this backend makes:
in a pod a small client of the standard library's (`incluster.py`), elsewhere the kubernetes
client (`kubeconfig.py`); the unit tests use a fake.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from continuable.errors import BackendError, BackendUnavailable, FencedOut
from continuable.names import (
    ENV_ATTEMPT,
    ENV_JOB,
    ENV_JOB_UID,
    ENV_NAMESPACE,
    RESULTS_ATTEMPT_KEY,
    pod_name,
    results_config_map,
)

from . import Settings, Snapshot
from .jobapi import ApiFailure, JobApi, job_api

RESULT_SUFFIX = ".json"
# HTTP statuses after which the same write may succeed later.
_TRANSIENT = frozenset({0, 408, 429, 500, 502, 503, 504})
# How long a refusal (401/403) counts as the API server still starting.
AUTH_GRACE_SECONDS = 60.0
# What a 401 that outlasts the grace means once this pod's token has worked: the token is bound to
# the pod object, so the API server stops accepting it once the pod is deleted (force-deleted on
# a partitioned node, typically). Such a pod is a zombie, like one a newer attempt fenced out.
CREDENTIALS_REVOKED = "credentials no longer valid (the pod was deleted?)"


def result_key(step: str) -> str:
    """The ConfigMap key of a step's result; the suffix keeps it apart from `attempt`."""
    return f"{step}{RESULT_SUFFIX}"


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def settings_from_spec(spec: dict[str, Any]) -> Settings:
    checkpoint = spec.get("checkpoint") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    defaults = Settings()
    grace = pod.get("terminationGracePeriodSeconds")
    return Settings(
        interval_seconds=float(checkpoint.get("intervalSeconds", defaults.interval_seconds)),
        max_bytes=int(checkpoint.get("maxBytes", defaults.max_bytes)),
        results_max_bytes=int(checkpoint.get("resultsMaxBytes", defaults.results_max_bytes)),
        grace_seconds=float(grace if grace is not None else defaults.grace_seconds),
    )


class KubernetesBackend:
    def __init__(self, api: JobApi, *, job: str, namespace: str, attempt: int, uid: str) -> None:
        self._api = api
        self._denied_since: float | None = None
        # Whether the API server has accepted this pod's credentials in this process.
        self._authenticated = False
        self.job = job
        self.namespace = namespace
        self.attempt = attempt
        self.uid = uid

    @classmethod
    def from_environment(cls) -> KubernetesBackend:
        given = {
            name: os.environ.get(name, "")
            for name in (ENV_JOB, ENV_JOB_UID, ENV_NAMESPACE, ENV_ATTEMPT)
        }
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise BackendError(
                f"{', '.join(missing)} must be set in a ContinuableJob's pod (the operator sets "
                "them); unset CONTINUABLE_JOB to run with a local state file"
            )
        job, namespace, attempt = given[ENV_JOB], given[ENV_NAMESPACE], given[ENV_ATTEMPT]
        if not attempt.isdigit() or int(attempt) < 1:
            raise BackendError(f"{ENV_ATTEMPT}={attempt!r} must be a positive integer")
        return cls(
            job_api(job, namespace),
            job=job,
            namespace=namespace,
            attempt=int(attempt),
            uid=given[ENV_JOB_UID],
        )

    def load(self) -> Snapshot:
        job = self._call(self._api.get_job, "reading the ContinuableJob")
        replaced = self._replaced_by(job)
        if replaced:
            raise FencedOut(replaced)
        status = job.get("status") or {}
        owner = status.get("attempt")
        if owner != self.attempt:
            if isinstance(owner, int) and owner > self.attempt:
                raise FencedOut(f"attempt {owner} owns the job; this pod is attempt {self.attempt}")
            raise BackendError(
                f"status.attempt of {self._name} is {owner!r}, not {self.attempt}: the operator "
                "sets it before it starts the attempt's pod"
            )
        data = self._call(self._api.get_results, f"reading ConfigMap {self._results_name}")
        results = {
            key[: -len(RESULT_SUFFIX)]: json.loads(value)
            for key, value in data.items()
            if key.endswith(RESULT_SUFFIX)
        }
        return Snapshot(
            attempt=self.attempt,
            checkpoint=status.get("checkpoint"),
            results=results,
            settings=settings_from_spec(job.get("spec") or {}),
        )

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/status/attempt", "value": self.attempt},
            {"op": "test", "path": "/metadata/uid", "value": self.uid},
            {"op": "add", "path": "/status/checkpoint", "value": checkpoint},
        ]
        self._fenced(lambda: self._api.patch_status(ops), "status.checkpoint")

    def save_result(self, step: str, encoded: str) -> None:
        ops = [
            {"op": "test", "path": f"/data/{RESULTS_ATTEMPT_KEY}", "value": str(self.attempt)},
            # The operator creates the ConfigMap with one owner reference: the job's.
            {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": self.uid},
            {"op": "add", "path": f"/data/{_pointer(result_key(step))}", "value": encoded},
        ]
        self._fenced(lambda: self._api.patch_results(ops), f"the result of step {step}")

    def finish(self, *, completed: bool) -> None:
        """Nothing to release: the operator owns the job's lifecycle."""

    def termination_reason(self) -> str | None:
        """The pod's DisruptionTarget condition (eviction, preemption, rollout...), if readable."""
        try:
            pod = self._api.get_pod(pod_name(self.job, self.attempt))
        except ApiFailure:
            return None
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
                reason = condition.get("reason", "DisruptionTarget")
                message = condition.get("message")
                return f"{reason}: {message}" if message else str(reason)
        return None

    @property
    def _name(self) -> str:
        return f"ContinuableJob {self.namespace}/{self.job}"

    @property
    def _results_name(self) -> str:
        return f"{self.namespace}/{results_config_map(self.job)}"

    def _call(self, call: Any, what: str) -> Any:
        try:
            result = call()
        except ApiFailure as failure:
            raise self._translate(failure, what) from failure
        self._accepted()
        return result

    def _fenced(self, write: Any, what: str) -> None:
        try:
            write()
            self._accepted()
        except ApiFailure as failure:
            if failure.status not in (404, 422):
                raise self._translate(failure, f"writing {what}") from failure
            # 422 is also what an invalid write gets, and 404 a write to a missing ConfigMap:
            # tell fencing apart by reading the job.
            fenced = self._fenced_out_by()
            if fenced:
                raise FencedOut(f"{fenced}; this pod stops without writing") from failure
            raise BackendError(f"writing {what} was refused: {failure}") from failure

    def _fenced_out_by(self) -> str | None:
        """What took the job from this pod (its deletion, a new job of its name, a newer
        attempt), or None while the pod still owns it."""
        try:
            job = self._api.get_job()
        except ApiFailure as failure:
            if failure.status == 404:
                return f"{self._name} was deleted"
            raise self._translate(failure, "reading the ContinuableJob") from failure
        self._accepted()
        replaced = self._replaced_by(job)
        if replaced:
            return replaced
        owner = (job.get("status") or {}).get("attempt")
        if owner != self.attempt:
            return f"attempt {owner} owns the job now (this pod is attempt {self.attempt})"
        return None

    def _replaced_by(self, job: dict[str, Any]) -> str | None:
        uid = (job.get("metadata") or {}).get("uid")
        if uid == self.uid:
            return None
        return (
            f"{self._name} is another job now (uid {uid}): the job this pod ran for uid "
            f"{self.uid} was deleted"
        )

    def _accepted(self) -> None:
        self._authenticated = True
        self._denied_since = None

    def _translate(self, failure: ApiFailure, what: str) -> BackendError | FencedOut:
        if failure.status in _TRANSIENT:
            return BackendUnavailable(f"{what}: {failure}", retry_after=failure.retry_after)
        if failure.status in (401, 403):
            # An API server that just restarted (or lost etcd) answers 401/403 until it can
            # check tokens and its RBAC caches are loaded: retried for a while, then taken at
            # its word.
            now = time.monotonic()
            self._denied_since = self._denied_since or now
            denied_for = now - self._denied_since
            if denied_for < AUTH_GRACE_SECONDS:
                return BackendUnavailable(f"{what}: {failure} (retrying for a while)")
            if failure.status == 401 and self._authenticated:
                # The token worked in this process and is refused for good: the pod it is bound
                # to is gone, so another attempt may run. Stop without writing (exit 75), as a
                # fenced-out pod does; a token that never worked is a setup error (exit 1).
                return FencedOut(f"{CREDENTIALS_REVOKED}: {what}: {failure} for {denied_for:.0f}s")
        return BackendError(f"{what}: {failure}")
