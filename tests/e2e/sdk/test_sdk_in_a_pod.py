"""The SDK in real pods on the process node: checkpoints in the ContinuableJob's status, step
results in its ConfigMap, every write fenced on the attempt (issue: the SDK in a pod)."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.cluster.session import Cluster
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import THREE_STEPS, exit_code

from .conftest import JobHarness

pytestmark = pytest.mark.e2e

PYTHON = [sys.executable]
UNTIL_TOLD = "tests/e2e/sdk/jobs/until_told.py"


def test_deleted_pod_resumes_in_the_next_attempt_with_every_item_once(harness: JobHarness) -> None:
    harness.create([*PYTHON, THREE_STEPS], env={"ITEM_SECONDS": "0.004"})
    harness.launch(1)
    harness.wait_items(500)
    harness.delete_pod(1)
    harness.wait_gone(1)
    first = harness.checkpoint()
    assert first["stopReason"] == "Interrupted"
    assert first["attempt"] == 1
    cursor = first["steps"][1]["cursor"]
    assert cursor == len(harness.items()), "graceful stop: the saved cursor is the next item"

    harness.launch(2)
    pod = harness.wait_pod(2, "Succeeded", "Failed", timeout=90)
    assert pod["status"]["phase"] == "Succeeded"
    assert harness.items() == list(range(2000))
    counts = Counter(harness.lines())
    assert counts["fetch"] == 1, "step 1 was skipped: its result came from the ConfigMap"
    assert counts["notify"] == 1
    final = harness.checkpoint()
    assert final["stopReason"] == "Completed"
    assert final["attempt"] == 2
    assert [s["state"] for s in final["steps"]] == ["Completed"] * 3
    assert final["steps"][1]["attempt"] == 1, "the step keeps the attempt that started it"
    results = json.loads(
        harness.kubectl(
            "get", "configmap", f"{harness.name}-results", "-n", harness.namespace, "-o", "json"
        )
    )["data"]
    assert json.loads(results["fetch_orders.json"]) == list(range(2000))


def test_a_zombie_is_fenced_out_and_the_new_attempt_stays_intact(harness: JobHarness) -> None:
    harness.create([*PYTHON, THREE_STEPS], env={"ITEM_SECONDS": "0.004"})
    harness.launch(1)
    harness.wait_items(300)
    # Attempt 2 starts while the pod of attempt 1 still runs (a partitioned node, say).
    harness.launch(2)
    zombie = harness.wait_pod(1, "Succeeded", "Failed", timeout=30)
    assert exit_code(zombie) == 75
    winner = harness.wait_pod(2, "Succeeded", "Failed", timeout=90)
    assert winner["status"]["phase"] == "Succeeded"
    final = harness.checkpoint()
    assert final["attempt"] == 2
    assert final["stopReason"] == "Completed"
    assert sorted(set(harness.items())) == list(range(2000))


def test_a_pod_of_a_deleted_job_cannot_write_into_a_new_job_of_its_name(
    harness: JobHarness, scratch: Path
) -> None:
    """Issue 21, item 4: the job is deleted while its pod runs on (orphaned, as a pod stuck on a
    lost node would), and a job of the same name is created with attempt 1 and its own results
    ConfigMap; the old pod's write tests the UID it was given and is refused: it exits 75."""
    go = scratch / f"{harness.name}.go"
    # A long interval: the pod writes nothing by itself until it is told to stop.
    spec = {"env": {"GO": str(go)}, "checkpoint": {"intervalSeconds": 300}}
    old_uid = harness.create([*PYTHON, UNTIL_TOLD], **spec)["metadata"]["uid"]
    harness.launch(1)
    wait_for(harness.events.exists, timeout=60, what="the pod's step to run")
    harness.kubectl(
        "delete", "cjob", harness.name, "-n", harness.namespace, "--cascade=orphan", "--wait"
    )
    new_uid = harness.create([*PYTHON, UNTIL_TOLD], **spec)["metadata"]["uid"]
    harness.set_attempt(1)
    assert new_uid != old_uid
    go.touch()
    pod = harness.wait_pod(1, "Succeeded", "Failed", timeout=60)
    log = harness.pod_log(1)
    assert exit_code(pod) == 75, log
    assert f"is another job now (uid {new_uid})" in log
    assert "checkpoint" not in harness.status(), "the new job's status was written"


def test_the_job_carries_on_through_an_apiserver_restart(
    harness: JobHarness, local_cluster: Cluster
) -> None:
    harness.create([*PYTHON, THREE_STEPS], env={"ITEM_SECONDS": "0.006"})
    harness.launch(1)
    harness.wait_items(200)
    assert local_cluster.control_plane is not None
    before = len(harness.items())
    local_cluster.control_plane.stop_apiserver()
    time.sleep(3)
    during = len(harness.items())
    local_cluster.control_plane.start_apiserver()
    assert during > before + 50, "the job's loop went on while the API server was down"
    pod = harness.wait_pod(1, "Succeeded", "Failed", timeout=120)
    assert pod["status"]["phase"] == "Succeeded", (
        json.dumps(pod["status"].get("containerStatuses")),
        harness.checkpoint(),
        harness.pod_log(1),
    )
    assert harness.items() == list(range(2000))
    assert harness.checkpoint()["stopReason"] == "Completed"


def test_a_pod_can_reach_its_own_job_only(harness: JobHarness, namespace: str) -> None:
    other = JobHarness.__new__(JobHarness)
    other.__dict__.update(harness.__dict__, name=f"{harness.name}-other")
    other.create(["true"])
    harness.create([*PYTHON, "tests/e2e/sdk/jobs/peek.py"], env={"OTHER_JOB": other.name})
    harness.launch(1)
    harness.wait_pod(1, "Succeeded", "Failed", timeout=60)
    verdicts = wait_for(
        lambda: json.loads(harness.events.read_text()) if harness.events.exists() else None,
        timeout=10,
        what="the pod's verdicts",
    )
    assert verdicts == {
        "get own job": 200,
        "get other job": 403,
        "patch other status": 403,
        "get other results": 403,
        "list jobs": 403,
    }
