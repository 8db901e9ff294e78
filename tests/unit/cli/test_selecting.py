"""Reading the JOB argument and picking the pod a command acts on."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from continuable.cli.errors import CliError
from continuable.cli.selecting import job_container, job_name, pod_for_logs, pod_to_interrupt

from .conftest import RUNNING, pod


@pytest.mark.parametrize(
    ("reference", "name"),
    [
        ("order-batch", "order-batch"),
        ("cjob/order-batch", "order-batch"),
        ("continuablejob/x", "x"),
        ("continuablejobs/x", "x"),
        ("ContinuableJob/x", "x"),
        ("continuablejobs.continuable.dev/x", "x"),
        ("cjob.continuable.dev/x", "x"),
    ],
)
def test_a_job_is_named_as_kubectl_names_it(reference: str, name: str) -> None:
    assert job_name(reference) == name


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("cj/x", "'cj/x' is not a ContinuableJob; write NAME or cjob/NAME (not cj/...)"),
        ("pod/x-1", "not a ContinuableJob"),
        ("Order_Batch", "'Order_Batch' is not a valid ContinuableJob name"),
        ("cjob/", "'' is not a valid ContinuableJob name"),
        ("x" * 64, "at most 63 characters"),
    ],
)
def test_a_bad_job_reference_is_refused_with_the_reason(reference: str, message: str) -> None:
    with pytest.raises(CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        job_name(reference)


def test_interrupt_picks_the_operators_current_pod() -> None:
    pods = [pod("order-batch-1", 1, "Failed"), pod("order-batch-2", 2)]

    assert pod_to_interrupt(RUNNING, pods)["metadata"]["name"] == "order-batch-2"


def test_without_a_pod_name_in_status_interrupt_picks_the_latest_live_attempt() -> None:
    job = copy.deepcopy(RUNNING)
    del job["status"]["podName"]
    pods = [pod("order-batch-3", 3), pod("order-batch-2", 2, "Succeeded")]

    assert pod_to_interrupt(job, pods)["metadata"]["name"] == "order-batch-3"


@pytest.mark.parametrize(
    ("pods", "message"),
    [
        (
            [pod("order-batch-2", 2, deletionTimestamp="2026-05-04T12:00:00Z")],
            "pod order-batch-2 of job order-batch is already stopping",
        ),
        (
            [pod("order-batch-2", 2, "Pending")],
            "pod order-batch-2 of job order-batch is Pending, not running yet",
        ),
    ],
)
def test_interrupt_refuses_a_pod_that_is_not_running(
    pods: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(CliError, match=message):
        pod_to_interrupt(RUNNING, pods)


@pytest.mark.parametrize(
    ("phase", "hint"),
    [
        ("Succeeded", "it has finished"),
        ("Failed", "it has failed \\(use `continuable restart` to run it again\\)"),
        ("Suspended", "it is suspended"),
        ("Interrupted", "it is between attempts"),
        (None, "the operator has not started one yet \\(phase Pending\\)"),
    ],
)
def test_interrupt_without_a_running_pod_says_why(phase: str | None, hint: str) -> None:
    job = copy.deepcopy(RUNNING)
    job["status"]["phase"] = phase
    ended = [pod("order-batch-1", 1, "Failed"), pod("order-batch-2", 2, "Succeeded")]

    with pytest.raises(CliError, match=f"job order-batch has no running pod to interrupt: {hint}"):
        pod_to_interrupt(job, ended)


def test_logs_default_to_the_current_pod() -> None:
    assert pod_for_logs(RUNNING, [], None) == "order-batch-2"


def test_logs_of_an_attempt_come_from_its_recorded_pod() -> None:
    assert pod_for_logs(RUNNING, [], 1) == "order-batch-1"


def test_logs_of_a_finished_job_come_from_its_latest_pod() -> None:
    job = copy.deepcopy(RUNNING)
    job["status"]["podName"] = None
    assert pod_for_logs(job, [pod("order-batch-1", 1), pod("order-batch-2", 2)], None) == (
        "order-batch-2"
    )
    assert pod_for_logs(job, [], None) == "order-batch-2"  # from the attempt history


def test_logs_of_an_attempt_missing_from_the_history_use_the_pod_naming_rule() -> None:
    job = copy.deepcopy(RUNNING)
    job["status"]["attempt"] = 30
    assert pod_for_logs(job, [], 7) == "order-batch-7"


@pytest.mark.parametrize(
    ("attempt", "message"),
    [(3, "job order-batch has no attempt 3 \\(attempts: 1 to 2\\)"), (0, "no attempt 0")],
)
def test_logs_of_an_attempt_that_never_was_are_an_error(attempt: int, message: str) -> None:
    with pytest.raises(CliError, match=message):
        pod_for_logs(RUNNING, [], attempt)


def test_logs_before_any_attempt_are_an_error() -> None:
    job = {"metadata": {"name": "fresh"}, "status": {}}
    with pytest.raises(CliError, match="job fresh has no pod yet"):
        pod_for_logs(job, [], None)
    with pytest.raises(CliError, match="no attempt has started yet"):
        pod_for_logs(job, [], 1)


def test_the_jobs_container_is_the_first() -> None:
    assert job_container(pod("x-1", 1)) == "job"
    assert job_container({}) is None
