"""What a change the store takes asks of the reconciler, called as the store calls its listener."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from continuable_operator.handlers import (
    FINISHED_RESUME_DELAY_SECONDS,
    job_matters,
    on_store_change,
    pod_matters,
)


def _job(phase: str | None = "Running", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "report", "namespace": "batch", "generation": 1, **metadata},
        "spec": {},
        "status": {"phase": phase} if phase else {},
    }


@pytest.mark.parametrize("phase", ["Running", "Pending", "Interrupted", None])
def test_at_start_up_an_unfinished_job_is_reconciled_at_once(phase: str | None) -> None:
    reconciler = mock.Mock()
    on_store_change(reconciler)("ContinuableJob", "LISTED", None, _job(phase))
    reconciler.schedule.assert_called_once_with("batch", "report", 0)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_at_start_up_a_finished_job_waits_behind_the_running_ones(phase: str) -> None:
    reconciler = mock.Mock()
    on_store_change(reconciler)("ContinuableJob", "LISTED", None, _job(phase))
    reconciler.schedule.assert_called_once_with(
        "batch", "report", FINISHED_RESUME_DELAY_SECONDS, background=True
    )


@pytest.mark.parametrize(
    "asked",
    [
        {"deletionTimestamp": "2026-12-03T09:00:00Z"},
        {"annotations": {"continuable.dev/restart-from-step": "fetch"}},
    ],
)
def test_at_start_up_a_finished_job_asked_for_something_is_reconciled_at_once(
    asked: dict[str, Any],
) -> None:
    """Deleted, or restarted, while the operator was away: that is news, not a wait for a TTL."""
    reconciler = mock.Mock()
    on_store_change(reconciler)("ContinuableJob", "LISTED", None, _job("Succeeded", **asked))
    reconciler.schedule.assert_called_once_with("batch", "report", 0)


CHECKPOINTED = {**_job(), "status": {"phase": "Running", "checkpoint": {"steps": []}}}


@pytest.mark.parametrize(
    ("event", "old", "new", "matters"),
    [
        ("ADDED", None, _job(None), True),
        ("DELETED", _job(), _job(), True),
        ("MODIFIED", _job(), _job(generation=2), True),  # the spec changed
        ("MODIFIED", _job(), _job(deletionTimestamp="2026-12-03T09:00:00Z"), True),
        ("MODIFIED", _job(), _job(annotations={"continuable.dev/restart-from-step": "a"}), True),
        ("MODIFIED", _job(), _job(labels={"team": "b"}), True),
        # A checkpoint (every interval, every running job) or the operator's own status write.
        ("MODIFIED", _job(), CHECKPOINTED, False),
        ("MODIFIED", _job("Pending"), _job("Running"), False),
        # kopf's bookkeeping on jobs made before the operator had watches of its own.
        ("MODIFIED", _job(), _job(annotations={"kopf.continuable.dev/last-handled": "{}"}), False),
        # A relist after the watch fell behind: only what changed where the planner looks.
        ("LISTED", _job(), CHECKPOINTED, False),
        ("LISTED", _job(), _job(generation=2), True),
    ],
)
def test_a_job_is_reconciled_only_when_it_changes_where_the_planner_looks(
    event: str, old: Any, new: Any, matters: bool
) -> None:
    assert job_matters(event, old, new) == matters
    reconciler = mock.Mock()
    on_store_change(reconciler)("ContinuableJob", event, old, new)
    assert reconciler.schedule.called == matters
    if matters:
        reconciler.schedule.assert_called_once_with("batch", "report", 0)
    # Every change is observed for the metrics, a checkpoint too.
    reconciler.metrics.observe_job.assert_called_once_with(new, event)


def _pod(phase: str = "Running", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "report-1",
            "namespace": "batch",
            "labels": {"continuable.dev/job": "report"},
            "finalizers": ["continuable.dev/tracking"],
            **metadata,
        },
        "spec": {"nodeName": "node-a"},
        "status": {"phase": phase, "conditions": []},
    }


@pytest.mark.parametrize(
    ("event", "old", "new", "matters"),
    [
        ("MODIFIED", _pod("Pending"), _pod("Running"), True),
        ("MODIFIED", _pod("Running"), _pod("Failed"), True),
        ("MODIFIED", _pod(), _pod(deletionTimestamp="2026-11-27T09:00:00Z"), True),
        ("MODIFIED", _pod(), _pod(finalizers=[]), True),
        # A condition or a container status changing within a phase: nothing to decide.
        (
            "MODIFIED",
            _pod(),
            {**_pod(), "status": {"phase": "Running", "podIP": "10.0.0.9"}},
            False,
        ),
        ("DELETED", _pod(), _pod(), True),
        ("ADDED", None, _pod("Pending"), True),
        # Found by the first list: only an end or a deletion waiting for us needs a reconcile
        # (the jobs' first list reconciles every unfinished job).
        ("LISTED", None, _pod("Running"), False),
        ("LISTED", None, _pod("Failed"), True),
        ("LISTED", None, _pod("Failed", finalizers=[]), False),
        ("LISTED", None, _pod(deletionTimestamp="2026-11-27T09:00:00Z"), True),
    ],
)
def test_a_pod_event_is_reconciled_only_when_it_changes_what_the_planner_acts_on(
    event: str, old: Any, new: Any, matters: bool
) -> None:
    assert pod_matters(event, old, new) == matters


def test_a_pod_event_that_matters_schedules_its_job_and_no_other_kind_does() -> None:
    reconciler = mock.Mock()
    changed = on_store_change(reconciler)
    changed("Pod", "MODIFIED", _pod("Running"), _pod("Failed"))
    changed("ConfigMap", "MODIFIED", None, _pod("Failed"))
    reconciler.schedule.assert_called_once_with("batch", "report", 0)
