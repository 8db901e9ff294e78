"""The operator's Prometheus metrics (prefix `continuable_`, base units, `_total` counters).

The reconciler reports what it wrote (`observe_status`), the checkpoint handler what it saw
(`observe_job`); nothing here calls the API. Served on their own port at /metrics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PHASES = ("Pending", "Running", "Interrupted", "Suspended", "Succeeded", "Failed")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Gauge("continuable_jobs", "ContinuableJobs by phase.", ["phase"], registry=r)
        self.attempts = Counter(
            "continuable_attempts", "Attempts launched (pods created).", registry=r
        )
        self.interruptions = Counter(
            "continuable_interruptions",
            "Attempts ended by an interruption, by reason.",
            ["reason"],
            registry=r,
        )
        self.failures = Counter(
            "continuable_failures",
            "Attempts ended by a counted failure, by reason.",
            ["reason"],
            registry=r,
        )
        self.resumptions = Counter(
            "continuable_resumptions", "Attempts that started from a checkpoint.", registry=r
        )
        self.finished = Counter(
            "continuable_jobs_finished",
            "Jobs that reached Succeeded or Failed, by phase and reason.",
            ["phase", "reason"],
            registry=r,
        )
        self.saved = Counter(
            "continuable_work_saved_seconds",
            "Seconds of completed work that resumptions did not redo.",
            registry=r,
        )
        self.checkpoints = Counter(
            "continuable_checkpoint_updates",
            "Checkpoint writes by job pods, as observed.",
            registry=r,
        )
        self.relaunch_latency = Histogram(
            "continuable_relaunch_latency_seconds",
            "From an attempt's end being observed to its replacement pod being created.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.duration = Histogram(
            "continuable_job_duration_seconds",
            "From a job's first launch to its end.",
            ["phase"],
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=r,
        )
        self.reconcile_errors = Counter(
            "continuable_reconcile_errors", "Reconciles that failed and were retried.", registry=r
        )
        self.reconcile_duration = Histogram(
            "continuable_reconcile_duration_seconds",
            "Time taken by one reconcile.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        for phase in PHASES:
            self.jobs.labels(phase)
        self._phases: dict[str, str] = {}
        self._checkpoints: dict[str, str] = {}

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def observe_job(self, body: Mapping[str, Any], event_type: str | None) -> None:
        """A job's change, as the store takes it: phases and checkpoint writes, with no API call."""
        uid = str((body.get("metadata") or {}).get("uid"))
        status = body.get("status") or {}
        # Runs for every checkpoint write of every job: only the phase that changed is touched.
        previous = self._phases.get(uid)
        if event_type == "DELETED":
            self._phases.pop(uid, None)
            self._checkpoints.pop(uid, None)
            current = None
        else:
            current = status.get("phase") or "Pending"
            self._phases[uid] = current
            written = (status.get("checkpoint") or {}).get("updatedAt")
            if written and self._checkpoints.get(uid) not in (None, written):
                self.checkpoints.inc()
            if written:
                self._checkpoints[uid] = written
        if previous != current:
            if previous in PHASES:
                self.jobs.labels(previous).dec()
            if current in PHASES:
                self.jobs.labels(current).inc()

    def observe_launch(self, attempt: int, observed_at: float) -> None:
        """A pod was created for `attempt`; `observed_at` is when the reconcile began."""
        self.attempts.inc()
        if attempt > 1:
            self.relaunch_latency.observe(max(time.monotonic() - observed_at, 0.0))

    def observe_reconcile(self, seconds: float, *, failed: bool) -> None:
        self.reconcile_duration.observe(seconds)
        if failed:
            self.reconcile_errors.inc()

    def observe_status(self, before: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        """What a status write by the reconciler changed."""

        def delta(name: str) -> float:
            if name not in fields:
                return 0.0
            return float(fields[name] or 0) - float(before.get(name) or 0)

        records = fields.get("attempts") or []
        previous = {r.get("attempt"): r for r in before.get("attempts") or []}
        for record in records:
            old = previous.get(record.get("attempt")) or {}
            if old.get("outcome", "Running") != "Running" or record.get("outcome") == "Running":
                continue
            reason = str(record.get("reason") or "Unknown")
            if record.get("outcome") == "Interrupted" and delta("interruptions") > 0:
                self.interruptions.labels(reason).inc()
            elif record.get("outcome") == "Failed" and delta("failures") > 0:
                self.failures.labels(reason).inc()
        if delta("resumptions") > 0:
            self.resumptions.inc(delta("resumptions"))
        if delta("savedSeconds") > 0:
            self.saved.inc(delta("savedSeconds"))
        phase = fields.get("phase")
        if phase in ("Succeeded", "Failed") and before.get("phase") != phase:
            reason = _finish_reason(fields.get("conditions") or [], phase)
            self.finished.labels(phase, reason).inc()
            started = _seconds(before.get("startTime") or fields.get("startTime"))
            ended = _seconds(fields.get("completionTime"))
            if started is not None and ended is not None:
                self.duration.labels(phase).observe(max(ended - started, 0.0))


def _finish_reason(conditions: list[Mapping[str, Any]], phase: str) -> str:
    kind = "Complete" if phase == "Succeeded" else "Failed"
    return str(next((c.get("reason") for c in conditions if c.get("type") == kind), phase))


def _seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
