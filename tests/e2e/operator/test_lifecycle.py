"""The operator on a real control plane with the process node: launch, classify how a pod
ended, relaunch and resume (the proofs of the operator, part 1)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.cluster.operating import OperatorProcess
from tests.cluster.processnode import NodeConfig, ProcessNodes
from tests.cluster.session import Cluster
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import JobUnderTest

pytestmark = pytest.mark.e2e

FAST = {"ITEM_SECONDS": "0.003"}


def _assert_every_item_once(job: JobUnderTest) -> None:
    assert job.items() == list(range(2000))
    counts = Counter(job.lines())
    assert counts["fetch"] == 1, "a completed step ran again"
    assert counts["notify"] == 1


def test_a_job_runs_to_completion_and_shows_its_progress(job: JobUnderTest) -> None:
    job.create(env=FAST)
    wait_for(lambda: job.checkpoint().get("progress"), timeout=60, what="progress in status")
    table = job.kubectl("get", "cjob", job.name, "-n", job.namespace).splitlines()
    assert table[0].split() == ["NAME", "PHASE", "STEP", "PROGRESS", "ATTEMPT", "AGE"]
    row = table[1].split()
    assert row[1:3] == ["Running", "process_orders"]
    assert row[3].endswith("/2000")
    assert row[4] == "1"

    status = job.wait_phase("Succeeded")
    _assert_every_item_once(job)
    assert {k: status[k] for k in ("attempt", "interruptions", "failures", "resumptions")} == {
        "attempt": 1,
        "interruptions": 0,
        "failures": 0,
        "resumptions": 0,
    }
    assert status["observedGeneration"] == 1
    assert status["completionTime"]
    complete = job.condition("Complete")
    assert complete is not None
    assert complete["status"] == "True"
    assert {"Launched", "Completed"} <= set(job.event_reasons())
    pod = job.pod(1)
    assert pod is not None
    assert pod["metadata"].get("finalizers") in (None, []), "the outcome is recorded: released"


def test_a_deleted_pod_is_relaunched_and_resumes(job: JobUnderTest) -> None:
    job.create(env=FAST)
    job.wait_items(600)
    job.delete_pod(1)
    status = job.wait_phase("Succeeded")
    _assert_every_item_once(job)
    assert status["attempt"] == 2
    assert status["interruptions"] == 1
    assert status["failures"] == 0
    assert status["resumptions"] == 1
    assert status["savedSeconds"] > 0
    first = status["attempts"][0]
    assert (first["outcome"], first["reason"], first["exitCode"]) == (
        "Interrupted",
        "PodDeleted",
        75,
    )


def test_an_evicted_pod_is_an_interruption(crds: Cluster, job: JobUnderTest) -> None:
    job.create(env=FAST)
    job.wait_items(400)
    core = client.CoreV1Api(config.new_client_from_config(str(crds.kubeconfig)))
    core.create_namespaced_pod_eviction(
        f"{job.name}-1",
        job.namespace,
        {"metadata": {"name": f"{job.name}-1", "namespace": job.namespace}},
    )
    status = job.wait_phase("Succeeded")
    _assert_every_item_once(job)
    assert status["interruptions"] == 1
    assert status["failures"] == 0
    assert status["attempts"][0]["reason"] == "EvictionByEvictionAPI"


@pytest.fixture
def small_node(crds: Cluster) -> Iterator[str]:
    if crds.control_plane is None:
        pytest.skip("needs a node of known capacity on the local control plane")
    with ProcessNodes(crds.control_plane, [NodeConfig(name="small-node", cpu="1")]):
        yield "small-node"
    crds.kubectl.run("delete", "node", "small-node", "--wait=false", check=False)


def test_a_preempted_pod_waits_for_capacity_then_resumes(
    crds: Cluster, job: JobUnderTest, small_node: str
) -> None:
    placement = {
        "nodeSelector": {"kubernetes.io/hostname": small_node},
    }
    manifest = job.manifest(env=FAST | {"ITEM_SECONDS": "0.005"}, pod=placement)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "600m"}
    }
    job.apply(manifest)
    job.wait_items(300)
    crds.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": "urgent"},
                "value": 1000,
            }
        ),
    )
    crds.kubectl(
        "apply",
        "-n",
        job.namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "urgent"},
                "spec": {
                    "priorityClassName": "urgent",
                    "restartPolicy": "Never",
                    **placement,
                    "containers": [
                        {
                            "name": "c",
                            "image": "python",
                            "command": [sys.executable, "-c", "import time; time.sleep(4)"],
                            "resources": {"requests": {"cpu": "600m"}},
                        }
                    ],
                },
            }
        ),
    )
    status = job.wait_phase("Succeeded", timeout=120)
    _assert_every_item_once(job)
    assert status["interruptions"] == 1
    assert status["attempts"][0]["reason"] == "PreemptionByScheduler"
    urgent = json.loads(crds.kubectl("get", "pod", "urgent", "-n", job.namespace, "-o", "json"))
    assert urgent["status"]["phase"] == "Succeeded"


def test_crashes_beyond_the_backoff_limit_fail_the_job(job: JobUnderTest) -> None:
    job.create(
        [sys.executable, "-c", "import sys; sys.exit(3)"],
        backoffLimit=1,
        backoff={"initialSeconds": 1, "maxSeconds": 2},
    )
    status = job.wait_phase("Failed")
    assert status["failures"] == 2
    assert status["attempt"] == 2
    failed = job.condition("Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "failed 2 times, more than backoffLimit (1)" in failed["message"]
    assert "exited with code 3" in failed["message"]
    assert [a["outcome"] for a in status["attempts"]] == ["Failed", "Failed"]


def test_interruptions_beyond_max_resumptions_fail_the_job(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0.01"}, maxResumptions=1)
    job.wait_items(100)
    job.delete_pod(1)
    job.wait_pod(2, "Running")
    job.delete_pod(2)
    status = job.wait_phase("Failed")
    failed = job.condition("Failed")
    assert failed is not None
    assert failed["reason"] == "ResumeLimitExceeded"
    assert status["interruptions"] == 2
    assert status["failures"] == 0


def test_the_operator_killed_mid_run_adopts_and_finishes(
    operator: OperatorProcess, job: JobUnderTest
) -> None:
    job.create(env={"ITEM_SECONDS": "0.004"})
    job.wait_items(300)
    operator.kill()
    try:
        # While it is down the pod is deleted: the outcome must not be lost.
        job.delete_pod(1)
        wait_for(
            lambda: (job.pod(1) or {}).get("status", {}).get("phase") == "Failed",
            timeout=30,
            what="the pod to end while the operator is down",
        )
        pod = job.pod(1)
        assert pod is not None
        assert "continuable.dev/tracking" in pod["metadata"]["finalizers"]
    finally:
        operator.start()
    status = job.wait_phase("Succeeded")
    _assert_every_item_once(job)
    assert status["attempt"] == 2
    assert status["interruptions"] == 1
    assert sorted(p["metadata"]["name"] for p in job.pods()) == [f"{job.name}-2"]
    # Never two pods at once: attempt 2 started after the last thing attempt 1 did.
    lines = [line.rsplit(" ", 1) for line in job.events.read_text().splitlines()]
    starts = [i for i, (text, _) in enumerate(lines) if text.startswith("attempt ")]
    assert len(starts) == 2
    assert max(float(t) for _, t in lines[: starts[1]]) <= float(lines[starts[1]][1])


def test_an_invalid_template_fails_clearly_and_other_jobs_go_on(
    job: JobUnderTest, crds: Cluster, scratch: object
) -> None:
    manifest = job.manifest(env=FAST)
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    job.apply(manifest)
    job.wait_phase("Failed")
    failed = job.condition("Failed")
    refused = job.condition("PodCreateFailed")
    assert failed is not None
    assert refused is not None
    assert failed["reason"] == "InvalidPodTemplate"
    assert (refused["status"], refused["reason"]) == ("True", "Invalid")
    assert "spec.containers[0].image" in refused["message"]

    healthy = JobUnderTest(job.kubectl, job.namespace, f"{job.name}-ok", job.events.parent)
    healthy.create(env={"ITEM_SECONDS": "0"})
    healthy.wait_phase("Succeeded")
