"""Jobs in real containers on `real-0`, run by the chart's operator (itself in a container):
the runtime's SIGTERM and SIGKILL, the kubelet's projected token, kube-proxy's route to the API
server, a rollout to a new image tag, an OOM kill by the kernel's memory cgroup."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from .conftest import RealJobs

pytestmark = pytest.mark.e2e

ORDER_BATCH = ["python", "examples/order-batch/job.py"]
ORDERS = 3000
# About 12 s of orders per attempt, long enough to interrupt twice, short enough for the suite.
ORDER_ENV = {"ORDERS": str(ORDERS), "ITEM_SECONDS": "0.004", "FETCH_SECONDS": "1"}


def _every_order_once(jobs: RealJobs, name: str) -> None:
    counts = jobs.counts(name)
    assert len(counts) == ORDERS, f"{len(counts)} distinct orders, expected {ORDERS}"
    repeated = {order: n for order, n in counts.items() if n > 1}
    assert not repeated, f"orders processed more than once: {sorted(repeated)[:10]}"


def _container_state(pod: dict[str, object]) -> dict[str, object]:
    statuses = pod["status"]["containerStatuses"]  # type: ignore[index]
    state: dict[str, object] = statuses[0]["state"]  # type: ignore[index]
    return state


def test_order_batch_deleted_then_evicted_completes_with_every_order_once(
    real_jobs: RealJobs,
) -> None:
    name = "orders-twice"
    real_jobs.apply(real_jobs.manifest(name, ORDER_BATCH, **ORDER_ENV))
    real_jobs.wait_entries(name, ORDERS // 3)
    real_jobs.delete_pod(name, 1)
    real_jobs.wait_running(name, 2)
    real_jobs.wait_entries(name, 2 * ORDERS // 3)
    real_jobs.evict_pod(name, 2)
    status = real_jobs.wait_phase(name, "Succeeded")
    _every_order_once(real_jobs, name)
    assert (status["interruptions"], status["failures"]) == (2, 0)
    assert [a["reason"] for a in status["attempts"][:2]] == [
        "PodDeleted",
        "EvictionByEvictionAPI",
    ]
    # The resumed attempts skipped fetch_orders and went on at the cursor.
    assert {attempt for _, attempt in real_jobs.entries(name)} == {1, 2, 3}


def test_sigterm_from_the_runtime_is_flushed_within_the_grace_period(real_jobs: RealJobs) -> None:
    name = "graceful"
    grace = 20
    real_jobs.apply(real_jobs.manifest(name, ORDER_BATCH, grace=grace, **ORDER_ENV))
    real_jobs.wait_entries(name, ORDERS // 4)
    asked = datetime.now(UTC).replace(microsecond=0)
    real_jobs.delete_pod(name, 1)
    status = real_jobs.wait_phase(name, "Succeeded")
    _every_order_once(real_jobs, name)
    first = status["attempts"][0]
    # Exit 75: the SDK saved its cursor and exited by itself, before the runtime's SIGKILL
    # (which would have been 137, after the grace period).
    assert (first["outcome"], first["reason"], first["exitCode"]) == (
        "Interrupted",
        "PodDeleted",
        75,
    )
    ended = datetime.fromisoformat(first["endTime"].replace("Z", "+00:00"))
    assert (ended - asked).total_seconds() < grace


def test_sigkill_after_the_grace_period_repeats_at_most_one_interval(real_jobs: RealJobs) -> None:
    name = "stubborn"
    item_seconds, interval = 0.05, 1
    real_jobs.apply(
        real_jobs.manifest(
            name,
            ["python", "tests/e2e/realnode/jobs/stubborn.py"],
            interval=interval,
            grace=2,
            ITEMS="300",
            ITEM_SECONDS=str(item_seconds),
        )
    )
    real_jobs.wait_entries(name, 100)
    real_jobs.delete_pod(name, 1)
    status = real_jobs.wait_phase(name, "Succeeded")
    first = status["attempts"][0]
    # The runtime's SIGKILL: 128 + 9.
    assert first["exitCode"] == 137, first
    counts = real_jobs.counts(name)
    assert len(counts) == 300
    repeated = sum(n - 1 for n in counts.values())
    # One interval's items, and the one in flight.
    assert 0 < repeated <= interval / item_seconds + 1, repeated


def test_rollout_to_a_new_image_tag_resumes_on_the_new_pod(real_jobs: RealJobs) -> None:
    name = "rollout"
    manifest = real_jobs.manifest(name, ORDER_BATCH, **ORDER_ENV)
    real_jobs.apply(manifest)
    real_jobs.wait_entries(name, ORDERS // 3)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["image"] = f"{real_jobs.image}-rollout"
    real_jobs.apply(manifest)
    status = real_jobs.wait_phase(name, "Succeeded")
    _every_order_once(real_jobs, name)
    first = status["attempts"][0]
    assert (first["outcome"], first["reason"]) == ("Interrupted", "TemplateChanged"), first
    assert status["resumptions"] >= 1
    last = real_jobs.pod(name, status["attempt"])
    assert last is not None
    assert last["spec"]["containers"][0]["image"] == container["image"]
    assert last["status"]["containerStatuses"][0]["imageID"]


def test_projected_token_of_a_job_gets_403_on_another_job(real_jobs: RealJobs) -> None:
    other = "peek-target"
    real_jobs.apply(real_jobs.manifest(other, ORDER_BATCH, ORDERS="100", ITEM_SECONDS="0.001"))
    name = "peek"
    verdicts = real_jobs.folder / f"{name}.verdicts"
    real_jobs.apply(
        real_jobs.manifest(
            name,
            ["python", "tests/e2e/sdk/jobs/peek.py"],
            EVENTS=f"/ledger/{verdicts.name}",
            OTHER_JOB=other,
        )
    )
    real_jobs.wait_phase(name, "Succeeded")
    seen = json.loads(verdicts.read_text())
    assert seen == {
        "get own job": 200,
        "get other job": 403,
        "patch other status": 403,
        "get other results": 403,
        "list jobs": 403,
    }
    pod = real_jobs.pod(name, 1)
    assert pod is not None
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" for m in mounts)


def test_oom_killed_container_is_a_counted_failure_then_resumes(real_jobs: RealJobs) -> None:
    name = "hungry"
    manifest = real_jobs.manifest(
        name,
        ["python", "tests/e2e/realnode/jobs/hungry.py"],
        resources={"limits": {"memory": "96Mi"}, "requests": {"memory": "96Mi"}},
        ITEMS="60",
        OOM_AT="30",
    )
    manifest["spec"]["backoffLimit"] = 2
    real_jobs.apply(manifest)
    status = real_jobs.wait_phase(name, "Succeeded")
    first = status["attempts"][0]
    assert (first["outcome"], first["reason"]) == ("Failed", "OOMKilled"), first
    assert first["exitCode"] == 137
    assert (status["failures"], status["interruptions"]) == (1, 0)
    # Relaunched after the backoff, and resumed at the cursor the first attempt saved.
    assert status["attempt"] == 2
    entries = real_jobs.entries(name)
    first_items = [int(item) for item, attempt in entries if attempt == 1]
    second_items = [int(item) for item, attempt in entries if attempt == 2]
    assert second_items, "the second attempt processed nothing"
    assert 0 < second_items[0] <= max(first_items) + 1, "the second attempt did not resume"
    assert {int(item) for item, _ in entries} == set(range(60))
