"""Loading a run folder: the formats the harness writes, and the damage a chaos run does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.soak.judges.accounting import parse_metrics
from tests.soak.judges.faults import boundaries
from tests.soak.records import AuditEvent, load, parse_ledger

from .conftest import OPERATOR, fault, job, operator_raise, records


def test_a_glued_line_keeps_the_second_writer() -> None:
    text = (
        "j,0,1,10,1.0\n"
        "j,1,1,10,1.5j,1,2,11,3.0\n"  # attempt 1 killed mid-line; attempt 2 appended to it
        "j,2,2,11,3.5,uid-1\n"
        "j,3,2,11,4."  # killed mid-line, at the end
    )
    lines, bad = parse_ledger(text, job="j")
    assert [(x.what, x.attempt, x.t, x.uid) for x in lines] == [
        ("0", 1, 1.0, None),
        ("1", 2, 3.0, None),
        ("2", 2, 3.5, "uid-1"),
    ]
    assert bad == 2


def test_a_short_glued_fragment_is_not_read_as_a_line() -> None:
    lines, bad = parse_ledger("j,1j,13,4,99,1700.5\n", job="j")
    assert [(x.what, x.attempt, x.pid) for x in lines] == [("13", 4, 99)]
    assert bad == 1


def test_metrics() -> None:
    text = (
        "# HELP continuable_interruptions_total Attempts ended by an interruption.\n"
        "# TYPE continuable_interruptions_total counter\n"
        'continuable_interruptions_total{reason="PodDeleted"} 3.0\n'
        'continuable_interruptions_total{reason="a \\"quoted\\" one"} 1.0\n'
        "continuable_attempts_total 7.0\n"
    )
    samples = parse_metrics(text)
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("continuable_interruptions_total", {"reason": "PodDeleted"}, 3.0),
        ("continuable_interruptions_total", {"reason": 'a "quoted" one'}, 1.0),
        ("continuable_attempts_total", {}, 7.0),
    ]


FAULT = {
    "t": 2.0,
    "kind": "sigkill",
    "job": "j",
    "pod": "j-1",
    "attempt": 1,
    "node": "n1",
    "reached_pod": True,
    "graceful": False,
    "detail": "",
}
JOB = {
    "name": "j",
    "uid": "u",
    "items": 2,
    "interval_seconds": 1,
    "steps": ["fetch", "items", "notify"],
    "created": 0.5,
    "final": None,
}
POD = {
    "t": 1.0,
    "type": "ADDED",
    "name": "j-1",
    "uid": "p",
    "job": "j",
    "attempt": 1,
    "job_uid": "u",
    "phase": "Pending",
    "node": None,
    "deleting": False,
    "finalizers": ["continuable.dev/tracking"],
}


def _jsonl(path: Path, rows: list[dict[str, Any]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def test_load_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "j.csv").write_text("j,fetch,1,10,1.0\nj,0,1,10,1.2\n")
    # The harness was killed in the middle of its last fault line.
    _jsonl(tmp_path / "faults.jsonl", [FAULT], tail='{"t": 3.0, "kind": "sigk')
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": [JOB]}))
    _jsonl(tmp_path / "pods.jsonl", [POD])
    _jsonl(tmp_path / "nodes.jsonl", [{"t": 0.0, "node": "n1", "ready": True}])
    complete = {
        "stage": "ResponseComplete",
        "verb": "patch",
        "user": {"username": OPERATOR},
        "objectRef": {"resource": "continuablejobs", "subresource": "status", "name": "j"},
        "responseStatus": {"code": 200},
        "responseObject": {"metadata": {"uid": "u", "resourceVersion": "42"}},
        "requestReceivedTimestamp": "2026-01-01T00:00:00.000100Z",
        "stageTimestamp": "2026-01-01T00:00:00.500000Z",
    }
    _jsonl(tmp_path / "audit.log", [{**complete, "stage": "ResponseStarted"}, complete])
    (tmp_path / "metrics.txt").write_text("continuable_failures_total 1\n")
    (tmp_path / "operator-0.log").write_text("line one\n")
    (tmp_path / "operator-1.log").write_text("line two\n")

    run = load(tmp_path)

    assert [(f.kind, f.attempt, f.graceful) for f in run.faults] == [("sigkill", 1, False)]
    assert run.skipped == {"faults": 1}
    assert [x.what for x in run.ledger["j"]] == ["fetch", "0"]
    assert run.jobs[0].steps == ("fetch", "items", "notify")
    assert run.jobs[0].final is None
    assert run.pods[0].finalizers == ("continuable.dev/tracking",)
    assert run.nodes[0].ready
    (event,) = run.audit
    assert event.rv == 42
    assert event.accepted
    assert event.t - event.received == pytest.approx(0.4999)
    assert run.metrics == "continuable_failures_total 1\n"
    assert run.operator_log == ["line one", "line two"]
    assert run.window() == (0.0, event.t)


def _acting_on(event: AuditEvent, nonce: str, attempt: int) -> AuditEvent:
    """`event` as the operator's write that acted on the restart request `nonce`."""
    last = {"step": "*", "nonce": nonce, "attempt": attempt, "time": "1970-01-01T00:00:10Z"}
    ops = [*event.request, {"op": "add", "path": "/status/lastRestart", "value": last}]
    return replace(event, request=ops)


def _removing_the_checkpoint(event: AuditEvent) -> AuditEvent:
    return replace(event, request=[*event.request, {"op": "remove", "path": "/status/checkpoint"}])


def test_a_restart_boundary_comes_from_the_write_that_records_its_nonce() -> None:
    # The fault names no attempt; the operator's write that acted on its request raised to 5.
    run = records(
        faults=[fault("restart", 10.0, None, detail="from_step=items nonce=a1")],
        audit=[operator_raise(9.0, 4), _acting_on(operator_raise(10.5, 5), "a1", 5)],
    )
    (boundary,) = boundaries(run, job())
    assert (boundary.step, boundary.before) == ("items", 4)


def test_each_restart_finds_its_own_write_even_one_that_reset_no_checkpoint() -> None:
    # A restart from the first step with no checkpoint saved yet writes no checkpoint op; the
    # next restart's write must not be taken for it.
    run = records(
        faults=[
            fault("restart", 10.0, 2, detail="from_step=* nonce=a1"),
            fault("restart", 20.0, 4, detail="from_step=* nonce=b2"),
        ],
        audit=[
            _acting_on(operator_raise(10.5, 3), "a1", 3),
            operator_raise(15.0, 4),
            _removing_the_checkpoint(_acting_on(operator_raise(20.5, 5), "b2", 5)),
        ],
    )
    assert [b.before for b in boundaries(run, job())] == [2, 4]


def test_a_restart_of_a_suspended_job_begins_its_run_at_the_next_launch() -> None:
    # Suspended: the write that acts on the request raises no attempt; the run begins at 3.
    acted = _acting_on(operator_raise(10.5, 2), "a1", 3)
    acted = replace(acted, request=[op for op in acted.request if op["path"] != "/status/attempt"])
    run = records(
        faults=[fault("restart", 10.0, None, detail="from_step=* nonce=a1")], audit=[acted]
    )
    assert [b.before for b in boundaries(run, job())] == [2]
