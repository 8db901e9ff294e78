"""The reconcile loop: reads a job and its pods, has the planner decide (`planning.py`) and
the executor carry the plan out (`executing.py`), and decides when to look again.

Reconciles of one job are serialised (a lock per job), since a pod event and a job event can
arrive together; the status writes are fenced on the attempt anyway, so even two operators
could not both launch. A plan that hits a conflict stops where it is and is recomputed shortly.

Every reconcile ends with the next one decided: the plan's requeue (a backoff ending, a TTL, a
deadline), a quick replan after a conflict, or, after any error (the API server unreachable, or
a bug), a retry with a per-job backoff, so no job waits for an event that may never come. The
requeues wait in one scheduler (`scheduling.py`), not a thread each; a job's lock, backoff and
requeue are dropped once a reconcile finds the job gone with nothing left to do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from continuable.names import RESTART_FROM_STEP_ANNOTATION

from . import planning, relaunching
from .cluster import ApiError, ClusterApi
from .drafting import FINISHED
from .executing import Executor, Stop
from .metrics import OperatorMetrics
from .scheduling import Scheduler

log = logging.getLogger(__name__)
Object = dict[str, Any]
Key = tuple[str, str]
# After a failed reconcile, retry after 1 s, doubling with each failure in a row up to a minute:
# quick after a blip, gentle on an API server that is down or on a job that keeps hitting a bug.
ERROR_RETRY_SECONDS = 1.0
ERROR_RETRY_MAX_SECONDS = 60.0
# Threads that run due requeues: enough that one slow reconcile does not hold up the others,
# few next to kopf's 16 (the API rate limit is shared anyway).
REQUEUE_WORKERS = 4


def error_retry(failures: int) -> float:
    """Seconds before retrying after the `failures`-th failed reconcile in a row."""
    doublings = min(failures - 1, 32)  # bounded: a float of 2**n overflows past n = 1023
    return min(ERROR_RETRY_SECONDS * 2.0**doublings, ERROR_RETRY_MAX_SECONDS)


@dataclass
class _Slot:
    """A job's lock, the reconciles that hold or wait for it, and its failures in a row."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    failures: int = 0


class Reconciler:
    def __init__(
        self,
        api: ClusterApi,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: OperatorMetrics | None = None,
        requeue_workers: int = REQUEUE_WORKERS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`requeue_workers=0` and a fake `monotonic` let a test drive the requeues by hand."""
        self.api = api
        self.clock = clock
        self.metrics = metrics or OperatorMetrics()
        self.scheduler: Scheduler[Key] = Scheduler(
            lambda key: self.reconcile(*key), workers=requeue_workers, clock=monotonic
        )
        self.executor = Executor(api, clock=lambda: self.clock(), metrics=self.metrics)
        self._slots: dict[Key, _Slot] = {}
        self._slots_guard = threading.Lock()

    def reconcile(self, namespace: str, name: str) -> None:
        """Reconcile the job now. Never raises: a failure is logged and retried later."""
        key = (namespace, name)
        with self._slots_guard:
            slot = self._slots.setdefault(key, _Slot())
            slot.users += 1
        gone = False
        try:
            with slot.lock:
                # This reconcile decides the next one: a requeue set before it is stale.
                self.scheduler.cancel(key)
                began = time.monotonic()
                try:
                    retry, gone = self._reconcile(namespace, name, began)
                except Exception as err:
                    slot.failures += 1
                    retry = error_retry(slot.failures)
                    # An API failure is the cluster's weather; anything else is a bug to show.
                    report = log.warning if isinstance(err, ApiError) else log.exception
                    report("reconciling %s/%s failed: %s; retry in %.0fs", *key, err, retry)
                    self.metrics.observe_reconcile(time.monotonic() - began, failed=True)
                else:
                    slot.failures = 0
                    self.metrics.observe_reconcile(time.monotonic() - began, failed=False)
                if retry is not None:
                    self.scheduler.schedule(key, retry)
        finally:
            with self._slots_guard:
                slot.users -= 1
                if gone and slot.users == 0:
                    del self._slots[key]

    def schedule(self, namespace: str, name: str, delay: float) -> None:
        """Reconcile after `delay` seconds, unless one is due sooner."""
        self.scheduler.schedule((namespace, name), delay)

    def stop(self) -> None:
        self.scheduler.stop()

    def _reconcile(self, namespace: str, name: str, began: float) -> tuple[float | None, bool]:
        """Seconds until the next reconcile (None: none needed), and whether the job is gone
        with nothing left to do for it."""
        # Pods first: a pod saves its last checkpoint (how it stopped) before it ends, so a job
        # read after the list holds the last words of every pod the list shows ended.
        pods = self.api.list_pods(namespace, name)
        job = self.api.get_job(namespace, name)
        if job is None:
            result = planning.plan_orphans(pods)
        else:
            result = planning.plan(job, pods, self.clock(), shared_with=self._sharer(job))
        try:
            self.executor.execute(job, pods, result, began)
        except Stop as stop:
            return stop.retry_after, False
        return result.requeue_after, job is None and not result.actions

    def _sharer(self, job: Object) -> str | None:
        """Another job of the namespace that uses the service account the job's template names
        (one list call, only for a job that names one and may launch: not being deleted, and
        not finished unless a restart is asked for)."""
        metadata = job["metadata"]
        if relaunching.named_account(job) is None or metadata.get("deletionTimestamp"):
            return None
        finished = (job.get("status") or {}).get("phase") in FINISHED
        if finished and RESTART_FROM_STEP_ANNOTATION not in (metadata.get("annotations") or {}):
            return None
        jobs = self.api.list_jobs(job["metadata"]["namespace"])
        return relaunching.shared_with(job, jobs)
