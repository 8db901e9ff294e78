"""Every example under examples/ runs on the local control plane with the operator, and
resumes after its pod is deleted mid-run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.session import Cluster
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import JobUnderTest

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _example(name: str, namespace: str, scratch: Path, **env: str) -> dict[str, Any]:
    job: dict[str, Any] = yaml.safe_load((EXAMPLES / name / "job.yaml").read_text())
    job["metadata"]["namespace"] = namespace
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container.get("env", []) if e["name"] not in env] + [
        {"name": k, "value": v} for k, v in env.items()
    ]
    return job


def test_order_batch_resumes_and_processes_each_order_once(
    crds: Cluster, op_namespace: str, operator: object, scratch: Path
) -> None:
    ledger = scratch / "ledger.txt"
    job = JobUnderTest(crds.kubectl, op_namespace, "order-batch", scratch)
    job.apply(
        _example(
            "order-batch",
            op_namespace,
            scratch,
            ITEM_SECONDS="0.002",
            FETCH_SECONDS="0.5",
            LEDGER_FILE=str(ledger),
        )
    )
    wait_for(
        lambda: ledger.exists() and len(ledger.read_text().splitlines()) > 1500,
        timeout=60,
        what="half the orders processed",
    )
    job.delete_pod(1)
    status = job.wait_phase("Succeeded", timeout=120)
    orders = Counter(line.split()[0] for line in ledger.read_text().splitlines())
    assert len(orders) == 5000
    assert max(orders.values()) == 1
    assert status["attempt"] == 2
    assert status["resumptions"] == 1


def test_ai_report_resumes_and_delivers_once(
    crds: Cluster, op_namespace: str, operator: object, scratch: Path
) -> None:
    report = scratch / "report.md"
    job = JobUnderTest(crds.kubectl, op_namespace, "ai-report", scratch)
    job.apply(
        _example(
            "ai-report",
            op_namespace,
            scratch,
            CHUNK_SECONDS="2",  # 8 at a time: 30 passages in about 8 s
            WORK_DIR=str(scratch / "work"),
            REPORT_PATH=str(report),
        )
    )
    wait_for(
        lambda: (job.checkpoint().get("progress") or {}).get("done", 0) >= 8,
        timeout=60,
        what="some passages summarised",
    )
    job.delete_pod(1)
    status = job.wait_phase("Succeeded", timeout=120)
    assert report.exists()
    assert [s["state"] for s in status["checkpoint"]["steps"]] == ["Completed"] * 4
    assert status["attempts"][0]["outcome"] == "Interrupted"
    assert json.loads(json.dumps(status))["interruptions"] == 1
