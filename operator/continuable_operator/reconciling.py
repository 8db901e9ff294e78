"""The reconcile loop: reads a job and its pods, has the planner decide (`planning.py`) and
the executor carry the plan out (`executing.py`), and decides when to look again.

The job and its pods are read from the operator's store (`caching.py`), not the API server. One
read goes to the API server: the job, when a pod of it is first seen ended with its end not yet
recorded (it still holds our finalizer) and the store's job lacks that pod's last words (a
`stopReason` for its attempt: a pod killed without a word, or a watch behind). A pod
saves its last checkpoint (how it stopped) before it ends, but the job's watch and the pods'
watch are two streams, so the store may know of the end before it knows of the last words; the
job read after the end was seen holds them (an Isolated stop taken for a bare exit 75 would
count as an interruption). Until the pods' first list is in, no reconcile starts: a pod not yet
listed must not be taken for a lost one. The other kinds' lists are not waited for (after a
restart among thousands of jobs they come many seconds later, and pods that ended meanwhile
must not wait for them): until the jobs' is in, the job is read from the API server, and until
an owned kind's is in, the executor reads its objects there too.

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

from continuable.names import KIND, RESTART_FROM_STEP_ANNOTATION

from . import planning, priorities, queueing, relaunching
from .caching import WORKLOAD, Store
from .classifying import is_terminal
from .cluster import ApiError, ClusterApi
from .drafting import FINISHED, attempt_of, has_finalizer
from .executing import Executor, Stop
from .metrics import OperatorMetrics
from .ownership import controlled_by
from .scheduling import Scheduler

log = logging.getLogger(__name__)
Object = dict[str, Any]
Key = tuple[str, str]
# After a failed reconcile, retry after 1 s, doubling with each failure in a row up to a minute:
# quick after a blip, gentle on an API server that is down or on a job that keeps hitting a bug.
ERROR_RETRY_SECONDS = 1.0
ERROR_RETRY_MAX_SECONDS = 60.0
# Threads that run reconciles: enough that a few slow ones (a launch makes several writes) do not
# hold up the others; few, since the API rate limit is shared anyway and every thread that
# waits for the GIL after its answer adds to every other's latency.
REQUEUE_WORKERS = 8
BACKGROUND_WORKERS = 1


def error_retry(failures: int) -> float:
    """Seconds before retrying after the `failures`-th failed reconcile in a row."""
    doublings = min(failures - 1, 32)  # bounded: a float of 2**n overflows past n = 1023
    return min(ERROR_RETRY_SECONDS * 2.0**doublings, ERROR_RETRY_MAX_SECONDS)


# How long a reconcile waits for the store's first lists before it gives up and retries.
SYNC_WAIT_SECONDS = 10.0


# Where each kind of priority class a queued job may name is read: (version, plural).
PRIORITY_CLASSES = {
    "WorkloadPriorityClass": (queueing.VERSION, "workloadpriorityclasses"),
    "PriorityClass": ("v1", "priorityclasses"),
}


class NotSynced(Exception):
    """The store's first lists are not in yet."""


@dataclass
class _Slot:
    """A job's lock, the reconciles that hold or wait for it, its failures in a row, and the
    UIDs of its pods seen ended (the job was read fresh after each)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    failures: int = 0
    ended: set[str] = field(default_factory=set)


def _last_words_in(job: Object | None, pod: Object) -> bool:
    """Whether the job holds the ended pod's final checkpoint: the SDK writes a `stopReason`
    only in its last write."""
    checkpoint = ((job or {}).get("status") or {}).get("checkpoint") or {}
    return checkpoint.get("attempt") == attempt_of(pod) and bool(checkpoint.get("stopReason"))


class Reconciler:
    def __init__(
        self,
        api: ClusterApi,
        store: Store,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: OperatorMetrics | None = None,
        requeue_workers: int = REQUEUE_WORKERS,
        monotonic: Callable[[], float] = time.monotonic,
        priority_boost: bool = False,
    ) -> None:
        """`requeue_workers=0` and a fake `monotonic` let a test drive the requeues by hand.
        `priority_boost`: queued jobs' Workloads get Kueue's priority boost from the age of
        their checkpoint (--kueue-priority-boost)."""
        self.priority_boost = priority_boost
        self.api = api
        self.store = store
        self.clock = clock
        self.metrics = metrics or OperatorMetrics()
        self.scheduler: Scheduler[Key] = Scheduler(
            lambda key: self.reconcile(*key), workers=requeue_workers, clock=monotonic
        )
        # Work that may wait (finished jobs looked at after a start): its own queue and worker,
        # so thousands of it never stand between a pod's end and its job's reconcile.
        self.background: Scheduler[Key] = Scheduler(
            lambda key: self.reconcile(*key),
            workers=min(requeue_workers, BACKGROUND_WORKERS),
            clock=monotonic,
            name="background",
        )
        self.executor = Executor(api, store, clock=lambda: self.clock(), metrics=self.metrics)
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
                self.background.cancel(key)
                began = time.monotonic()
                try:
                    retry, gone = self._reconcile(namespace, name, began, slot)
                except Exception as err:
                    slot.failures += 1
                    retry = error_retry(slot.failures)
                    # An API failure is the cluster's weather; anything else is a bug to show.
                    weather = isinstance(err, ApiError | NotSynced)
                    report = log.warning if weather else log.exception
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

    def schedule(
        self, namespace: str, name: str, delay: float, *, background: bool = False
    ) -> None:
        """Reconcile after `delay` seconds, unless one is due sooner; `background`: behind
        every other reconcile (in a queue of its own)."""
        (self.background if background else self.scheduler).schedule((namespace, name), delay)

    def stop(self) -> None:
        self.scheduler.stop()
        self.background.stop()

    def _reconcile(
        self, namespace: str, name: str, began: float, slot: _Slot
    ) -> tuple[float | None, bool]:
        """Seconds until the next reconcile (None: none needed), and whether the job is gone
        with nothing left to do for it."""
        if not self.store.wait_synced(("Pod",), SYNC_WAIT_SECONDS):
            raise NotSynced("the first list of the pods is not in yet")
        pods = self.store.job_objects("Pod", namespace, name)
        # Ended pods still holding our finalizer: their end is not recorded yet.
        ended = [p for p in pods if is_terminal(p) and has_finalizer(p)]
        job = self.store.get(KIND, namespace, name)
        unheard = [
            p
            for p in ended
            if p["metadata"].get("uid") not in slot.ended and not _last_words_in(job, p)
        ]
        if job is None or unheard or not self.store.synced(KIND):
            job = self._read_job(namespace, name, unheard)
        slot.ended = {str(p["metadata"].get("uid")) for p in ended}
        if job is None:
            result = planning.plan_orphans(pods)
        else:
            queue = self._queue(job)
            result = planning.plan(
                job, pods, self.clock(), shared_with=self._sharer(job), queue=queue
            )
        try:
            self.executor.execute(job, pods, result, began)
        except Stop as stop:
            return stop.retry_after, False
        return result.requeue_after, job is None and not result.actions

    def _read_job(self, namespace: str, name: str, unheard: list[Object]) -> Object | None:
        """The job from the API server: first from its watch cache, which answers at once
        where etcd, right after a restart among thousands of jobs, answered a read in seconds
        (issue 24); then from etcd if that copy is missing or lacks an ended pod's last words,
        which the pod may have written a moment before it ended."""
        job = self.executor.fresh_job(namespace, name, cached=True)
        if job is not None and all(_last_words_in(job, p) for p in unheard):
            return job
        return self.executor.fresh_job(namespace, name)

    def _queue(self, job: Object) -> queueing.Queue | None:
        """A job Kueue queues (--kueue, and the job's queue-name label): its Workload from the
        store; the ResourceFlavors of its admission while a pod may have to be launched (the
        job does not run yet); the value of its priority class while the Workload is to be
        made (one that does not exist keeps the job queued, saying so)."""
        name = queueing.queue_name(job)
        if name is None or WORKLOAD not in self.store.kinds:
            return None
        if not self.store.wait_synced((WORKLOAD,), SYNC_WAIT_SECONDS):
            # Not yet listed is not gone: read as gone, it would stop the job's running pod.
            raise NotSynced("the first list of the Workloads is not in yet")
        metadata = job["metadata"]
        found = self.store.job_objects(WORKLOAD, metadata["namespace"], metadata["name"])
        workload = next((w for w in found if controlled_by(w, metadata["uid"])), None)
        if workload is None:
            wanted = priorities.priority_class_wanted(job)
            priority = self._priority(wanted) if wanted is not None else None
            if wanted is not None and priority is None:
                missing = priorities.missing_class(wanted)
                return queueing.Queue(name, None, {}, None, unresolved=missing)
            return queueing.Queue(name, None, {}, priority)
        flavors: dict[str, Object] = {}
        running = (job.get("status") or {}).get("phase") == "Running"
        if queueing.is_admitted(workload) and not running:
            for flavor in queueing.flavors_of(workload):
                read = self.api.get_cluster_object(
                    queueing.GROUP, queueing.VERSION, "resourceflavors", flavor
                )
                if read is not None:
                    flavors[flavor] = read
        return queueing.Queue(name, workload, flavors, boost=self.priority_boost)

    def _priority(self, wanted: tuple[str, str, str]) -> priorities.Priority | None:
        """The priority class the job names, resolved to its value; None if it does not exist."""
        group, kind, name = wanted
        version, plural = PRIORITY_CLASSES[kind]
        found = self.api.get_cluster_object(group, version, plural, name)
        if found is None:
            return None
        return priorities.Priority(group, kind, name, int(found.get("value") or 0))

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
