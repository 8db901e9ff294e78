"""The report: figures per fault kind, the verdicts, the totals and the command to reproduce."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.soak import report
from tests.soak.judges import judge_all, judge_run
from tests.soak.judges.verdict import Verdict
from tests.soak.records import Records

from .conftest import OPERATOR, UID, Ledger, fault, job, pod, raw_audit, records, sa


def run() -> Records:
    ledger = Ledger()
    killed = ledger.add(1, ["fetch", 0, 1, 2, 3])
    ledger.wait(1)
    deleted = ledger.add(2, [2, 3, 4, 5, 6])
    ledger.wait(1)
    ledger.add(3, [7, 8, 9, "notify"])
    return records(
        jobs=[job(interruptions=1, failures=1)],
        ledger=ledger,
        faults=[
            fault("sigkill", killed + 0.05, 1),
            fault("pod-delete", deleted + 0.05, 2),
            fault("operator-kill", 3.0, None, job=None, reached=False),
        ],
        pods=[
            pod(0.5, 1, "Running", type="ADDED"),
            pod(killed + 0.1, 1, "Failed"),
            pod(killed + 0.6, 2, "Running", type="ADDED"),
            pod(deleted + 0.5, 2, "Failed", deleting=True),
            pod(deleted + 0.55, 2, "Failed", type="DELETED"),
            pod(deleted + 1.05, 3, "Running", type="ADDED"),
            pod(ledger.t, 3, "Succeeded"),
        ],
    )


def test_percentile() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert report.percentile([float(i) for i in range(1, 101)], 99) == 99.0


def test_the_fault_table() -> None:
    rows = {row["kind"]: row for row in report.fault_table(run())}
    assert rows["sigkill"]["injected"] == 1
    assert rows["sigkill"]["reached_pod"] == 1
    assert rows["sigkill"]["relaunch_p50_seconds"] == pytest.approx(0.55)
    assert rows["sigkill"]["repeated_items"] == 2
    assert rows["pod-delete"]["relaunch_p99_seconds"] == pytest.approx(1.0)
    assert rows["pod-delete"]["repeated_items"] == 0
    assert rows["operator-kill"]["reached_pod"] == 0
    assert rows["operator-kill"]["relaunch_p50_seconds"] is None


def test_build_render_and_write(tmp_path: Path) -> None:
    records = run()
    verdicts = [v for v in judge_all(records) if v.name in ("ledger", "accounting")]
    verdicts.append(Verdict("pods", False, ["two pods of j at 3.000: ..."], {"overlaps": 1}))

    built = report.build_report(records, verdicts, 42, 1500.0, faults_per_job=20)

    assert built["command"] == ("make soak SOAK_SEED=42 SOAK_JOBS=1 SOAK_FAULTS=20 SOAK_MINUTES=25")
    assert not built["held"]
    assert built["violations"] == 1
    assert built["totals"]["faults"] == 3
    assert built["totals"]["repeated_items"] == 2
    assert built["totals"]["items"] == 10
    assert built["totals"]["items_done"] == 12
    text = report.render(built)
    assert "seed 42: 1 VIOLATIONS" in text
    assert "pods: VIOLATED (1)" in text
    assert "  - two pods of j" in text
    assert "ledger: held" in text
    assert "sigkill" in text
    assert "0.55 s" in text

    report.write(built, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == built
    assert (tmp_path / "report.txt").read_text() == text


def test_a_long_evidence_list_is_cut_in_the_text() -> None:
    evidence = [f"violation {i}" for i in range(30)]
    built = report.build_report(records(), [Verdict("ledger", False, evidence, {})], 1, 60.0)
    text = report.render(built)
    assert "violation 19" in text
    assert "violation 20" not in text
    assert "... 10 more in report.json" in text


def _dump(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_runner_s_entry_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`judge_run` and `write_report` on a folder as the runner leaves it: a clean run."""
    (tmp_path / "ledger").mkdir()
    lines = [f"j,{w},1,101,{1 + i * 0.2:.6f}\n" for i, w in enumerate(["fetch", *range(10)])]
    (tmp_path / "ledger" / "j.csv").write_text("".join([*lines, "j,notify,1,101,3.4\n"]))
    (tmp_path / "faults.jsonl").write_text("")
    final = job().final
    jobs = {"name": "j", "uid": UID, "items": 10, "interval_seconds": 1.0, "created": 0.0}
    jobs |= {"steps": ["fetch", "items", "notify"], "final": final}
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": [jobs]}))
    _dump(tmp_path / "nodes.jsonl", [{"t": 0.0, "node": "n1", "ready": True, "status": "True"}])
    _dump(tmp_path / "pods.jsonl", [asdict(pod(0.5, 1, "Running", type="ADDED"))])
    fence = [
        {"op": "test", "path": "/status/attempt", "value": 1},
        {"op": "test", "path": "/metadata/uid", "value": UID},
    ]
    write: dict[str, Any] = {
        "name": "j",
        "resource": "continuablejobs",
        "subresource": "status",
        "code": 200,
    }
    write |= {"uid": UID, "verb": "patch", "owner": False}
    raise_ops = [{"op": "add", "path": "/status/attempt", "value": 1}]
    _dump(
        tmp_path / "audit.log",
        [
            raw_audit(0.2, OPERATOR, ops=raise_ops, rv=1, pod_name=None, **write),
            raw_audit(2.0, sa(), ops=fence, rv=2, pod_name="j-1", **write),
        ],
    )
    summary: dict[str, Any] = {
        "seed": 7,
        "wall_seconds": 95.0,
        "settings": {"jobs": 1, "faults_per_job": 0},
    }
    summary["settings"] |= {"minutes": 2, "seed": 7}
    (tmp_path / "summary.json").write_text(json.dumps(summary))

    verdicts = judge_run(tmp_path)
    assert [v.name for v in verdicts if not v.held] == []
    assert report.write_report(tmp_path, verdicts, summary) == 0
    assert (
        "make soak SOAK_SEED=7 SOAK_JOBS=1 SOAK_FAULTS=0 SOAK_MINUTES=2" in capsys.readouterr().out
    )
    assert json.loads((tmp_path / "report.json").read_text())["held"]
