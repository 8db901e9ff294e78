"""The lifecycle a spec asks for: rollout of a new template, suspend, deadline, TTL, isolated
steps, a restart from a step; then the metrics all this left behind, read by promtool and by a
real Prometheus (the proofs of the operator, part 2). The metrics test comes last on purpose: it
reads the counters the tests before it moved on the session's operator."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.operating import OperatorProcess
from tests.cluster.prometheus import PrometheusServer, check_metrics
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import PYTHON, JobUnderTest

pytestmark = pytest.mark.e2e


def _patch(job: JobUnderTest, body: object, kind: str = "merge") -> None:
    job.kubectl(
        "patch", "cjob", job.name, "-n", job.namespace, f"--type={kind}", "-p", json.dumps(body)
    )


def _roll_out_version_2(job: JobUnderTest) -> None:
    """A new template, as a deploy of new code would make: the job's script logs the version."""
    env = job.get()["spec"]["template"]["spec"]["containers"][0]["env"]
    new = [*env, {"name": "JOB_VERSION", "value": "v2"}]
    path = "/spec/template/spec/containers/0/env"
    _patch(job, [{"op": "replace", "path": path, "value": new}], "json")


def _versions(job: JobUnderTest) -> list[str]:
    return [line.split("version=")[1] for line in job.lines() if line.startswith("attempt ")]


def test_a_template_change_resumes_on_the_new_template(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0.004"})
    job.wait_items(500)
    _roll_out_version_2(job)
    status = job.wait_phase("Succeeded")
    assert _versions(job) == ["v1", "v2"]
    assert job.items() == list(range(2000)), "graceful stop: nothing repeated"
    assert Counter(job.lines())["fetch"] == 1
    assert status["attempts"][0]["reason"] == "TemplateChanged"
    assert status["interruptions"] == 1


def test_with_ignore_a_template_change_waits_for_the_next_attempt(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0.002"}, restartPolicyOnTemplateChange="Ignore")
    job.wait_items(300)
    _roll_out_version_2(job)
    status = job.wait_phase("Succeeded")
    assert status["attempt"] == 1
    assert _versions(job) == ["v1"]


def test_suspend_then_resume_at_the_cursor(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0.004"})
    job.wait_items(400)
    _patch(job, {"spec": {"suspend": True}})
    job.wait_phase("Suspended")
    job.wait_gone(1) if False else wait_for(
        lambda: not (job.pod(1) or {}).get("metadata", {}).get("finalizers"),
        timeout=30,
        what="the suspended pod released",
    )
    suspended = job.condition("Suspended")
    assert suspended is not None
    assert suspended["status"] == "True"
    done_while_suspended = len(job.items())
    assert job.pod(2) is None, "no new attempt while suspended"
    _patch(job, {"spec": {"suspend": False}})
    status = job.wait_phase("Succeeded")
    assert job.items() == list(range(2000))
    assert job.items()[done_while_suspended] == done_while_suspended
    assert status["attempts"][0]["reason"] == "Suspended"


def test_a_job_created_suspended_waits(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0"}, suspend=True)
    status = job.wait_phase("Suspended")
    assert status["attempt"] == 0
    _patch(job, {"spec": {"suspend": False}})
    job.wait_phase("Succeeded")


def test_the_deadline_fails_the_job_and_stops_its_pod(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0.05"}, activeDeadlineSeconds=4)
    status = job.wait_phase("Failed", timeout=60)
    failed = job.condition("Failed")
    assert failed is not None
    assert failed["reason"] == "DeadlineExceeded"
    wait_for(
        lambda: job.status()["attempts"][0]["outcome"] != "Running",
        timeout=30,
        what="the stopped pod recorded",
    )
    record = job.status()["attempts"][0]
    assert record["reason"] == "DeadlineExceeded"
    assert len(job.items()) < 2000
    assert status["completionTime"]


def test_ttl_deletes_the_finished_job(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0"}, ttlSecondsAfterFinished=2)
    job.wait_phase("Succeeded")
    wait_for(
        lambda: (
            job.kubectl.run("get", "cjob", job.name, "-n", job.namespace, check=False).returncode
            != 0
        ),
        timeout=30,
        what="the job deleted after its TTL",
    )


def test_an_isolated_step_gets_an_attempt_of_its_own(job: JobUnderTest) -> None:
    job.create([PYTHON, "tests/e2e/operator/jobs/isolated.py"])
    status = job.wait_phase("Succeeded")
    assert job.events.read_text().splitlines() == [
        "prepare attempt=1",
        "heavy attempt=2",
        "finish attempt=2",
    ]
    assert [a["outcome"] for a in status["attempts"]] == ["Isolated", "Succeeded"]
    assert status["interruptions"] == 0
    assert status["failures"] == 0


def test_restart_from_a_step_runs_it_again(job: JobUnderTest) -> None:
    job.create(env={"ITEM_SECONDS": "0"})
    job.wait_phase("Succeeded")
    restart = subprocess.run(
        [
            sys.executable,
            "-m",
            "continuable.cli",
            "--kubeconfig",
            str(job.kubectl.kubeconfig),
            "-n",
            job.namespace,
            "restart",
            job.name,
            "--from-step",
            "process_orders",
            "--yes",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert restart.returncode == 0, restart.stderr
    wait_for(lambda: job.status().get("attempt") == 2, timeout=30, what="a new attempt")
    status = job.wait_phase("Succeeded")
    counts = Counter(job.lines())
    assert counts["fetch"] == 1, "steps before the restart point are kept"
    assert counts["notify"] == 2
    assert job.items() == list(range(2000)) * 2
    annotations = job.get()["metadata"].get("annotations") or {}
    assert "continuable.dev/restart-from-step" not in annotations
    assert status["interruptions"] == 0
    last = status["lastRestart"]
    assert (last["step"], last["nonce"], last["attempt"]) == (
        "process_orders",
        json.loads(restart.stdout)["nonce"],
        2,
    )


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def test_metrics_show_what_happened_and_prometheus_scrapes_them(
    operator: OperatorProcess,
) -> None:
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as answer:
        text = answer.read().decode()
    assert check_metrics(text) == []
    assert _metric(text, "continuable_interruptions_total", reason="TemplateChanged") >= 1
    assert _metric(text, "continuable_interruptions_total", reason="Suspended") >= 1
    assert (
        _metric(text, "continuable_jobs_finished_total", phase="Failed", reason="DeadlineExceeded")
        >= 1
    )
    assert _metric(text, "continuable_attempts_total") >= 10
    assert _metric(text, "continuable_resumptions_total") >= 2
    assert _metric(text, "continuable_work_saved_seconds_total") > 0
    assert _metric(text, "continuable_checkpoint_updates_total") > 0
    assert _metric(text, "continuable_relaunch_latency_seconds_count") >= 2
    assert "continuable_reconcile_duration_seconds_bucket" in text
    assert 'continuable_jobs{phase="Succeeded"}' in text

    with PrometheusServer([f"127.0.0.1:{operator.metrics_port}"], job="operator") as server:
        samples = server.wait_for_series(
            'continuable_interruptions_total{reason="TemplateChanged"}', timeout=30
        )
        assert samples[0].labels["job"] == "operator"
        assert samples[0].value >= 1
        finished = server.wait_for_series(
            "sum by (phase) (continuable_jobs_finished_total)", timeout=30
        )
        assert {s.labels["phase"] for s in finished} >= {"Succeeded", "Failed"}
