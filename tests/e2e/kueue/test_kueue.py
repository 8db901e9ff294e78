"""ContinuableJobs queued, admitted and preempted by a real Kueue (issue 25)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.waiting import wait_for
from tests.e2e.jobs import PYTHON, JobUnderTest

from .conftest import KUEUE_API, Queues

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
MAX_EXEC_TIME_LABEL = "kueue.x-k8s.io/max-exec-time-seconds"
WHOLE_QUOTA = {"requests": {"cpu": "1", "memory": "64Mi"}}


def _queued(
    job: JobUnderTest, queues: Queues, priority: str, item_seconds: str, **labels: str
) -> dict[str, Any]:
    """The job in the test's LocalQueue at this priority, its pod asking for the whole quota."""
    manifest = job.manifest(env={"ITEM_SECONDS": item_seconds})
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = WHOLE_QUOTA
    manifest["metadata"]["labels"] = {
        QUEUE_LABEL: queues.local_queue,
        PRIORITY_LABEL: priority,
        **labels,
    }
    job.apply(manifest)
    return manifest


def _batch_job(queues: Queues, scratch: Path, name: str, priority: str) -> Path:
    """A batch/v1 Job in the same LocalQueue, through Kueue's own Job integration: created
    suspended (what Kueue's webhook, not registered here, would do), started by Kueue on
    admission. Its pod, a host process, writes the time it started; returns that file."""
    events = scratch / f"{name}.events"
    script = (
        "import sys, time; open(sys.argv[1], 'a').write(f'attempt batch {time.monotonic():.6f}\\n')"
    )
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": queues.namespace,
            "labels": {QUEUE_LABEL: queues.local_queue, PRIORITY_LABEL: priority},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "job",
                            "image": "python",
                            "command": [PYTHON, "-c", script, str(events)],
                            "resources": WHOLE_QUOTA,
                        }
                    ],
                }
            },
        },
    }
    queues.apply(manifest)
    return events


def _started(queues: Queues, scratch: Path, name: str, items: int) -> JobUnderTest:
    """A low-priority job of 2,000 items at 10 ms each, running and `items` into its loop."""
    job = queues.job(name, scratch)
    _queued(job, queues, queues.low, "0.01")
    job.wait_phase("Running", timeout=60)
    job.wait_items(items, timeout=60)
    return job


def _times(events: Path) -> list[float]:
    """The monotonic time of each attempt's first line, and of the last line before the next
    attempt's first: [start 1, last of 1, start 2, ...]. The job's pods are this host's
    processes and write on its clock."""
    entries = [line.rsplit(" ", 1) for line in events.read_text().splitlines()]
    times: list[float] = []
    for index, (what, when) in enumerate(entries):
        if what.startswith("attempt "):
            if index:
                times.append(float(entries[index - 1][1]))
            times.append(float(when))
    return times


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def test_a_queued_job_waits_for_quota_then_runs_on_the_flavors_node_and_finishes_its_workload(
    queues: Queues, scratch: Path
) -> None:
    queues.set_quota("0")
    job = queues.job("queued", scratch)
    _queued(job, queues, queues.low, "0")
    status = job.wait_phase("Queued", timeout=60)
    queued = next(c for c in status["conditions"] if c["type"] == "Queued")
    assert queued["status"] == "True"
    assert f"LocalQueue {queues.local_queue}" in queued["message"]
    printed = queues.kubectl("get", "cjob", job.name, "-n", queues.namespace)
    assert "Queued" in printed, printed
    workload = wait_for(lambda: queues.workload(job.name), timeout=30, what="the job's Workload")
    assert workload["spec"]["priority"] == 100
    assert not job.pods(), "no pod before the admission"

    queues.set_quota("1")
    status = job.wait_phase("Succeeded", timeout=120)
    pod = job.pod(1)
    assert pod is not None
    assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == queues.node
    assert pod["spec"]["nodeName"] == queues.node
    assert status["interruptions"] == 0
    finished = wait_for(
        lambda: _condition(queues.workload(job.name), "Finished") or None,
        timeout=30,
        what="the Workload marked Finished",
    )
    assert (finished["status"], finished["reason"]) == ("True", "Succeeded")

    job.kubectl("delete", "cjob", job.name, "-n", queues.namespace, "--wait=true")
    wait_for(
        lambda: queues.workload(job.name) is None,
        timeout=60,
        what="the Workload garbage-collected with its job",
    )


@pytest.mark.parametrize("preemptor", ["ContinuableJob", "batch/v1 Job"])
def test_a_higher_priority_job_preempts_ours_which_resumes_at_its_cursor(
    queues: Queues, scratch: Path, preemptor: str
) -> None:
    ours = _started(queues, scratch, "ours", 300)
    uid = wait_for(lambda: queues.workload(ours.name), timeout=30, what="our Workload")["metadata"][
        "uid"
    ]

    if preemptor == "ContinuableJob":
        theirs = queues.job("theirs", scratch)
        _queued(theirs, queues, queues.high, "0")
        theirs_events = theirs.events
    else:
        theirs_events = _batch_job(queues, scratch, "theirs", queues.high)
    queued = ours.wait_phase("Queued", timeout=60)
    assert queued["interruptions"] == 1
    assert queued["failures"] == 0
    assert queued["attempts"][0]["reason"] == "EvictedByKueue"

    if preemptor == "ContinuableJob":
        theirs.wait_phase("Succeeded", timeout=120)
    else:
        wait_for(
            lambda: _batch_succeeded(queues, "theirs"),
            timeout=120,
            what="the batch/v1 Job admitted by Kueue and succeeded",
        )
    done = ours.wait_phase("Succeeded", timeout=180)
    assert done["interruptions"] == 1
    assert done["failures"] == 0
    assert done["attempt"] == 2
    counts = Counter(ours.items())
    assert sorted(counts) == list(range(2000))
    assert max(counts.values()) == 1, "every item once: resumed at the saved cursor"
    # Both processes log on this host's monotonic clock: ours had stopped for good before
    # theirs started, so the quota was given back only once our pod had ended.
    started_1, stopped_1, _ = _times(ours.events)
    assert _times(theirs_events)[0] > stopped_1 > started_1, "theirs ran only after ours stopped"
    kept = queues.workload(ours.name)
    assert kept is not None
    assert kept["metadata"]["uid"] == uid, "the Workload was kept across the preemption"
    requeued = _condition(kept, "Requeued")
    assert requeued.get("reason") == "Preempted"


def _batch_succeeded(queues: Queues, name: str) -> bool:
    raw = queues.kubectl("get", "job", name, "-n", queues.namespace, "-o", "json")
    return int((json.loads(raw).get("status") or {}).get("succeeded") or 0) == 1


def test_a_workload_deleted_by_hand_stops_the_pod_and_the_job_queues_again(
    queues: Queues, scratch: Path
) -> None:
    """Nothing holds quota for the pod once its Workload is gone: the pod stops gracefully
    (an interruption), a new Workload queues, and the job resumes when it is admitted."""
    job = _started(queues, scratch, "orphaned", 300)
    old = wait_for(lambda: queues.workload(job.name), timeout=30, what="the job's Workload")
    queues.kubectl("delete", "workloads.kueue.x-k8s.io", job.name, "-n", queues.namespace)
    done = job.wait_phase("Succeeded", timeout=180)
    assert done["interruptions"] == 1
    assert done["failures"] == 0
    assert done["attempts"][0]["reason"] == "NotAdmittedByKueue"
    assert max(Counter(job.items()).values()) == 1, "resumed at the saved cursor"
    new = queues.workload(job.name)
    assert new is not None
    assert new["metadata"]["uid"] != old["metadata"]["uid"]


def test_kueue_deactivating_the_workload_at_its_maximum_execution_time_fails_the_job(
    queues: Queues, scratch: Path
) -> None:
    """Kueue's max-exec-time label, as for its own jobs: past it Kueue deactivates the
    Workload for good; the job fails saying so, rather than waiting to be admitted again."""
    job = queues.job("overtime", scratch)
    _queued(job, queues, queues.low, "0.05", **{MAX_EXEC_TIME_LABEL: "4"})
    status = job.wait_phase("Failed", timeout=90)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeactivatedByKueue"
    assert "MaximumExecutionTimeExceeded" in failed["message"]
    assert status["failures"] == 0, "not a failure of the job's code"
    workload = wait_for(
        lambda: (w := queues.workload(job.name)) and _condition(w, "Finished") and w,
        timeout=60,
        what="the deactivated Workload marked Finished once the pod stopped",
    )
    assert workload["spec"]["active"] is False, "left deactivated, as Kueue set it"
    assert workload["spec"]["maximumExecutionTimeSeconds"] == 4
    assert all(p["status"]["phase"] in ("Succeeded", "Failed") for p in job.pods())


def test_a_missing_priority_class_keeps_the_job_queued_and_a_restart_queues_it_again(
    queues: Queues, scratch: Path
) -> None:
    later = queues.low.replace("low-", "later-")
    job = queues.job("classless", scratch)
    _queued(job, queues, later, "0")

    def waiting() -> dict[str, Any] | None:
        found = _condition({"status": job.status()}, "Queued")
        return found if found.get("reason") == "PriorityClassNotFound" else None

    queued = wait_for(waiting, timeout=60, what="the job queued, saying its class is missing")
    assert f"WorkloadPriorityClass '{later}' does not exist" in queued["message"]
    assert queues.workload(job.name) is None
    try:
        queues.apply(
            {
                "apiVersion": KUEUE_API,
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": later},
                "value": 500,
            }
        )
        job.wait_phase("Succeeded", timeout=90)
        first = wait_for(
            lambda: (w := queues.workload(job.name)) and _condition(w, "Finished") and w,
            timeout=30,
            what="the Workload Finished",
        )
        assert first["spec"]["priority"] == 500

        job.restart("fetch_orders")
        again = wait_for(
            lambda: (s := job.status()).get("attempt") == 2 and s.get("phase") == "Succeeded" and s,
            timeout=120,
            what="the restarted job queued, admitted and finished again",
        )
        assert again["lastRestart"]["step"] == "fetch_orders"
        renewed = queues.workload(job.name)
        assert renewed is not None
        assert renewed["metadata"]["uid"] != first["metadata"]["uid"], "a new Workload"
    finally:
        queues.kubectl.run("delete", "workloadpriorityclasses.kueue.x-k8s.io", later, check=False)


def _patch_job(job: JobUnderTest, spec: dict[str, Any]) -> None:
    job.kubectl(
        "patch", "cjob", job.name, "-n", job.namespace, "--type=merge", "-p", json.dumps(spec)
    )


def test_suspend_deactivates_the_workload_and_resume_requeues_it(
    queues: Queues, scratch: Path
) -> None:
    job = _started(queues, scratch, "paused", 200)

    _patch_job(job, {"spec": {"suspend": True}})
    job.wait_phase("Suspended", timeout=60)
    released = wait_for(
        lambda: (
            (w := queues.workload(job.name))
            and _condition(w, "QuotaReserved").get("status") == "False"
            and w
        ),
        timeout=60,
        what="the deactivated Workload's quota given back",
    )
    assert released["spec"]["active"] is False

    _patch_job(job, {"spec": {"suspend": False}})
    done = job.wait_phase("Succeeded", timeout=180)
    assert done["failures"] == 0
    assert max(Counter(job.items()).values()) == 1, "resumed at the saved cursor"
    assert queues.workload(job.name)["spec"]["active"] is True  # type: ignore[index]


def test_a_pods_ready_timeout_evicts_and_requeues_as_an_interruption(
    queues: Queues, scratch: Path
) -> None:
    """The pod can never be scheduled (its template selects no node): Kueue's waitForPodsReady
    timeout (20 s here) evicts the Workload; the pod is stopped, counted as an interruption,
    the quota given back, and Kueue requeues the job after its backoff."""
    job = queues.job("unready", scratch)
    manifest = job.manifest()
    spec = manifest["spec"]["template"]["spec"]
    spec["nodeSelector"] = {"continuable.dev/nowhere": "true"}
    spec["containers"][0]["resources"] = {"requests": {"cpu": "1", "memory": "64Mi"}}
    manifest["metadata"]["labels"] = {QUEUE_LABEL: queues.local_queue}
    job.apply(manifest)
    evicted = wait_for(
        lambda: (s := job.status()).get("interruptions", 0) >= 1 and s,
        timeout=90,
        what="the PodsReady timeout's eviction recorded",
    )
    first = evicted["attempts"][0]
    assert first["outcome"] == "Interrupted"
    assert first["reason"] == "EvictedByKueue"
    assert "PodsReadyTimeout" in first["message"]
    assert evicted["failures"] == 0
    wait_for(
        lambda: job.status().get("attempt", 0) >= 2,
        timeout=90,
        what="the job admitted again after Kueue's backoff, in a new attempt",
    )


LONG_STEP = "tests/e2e/kueue/jobs/long_step.py"


def test_with_the_boost_the_job_that_saved_last_is_preempted_among_equals(
    queues: Queues, scratch: Path
) -> None:
    """Two jobs of one priority share the quota; a higher-priority one needs half of it. Kueue
    alone would preempt the one admitted last; with the boost it preempts the one whose
    checkpoint is fresh (it saves every second), not the one deep in a long step."""
    queues.set_quota("2")
    saving = queues.job("saving", scratch)
    _queued(saving, queues, queues.low, "0.02")
    saving.wait_phase("Running", timeout=60)
    thinking = queues.job("thinking", scratch)
    manifest = thinking.manifest([PYTHON, LONG_STEP], env={"STEP_SECONDS": "120"})
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1", "memory": "64Mi"}
    }
    manifest["metadata"]["labels"] = {QUEUE_LABEL: queues.local_queue, PRIORITY_LABEL: queues.low}
    thinking.apply(manifest)
    thinking.wait_phase("Running", timeout=60)
    wait_for(
        lambda: int(_boost(queues.workload(thinking.name))) >= 2,
        timeout=60,
        what="the long step's Workload boosted",
        detail=lambda: json.dumps(
            {"workload": queues.workload(thinking.name), "job": thinking.status()}, indent=1
        ),
    )
    assert int(_boost(queues.workload(saving.name))) == 0

    urgent = queues.job("urgent", scratch)
    _queued(urgent, queues, queues.high, "0")
    preempted = saving.wait_phase("Queued", timeout=60)
    assert preempted["interruptions"] == 1
    assert thinking.status()["interruptions"] == 0
    assert thinking.status()["phase"] == "Running"
    urgent.wait_phase("Succeeded", timeout=120)
    thinking.kubectl("delete", "cjob", thinking.name, "-n", queues.namespace, "--wait=false")


def _boost(workload: dict[str, Any] | None) -> str:
    annotations = ((workload or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations.get("kueue.x-k8s.io/priority-boost") or "0")


def test_a_template_change_gives_the_quota_back_and_requeues_the_new_pod_set(
    queues: Queues, scratch: Path
) -> None:
    job = _started(queues, scratch, "rollout", 200)
    containers = job.get()["spec"]["template"]["spec"]["containers"]
    containers[0]["env"].append({"name": "JOB_VERSION", "value": "v2"})
    _patch_job(job, {"spec": {"template": {"spec": {"containers": containers}}}})

    def followed() -> dict[str, Any] | None:
        workload = queues.workload(job.name)
        pod_set = ((workload or {}).get("spec") or {}).get("podSets") or [{}]
        names = [e["name"] for e in pod_set[0]["template"]["spec"]["containers"][0]["env"]]
        return workload if "JOB_VERSION" in names else None

    workload = wait_for(followed, timeout=90, what="the Workload's pod set following the template")
    assert _condition(workload, "Requeued").get("reason") == "TemplateChanged"
    done = job.wait_phase("Succeeded", timeout=180)
    assert done["attempt"] == 2
    assert done["failures"] == 0
    assert done["attempts"][0]["reason"] == "TemplateChanged"
    assert max(Counter(job.items()).values()) == 1, "resumed at the saved cursor"
    started = [line for line in job.lines() if line.startswith("attempt ")]
    assert started[-1].endswith("version=v2"), started
