"""The pod watch judge: one pod of a job at a time, an attempt number used once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.soak.judges import pods as judge
from tests.soak.records import Records

from .conftest import node, pod, records


def clean() -> Records:
    return records(
        pods=[
            pod(1.0, 1, "Pending", type="ADDED"),
            pod(2.0, 1, "Running"),
            pod(5.0, 1, "Running", deleting=True),
            pod(6.0, 1, "Failed", deleting=True),
            pod(6.1, 2, "Pending", type="ADDED", node=None),
            pod(6.2, 1, "Failed", type="DELETED"),
            pod(6.5, 2, "Running", node="n2"),
            pod(9.0, 2, "Succeeded", node="n2"),
        ]
    )


def overlap_on_ready_nodes() -> Records:
    return records(
        pods=[
            pod(1.0, 1, "Running", type="ADDED"),
            pod(5.0, 1, "Running", deleting=True),
            pod(5.5, 2, "Pending", type="ADDED", node="n2"),
            pod(6.0, 1, "Failed", deleting=True),
        ]
    )


def replacement_before_the_old_pod_is_bound() -> Records:
    # An unbound replacement counts as on a Ready node: it may start any moment.
    return records(
        pods=[
            pod(1.0, 1, "Running", type="ADDED"),
            pod(5.5, 2, "Pending", type="ADDED", node=None),
            pod(6.0, 1, "Succeeded"),
        ]
    )


def overlap_on_a_not_ready_node() -> Records:
    # The old pod's node is partitioned: it is declared Lost and replaced while still shown.
    return records(
        nodes=[node(0.0, "n1", True), node(0.0, "n2", True), node(3.0, "n1", False)],
        pods=[
            pod(1.0, 1, "Running", type="ADDED"),
            pod(4.0, 1, "Running", deleting=True),
            pod(20.0, 2, "Running", type="ADDED", node="n2"),
            pod(25.0, 1, "Running", type="DELETED"),
        ],
    )


def node_comes_back_while_both_run() -> Records:
    return records(
        nodes=[node(3.0, "n1", False), node(22.0, "n1", True)],
        pods=[
            pod(1.0, 1, "Running", type="ADDED"),
            pod(20.0, 2, "Running", type="ADDED", node="n2"),
            pod(25.0, 1, "Failed"),
        ],
    )


def two_pods_one_attempt() -> Records:
    return records(
        pods=[
            pod(1.0, 1, "Running", type="ADDED", uid="first"),
            pod(2.0, 1, "Failed", uid="first"),
            pod(2.1, 1, "Failed", type="DELETED", uid="first"),
            pod(3.0, 1, "Running", type="ADDED", uid="second"),
        ]
    )


def attempt_goes_down() -> Records:
    return records(
        pods=[
            pod(1.0, 3, "Running", type="ADDED"),
            pod(2.0, 3, "Succeeded"),
            pod(3.0, 2, "Running", type="ADDED"),
        ]
    )


def old_uid_still_running() -> Records:
    # The job was re-created: its new uid's pod must wait for the old uid's.
    return records(
        pods=[
            pod(1.0, 4, "Running", type="ADDED", job_uid="old"),
            pod(2.0, 4, "Running", deleting=True, job_uid="old"),
            pod(2.5, 1, "Running", type="ADDED", job_uid="new", node="n2"),
        ]
    )


def other_jobs_run_together() -> Records:
    return records(
        pods=[
            pod(1.0, 1, "Running", type="ADDED"),
            pod(1.0, 1, "Running", type="ADDED", job="k", job_uid="uid-k"),
        ]
    )


CASES: list[tuple[str, Callable[[], Records], str | None]] = [
    ("clean run", clean, None),
    ("two pods on Ready nodes", overlap_on_ready_nodes, "two pods of j"),
    ("an unbound replacement", replacement_before_the_old_pod_is_bound, "two pods of j"),
    ("the old pod on a NotReady node", overlap_on_a_not_ready_node, None),
    ("the node is Ready again while both run", node_comes_back_while_both_run, "two pods"),
    ("two pods of one attempt", two_pods_one_attempt, "has two pods"),
    ("an attempt number going down", attempt_goes_down, "after attempt 3"),
    ("an old uid's pod with the new uid's", old_uid_still_running, "two pods of j"),
    ("two jobs, a pod each", other_jobs_run_together, None),
]


@pytest.mark.parametrize(("build", "violation"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pods(build: Callable[[], Records], violation: str | None) -> None:
    verdict = judge.judge(build())
    if violation is None:
        assert verdict.held, verdict.evidence
    else:
        assert not verdict.held
        assert any(violation in line for line in verdict.evidence), verdict.evidence


def test_an_excused_overlap_is_counted() -> None:
    verdict = judge.judge(overlap_on_a_not_ready_node())
    assert verdict.figures["overlaps_excused_not_ready"] == 1
    assert verdict.figures["overlaps"] == 0
