"""The kopf handlers are thin: what each one asks of the reconciler, called as kopf would."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from continuable_operator.handlers import (
    FINISHED_RESUME_DELAY_SECONDS,
    build_registry,
    on_store_change,
    pod_matters,
)


def _handler(reconciler: mock.Mock, registry_attr: str, suffix: str) -> Any:
    registry = build_registry(reconciler)
    handlers = getattr(registry, registry_attr).get_all_handlers()
    return next(h.fn for h in handlers if h.id.endswith(suffix))


@pytest.mark.parametrize("phase", ["Running", "Pending", "Interrupted", None])
def test_at_start_up_an_unfinished_job_is_reconciled_at_once(phase: str | None) -> None:
    reconciler = mock.Mock()
    resumed = _handler(reconciler, "_changing", "job_resumed")
    resumed(namespace="batch", name="report", status={"phase": phase} if phase else {})
    reconciler.reconcile.assert_called_once_with("batch", "report")
    reconciler.schedule.assert_not_called()


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_at_start_up_a_finished_job_waits_behind_the_running_ones(phase: str) -> None:
    reconciler = mock.Mock()
    resumed = _handler(reconciler, "_changing", "job_resumed")
    resumed(namespace="batch", name="report", status={"phase": phase})
    reconciler.reconcile.assert_not_called()
    reconciler.schedule.assert_called_once_with(
        "batch", "report", FINISHED_RESUME_DELAY_SECONDS, background=True
    )


@pytest.mark.parametrize(
    ("event", "metadata", "scheduled"),
    [
        ("DELETED", {}, True),
        ("MODIFIED", {"deletionTimestamp": "2026-11-27T09:00:00Z"}, True),
        ("MODIFIED", {}, False),
    ],
)
def test_a_job_deleted_or_being_deleted_is_reconciled(
    event: str, metadata: dict[str, Any], scheduled: bool
) -> None:
    reconciler = mock.Mock()
    observed = _handler(reconciler, "_watching", "job_observed")
    body = {"metadata": {"name": "report", "namespace": "batch", **metadata}}
    observed(
        event={"type": event, "object": body},
        body=body,
        type=event,
        namespace="batch",
        name="report",
    )
    assert reconciler.schedule.called == scheduled
    if scheduled:
        reconciler.schedule.assert_called_once_with("batch", "report", 0)


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
        # (kopf's resume reconciles every job).
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
