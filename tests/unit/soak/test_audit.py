"""The audit judge: fencing, least privilege, the write budget, hot loops."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.soak.judges import audit as judge
from tests.soak.records import AuditEvent, Records

from .conftest import OPERATOR, audit, job, operator_raise, records, sa, sdk_result, sdk_status


def two_attempts() -> list[AuditEvent]:
    return [
        operator_raise(1.0, 1, rv=10),
        sdk_status(2.0, 1, rv=11),
        sdk_result(2.5, 1, rv=12),
        sdk_status(3.0, 1, rv=13),
        operator_raise(5.0, 2, rv=20),
        sdk_status(6.0, 2, rv=21),
    ]


def clean() -> Records:
    return records(audit=two_attempts())


def zombie_status_write() -> Records:
    return records(audit=[*two_attempts(), sdk_status(7.0, 1, rv=25)])


def zombie_results_write() -> Records:
    # Between the operator's raise and its update of the ConfigMap's attempt key.
    return records(audit=[*two_attempts(), sdk_result(5.5, 1, rv=20_5)])


def refused_zombie() -> Records:
    return records(audit=[*two_attempts(), sdk_status(7.0, 1, code=422)])


def write_racing_the_raise() -> Records:
    # No resourceVersions: received before the raise completed, so not certainly after it.
    events = [
        operator_raise(1.0, 1),
        operator_raise(5.0, 2),
        sdk_status(5.005, 1),
    ]
    return records(audit=events)


def write_racing_the_raise_with_revisions() -> Records:
    # The same timing, but etcd's order says the write committed after the raise.
    events = [
        operator_raise(1.0, 1, rv=10),
        operator_raise(5.0, 2, rv=20),
        sdk_status(5.005, 1, rv=21),
    ]
    return records(audit=events)


def another_jobs_status() -> Records:
    ops = [{"op": "test", "path": "/status/attempt", "value": 1}]
    write = audit(3.0, sa("k"), name="j", ops=ops, rv=14)
    return records(jobs=[job(), job("k", "uid-k")], audit=[*two_attempts(), write])


def another_jobs_status_refused() -> Records:
    ops = [{"op": "test", "path": "/status/attempt", "value": 1}]
    write = audit(3.0, sa("k"), name="j", ops=ops, code=403)
    return records(jobs=[job(), job("k", "uid-k")], audit=[*two_attempts(), write])


def outside_grants() -> Records:
    write = audit(3.0, sa(), name="j-1", resource="pods", subresource="", verb="delete", rv=14)
    return records(audit=[*two_attempts(), write])


def unfenced() -> Records:
    ops = [{"op": "add", "path": "/status/checkpoint", "value": {}}]
    return records(audit=[*two_attempts(), audit(6.5, sa(), ops=ops, rv=22)])


def pod_claims_other_attempt() -> Records:
    return records(audit=[*two_attempts(), sdk_status(6.5, 2, pod_name="j-1", rv=22)])


def crossed_uids() -> Records:
    # Fenced on the old uid, landed on the new one (the API server's test would refuse it).
    fenced_on_old = sdk_status(6.5, 2).request
    write = audit(6.5, sa(), ops=fenced_on_old, uid="uid-new", rv=22, pod_name="j-2")
    return records(audit=[*two_attempts(), write])


def over_budget() -> Records:
    # interval 5 s: 30 writes in 6 s is a write per item, not per interval.
    writes = [sdk_status(10.0 + i * 0.2, 2, rv=100 + i) for i in range(30)]
    return records(jobs=[job(interval=5.0)], audit=[*two_attempts(), *writes])


def hot_loop() -> Records:
    # The operator patching the job's pod 60 times in 6 s.
    patches = [
        audit(10.0 + i * 0.1, OPERATOR, name="j-2", resource="pods", subresource="", rv=200 + i)
        for i in range(60)
    ]
    return records(audit=[*two_attempts(), *patches])


def relaunch_burst() -> Records:
    # Five attempts in 10 s: 60 writes, but 40 of them the node's pod status patches.
    nodes = [
        audit(10.0 + i * 0.25, "system:node:n-1", name="j-2", resource="pods", rv=300 + i)
        for i in range(40)
    ]
    ours = [
        audit(10.0 + i * 0.5, OPERATOR, name="j-2", resource="pods", subresource="", rv=400 + i)
        for i in range(20)
    ]
    return records(audit=[*two_attempts(), *nodes, *ours])


CASES: list[tuple[str, Callable[[], Records], str | None]] = [
    ("clean run", clean, None),
    ("a zombie's status write accepted", zombie_status_write, "zombie write"),
    ("a zombie's result written before the key moved", zombie_results_write, "zombie write"),
    ("a zombie's write refused", refused_zombie, None),
    ("a write racing the raise, no revisions", write_racing_the_raise, None),
    ("a write after the raise by revision", write_racing_the_raise_with_revisions, "zombie"),
    ("a write to another job", another_jobs_status, "account wrote job j's status"),
    ("a write to another job, refused", another_jobs_status_refused, None),
    ("a write outside the grants", outside_grants, "outside its grants"),
    ("an unfenced write", unfenced, "unfenced write"),
    ("a pod claiming another attempt", pod_claims_other_attempt, "pod of attempt 1"),
    ("a write landing on another uid", crossed_uids, "landed on uid uid-new"),
    ("writes beyond one per interval", over_budget, "more than"),
    ("a hot loop", hot_loop, "hot loop"),
    ("a burst of relaunches, mostly the node's writes", relaunch_burst, None),
]


@pytest.mark.parametrize(("build", "violation"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_audit(build: Callable[[], Records], violation: str | None) -> None:
    verdict = judge.judge(build())
    if violation is None:
        assert verdict.held, verdict.evidence
    else:
        assert not verdict.held
        assert any(violation in line for line in verdict.evidence), verdict.evidence


def test_refused_foreign_writes_are_counted() -> None:
    verdict = judge.judge(another_jobs_status_refused())
    assert verdict.figures["refused_foreign_writes"] == 1


def test_the_current_attempt_is_per_uid() -> None:
    # A re-created job starts again at attempt 1: the old uid's attempt 2 does not fence it.
    events = [
        *two_attempts(),
        operator_raise(20.0, 1, uid="uid-new", rv=40),
        sdk_status(21.0, 1, uid="uid-new", rv=41),
    ]
    jobs = [job(phase=None), job(uid="uid-new", created=15.0)]
    verdict = judge.judge(records(jobs=jobs, audit=events))
    assert verdict.held, verdict.evidence


def test_an_empty_audit_log_is_a_violation() -> None:
    assert not judge.judge(records()).held
