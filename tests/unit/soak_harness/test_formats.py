"""What the soak harness writes for the judges, in the shapes they read: a fault line has
exactly the agreed keys, the detail is `key=value` words a judge can search, and a job's
manifest is what the ledger job and the rollout fault expect."""

from __future__ import annotations

import json
from pathlib import Path

from tests.soak.faults.base import GRACEFUL, FaultLog, words
from tests.soak.jobs import BACKOFF_LIMIT, JOB_SCRIPT, manifest
from tests.soak.records import load
from tests.soak.schedule import ALL_KINDS, Fault, JobPlan

FAULT_KEYS = ["t", "kind", "job", "pod", "attempt", "node", "reached_pod", "graceful", "detail"]
POD = {
    "metadata": {"name": "soak-00-3", "labels": {"continuable.dev/attempt": "3"}},
    "spec": {"nodeName": "soak-node-1"},
}


def test_every_kind_says_whether_it_is_graceful() -> None:
    assert set(GRACEFUL) == set(ALL_KINDS)
    assert not GRACEFUL["sigkill"]
    assert not GRACEFUL["partition"]
    assert GRACEFUL["evict"]


def test_a_fault_line_has_the_agreed_keys_and_the_judges_read_it_back(tmp_path: Path) -> None:
    log = FaultLog(tmp_path)
    log.hit(100.5, "restart", job="soak-00", pod=POD, reached=True, from_step="items_b")
    log.hit(101.0, "operator-kill", reached=False, killed_pids=[12, 13], down_for=1.5)
    log.hit(102.0, "drain", reached=False, node="soak-node-0", drain_exit=0)
    log.skip(Fault(50.0, "sigkill", "job", job="soak-01"), "no running pod")
    log.close()

    rows = [json.loads(line) for line in (tmp_path / "faults.jsonl").read_text().splitlines()]
    assert [list(row) for row in rows] == [FAULT_KEYS] * 3
    assert rows[0] == {
        "t": 100.5,
        "kind": "restart",
        "job": "soak-00",
        "pod": "soak-00-3",
        "attempt": 3,
        "node": "soak-node-1",
        "reached_pod": True,
        "graceful": True,
        "detail": "from_step=items_b",
    }
    assert rows[1]["job"] is None
    assert rows[1]["detail"] == "killed_pids=12,13 down_for=1.500"
    assert rows[2]["node"] == "soak-node-0"
    skipped = json.loads((tmp_path / "skipped.jsonl").read_text())
    assert skipped["kind"] == "sigkill"
    assert skipped["why"] == "no running pod"

    faults = load(tmp_path).faults
    assert [f.kind for f in faults] == ["restart", "operator-kill", "drain"]
    assert faults[0].attempt == 3


def test_detail_words_leave_out_nothing_but_none_and_have_no_spaces() -> None:
    text = words({"a": 1, "b": None, "c": "two words", "d": [], "e": 0.25})
    assert text == "a=1 c=two_words d=- e=0.250"


def test_a_job_manifest_runs_the_ledger_job_with_its_plan() -> None:
    plan = JobPlan("soak-03", items=120, item_seconds=0.25, interval_seconds=4, isolated=True)
    body = manifest(plan, "soak", Path("/run/ledger/soak-03.csv"), version=2)
    spec = body["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["command"] == ["python", JOB_SCRIPT]
    # A rollout changes the first value and nothing else.
    assert container["env"][0] == {"name": "SOAK_TEMPLATE_VERSION", "value": "2"}
    assert env["SOAK_LEDGER"] == "/run/ledger/soak-03.csv"
    assert (env["SOAK_ITEMS"], env["SOAK_ITEM_SECONDS"], env["SOAK_ISOLATED"]) == (
        "120",
        "0.25",
        "1",
    )
    assert spec["checkpoint"] == {"intervalSeconds": 4}
    assert spec["steps"] == ["fetch", "items_a", "items_b", "notify"]
    assert spec["backoffLimit"] == BACKOFF_LIMIT
    assert "maxResumptions" not in spec


def test_a_restart_names_a_step_the_job_has_reported_as_a_person_would() -> None:
    from tests.soak.faults.jobs import restart_step

    steps = ["fetch", "items_a", "items_b", "notify"]
    assert restart_step("items_a", steps, ["fetch", "items_a"]) == "items_a"
    assert restart_step("notify", steps, ["fetch", "items_a"]) == "items_a"
    assert restart_step("items_b", steps, ["fetch"]) == "fetch"
    assert restart_step("fetch", steps, []) == "*"
    assert restart_step("notify", [], ["fetch"]) == "*"


class _Node:
    """A process node as the faults see it: which processes it recorded for a pod."""

    paused = False

    def __init__(self, records: dict[str, list[object]]) -> None:
        self.records = records

    def pod_processes(self, uid: str) -> list[object]:
        return self.records.get(uid, [])


def _pod(uid: str, phase: str, started: bool) -> dict[str, object]:
    state = {"running": {}} if started else {"waiting": {"reason": "ContainerCreating"}}
    return {
        "metadata": {"name": f"p-{uid}", "uid": uid, "labels": {"continuable.dev/job": "j"}},
        "spec": {"nodeName": "n"},
        "status": {"phase": phase, "containerStatuses": [{"state": state}]},
    }


def test_a_fault_reaches_a_pod_unless_its_process_has_already_ended(tmp_path: Path) -> None:
    import os

    from tests.cluster.processes import ProcessRecord, start_ticks
    from tests.soak.faults.base import FaultContext
    from tests.soak.faults.nodes import _lines

    me = ProcessRecord("job", os.getpid(), "python", start_ticks(os.getpid()) or 0)
    dead = ProcessRecord("job", os.getpid(), "python", me.start_ticks + 1)
    node = _Node({"run": [me], "done": [dead]})
    log = FaultLog(tmp_path)
    ctx = FaultContext(
        None, None, "ns", {"n": node}, None, None, None, tmp_path, None, log, tmp_path
    )  # type: ignore[arg-type]
    running, done, never = (
        _pod("run", "Running", True),
        _pod("done", "Running", True),
        _pod("never", "Pending", False),
    )
    assert [ctx.process_state(p) for p in (running, done, never)] == ["running", "exited", "never"]
    assert ctx.reach(done) == (False, {"process": "exited"})

    seen = {p["metadata"]["uid"]: ctx.process_state(p) for p in (running, done, never)}  # type: ignore[index]
    _lines(ctx, 1.0, "partition", "n", [running, done, never], seen)
    _lines(ctx, 2.0, "agent-restart", "n", [running, done, never], seen)
    log.close()
    rows = [json.loads(line) for line in (tmp_path / "faults.jsonl").read_text().splitlines()]
    reached = [(r["kind"], r["pod"], r["reached_pod"]) for r in rows]
    assert reached == [
        ("partition", "p-run", True),
        ("partition", "p-done", False),
        ("partition", "p-never", True),  # force-deleted all the same: its attempt must end
        ("agent-restart", "p-run", True),
        ("agent-restart", "p-done", False),
        ("agent-restart", "p-never", False),  # the new agent simply starts it
    ]
