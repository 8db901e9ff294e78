"""The operator's metrics follow what the reconciler wrote and what it saw."""

from __future__ import annotations

import time

from prometheus_client import generate_latest

from continuable_operator.metrics import OperatorMetrics


def _value(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def test_an_interruption_and_a_relaunch() -> None:
    metrics = OperatorMetrics()
    before = {"attempt": 1, "interruptions": 0, "attempts": [{"attempt": 1, "outcome": "Running"}]}
    recorded = {
        "interruptions": 1,
        "attempts": [{"attempt": 1, "outcome": "Interrupted", "reason": "EvictionByEvictionAPI"}],
    }
    metrics.observe_status(before, recorded)
    launched = {"attempt": 2, "resumptions": 1, "savedSeconds": 42.5}
    metrics.observe_status({**before, **recorded}, launched)
    metrics.observe_launch(2, time.monotonic() - 0.3)
    assert _value(metrics, "continuable_interruptions_total", reason="EvictionByEvictionAPI") == 1
    assert _value(metrics, "continuable_failures_total", reason="EvictionByEvictionAPI") == 0
    assert _value(metrics, "continuable_resumptions_total") == 1
    assert _value(metrics, "continuable_work_saved_seconds_total") == 42.5
    assert _value(metrics, "continuable_attempts_total") == 1
    assert _value(metrics, "continuable_relaunch_latency_seconds_count") == 1
    assert _value(metrics, "continuable_relaunch_latency_seconds_sum") >= 0.3


def test_a_finished_job_is_counted_with_its_reason_and_duration() -> None:
    metrics = OperatorMetrics()
    metrics.observe_status(
        {"phase": "Running", "startTime": "2026-11-27T08:00:00Z"},
        {
            "phase": "Failed",
            "completionTime": "2026-11-27T08:10:00Z",
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
        },
    )
    assert (
        _value(
            metrics, "continuable_jobs_finished_total", phase="Failed", reason="DeadlineExceeded"
        )
        == 1
    )
    assert _value(metrics, "continuable_job_duration_seconds_sum", phase="Failed") == 600


def test_job_events_set_phases_and_count_checkpoint_writes_without_an_api_call() -> None:
    metrics = OperatorMetrics()
    job = {
        "metadata": {"uid": "u"},
        "status": {"phase": "Running", "checkpoint": {"updatedAt": "t1"}},
    }
    metrics.observe_job(job, "ADDED")
    metrics.observe_job(
        {**job, "status": {"phase": "Running", "checkpoint": {"updatedAt": "t2"}}}, "MODIFIED"
    )
    assert _value(metrics, "continuable_jobs", phase="Running") == 1
    assert _value(metrics, "continuable_checkpoint_updates_total") == 1
    metrics.observe_job(job, "DELETED")
    assert _value(metrics, "continuable_jobs", phase="Running") == 0
    assert b'continuable_jobs{phase="Succeeded"} 0.0' in generate_latest(metrics.registry)
