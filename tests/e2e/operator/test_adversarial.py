"""The guarantees under adversarial faults (issue 21), on a real control plane: nothing stuck
on a foreground delete, identity by UID and never by name, a vanished pod is Lost and its
zombie fenced out, a shared service account grants nothing, a restart is checked and resets
the clock, and suspended time does not count toward the deadline."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from continuable.names import (
    RESTART_FROM_STEP_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
    TRACKING_FINALIZER,
    checkpoint_service_account,
    pod_name,
    results_config_map,
)
from tests.cluster.processnode import StandaloneNode
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import PER_ATTEMPT, PYTHON, JobUnderTest

pytestmark = pytest.mark.e2e

FAST = {"ITEM_SECONDS": "0"}
NAME_CONFLICT = "NameConflict"
SERVICE_ACCOUNT_SHARED = "ServiceAccountShared"
UNKNOWN_STEP = "UnknownStep"
# The operator declares a pod Lost this long after its deletionTimestamp when it is still not
# terminal (its node stopped answering); the waits below allow for it plus a margin.
LOST_AFTER_SECONDS = 15


def _finished(job: JobUnderTest, timeout: float = 90) -> dict[str, Any]:
    """Wait for the job to end either way, so a failure is reported at once, with its reason."""
    return job.wait_phase("Succeeded", "Failed", timeout=timeout)


def _assert_succeeded(job: JobUnderTest, status: dict[str, Any]) -> None:
    assert status["phase"] == "Succeeded", f"the job failed: {job.condition('Failed')}"


def _true_condition(job: JobUnderTest, kind: str, timeout: float = 20) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        condition = job.condition(kind)
        return condition if condition and condition["status"] == "True" else None

    return wait_for(
        found,
        timeout=timeout,
        what=f"condition {kind}=True on {job.name}",
        detail=lambda: f"status: {json.dumps(job.status())}",
    )


def _stays(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Assert `check` holds now and keeps holding for `seconds` (a wrong action has the time
    to happen)."""
    deadline = time.monotonic() + seconds
    while True:
        assert check(), what
        if time.monotonic() >= deadline:
            return
        time.sleep(0.3)


def _pending_without_pod(job: JobUnderTest) -> bool:
    return job.status().get("phase") == "Pending" and job.pods() == []


def _nothing_ended(status: dict[str, Any]) -> bool:
    """No attempt of the job has ended and nothing was counted: no pod was taken for its own."""
    ended = [a for a in status.get("attempts") or [] if a.get("outcome") != "Running"]
    return not ended and not status.get("interruptions") and not status.get("failures")


def _get(job: JobUnderTest, kind: str, name: str) -> dict[str, Any] | None:
    result = job.kubectl.run("get", kind, name, "-n", job.namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


# 1. Stuck forever: a foreground delete.


def test_a_foreground_delete_of_a_running_job_finishes_and_leaves_nothing(
    job: JobUnderTest,
) -> None:
    job.create(env={"ITEM_SECONDS": "0.02"})
    job.wait_pod(1, "Running")
    job.wait_items(50)
    objects = job.leftovers()
    for kind, name in (
        ("pod", pod_name(job.name, 1)),
        ("configmap", results_config_map(job.name)),
        ("serviceaccount", checkpoint_service_account(job.name)),
        ("role.rbac.authorization.k8s.io", checkpoint_service_account(job.name)),
        ("rolebinding.rbac.authorization.k8s.io", checkpoint_service_account(job.name)),
    ):
        assert f"{kind}/{name}" in objects, f"the test's premise: {kind}/{name} in {objects}"

    job.kubectl(
        "delete", "cjob", job.name, "-n", job.namespace, "--cascade=foreground", "--wait=false"
    )
    left = [objects]

    def all_gone() -> bool:
        left[0] = job.leftovers()
        return not left[0]

    def pod_metadata() -> str:
        pod = job.pod(1) or {}
        meta = pod.get("metadata", {})
        keys = ("deletionTimestamp", "finalizers", "ownerReferences")
        phase = pod.get("status", {}).get("phase")
        return json.dumps({"phase": phase, **{k: meta.get(k) for k in keys}})

    wait_for(
        all_gone,
        timeout=30,
        what=f"every object of {job.name} gone after a foreground delete",
        detail=lambda: f"still there: {left[0]}; pod 1: {pod_metadata()}",
    )


# 2. Identity by UID, not by name.

# Ignores SIGTERM, so its pod stays Terminating for the whole grace period.
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], 'a').write('started\\n')
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    time.sleep(0.2)
"""


def test_a_new_job_of_the_same_name_waits_for_the_old_jobs_pod_and_never_adopts_it(
    job: JobUnderTest,
) -> None:
    marker = job.events.with_name(f"{job.name}.old")
    job.create([PYTHON, "-c", STUBBORN, str(marker)], pod={"terminationGracePeriodSeconds": 20})
    old_pod = job.wait_pod(1, "Running")
    wait_for(marker.exists, timeout=30, what="the old job's process started")
    old_job_uid = job.get()["metadata"]["uid"]
    job.kubectl("delete", "cjob", job.name, "-n", job.namespace, "--timeout=30s")

    job.create(env=FAST)
    new_job_uid = job.get()["metadata"]["uid"]
    assert new_job_uid != old_job_uid
    still = job.pod(1)
    assert still is not None, "the test's premise: the old pod outlives the old job a while"
    assert still["metadata"]["uid"] == old_pod["metadata"]["uid"]

    conflict = _true_condition(job, NAME_CONFLICT)
    assert pod_name(job.name, 1) in conflict["message"]
    status = job.status()
    assert status.get("phase") == "Pending"
    assert _nothing_ended(status), "the old job's pod is no attempt of the new job"
    held = job.pod(1)
    assert held is not None
    assert held["metadata"]["uid"] == old_pod["metadata"]["uid"]
    assert not any(
        ref.get("uid") == new_job_uid for ref in held["metadata"].get("ownerReferences", [])
    ), "the new job took over the old job's pod"

    status = _finished(job, timeout=90)
    _assert_succeeded(job, status)
    assert [(a["attempt"], a["outcome"]) for a in status["attempts"]] == [(1, "Succeeded")]
    assert (status["interruptions"], status["failures"]) == (0, 0)
    assert job.items() == list(range(2000)), "the new job did all its work itself"
    assert Counter(job.lines())["fetch"] == 1
    pod = job.pod(1)
    assert pod is not None
    assert pod["metadata"]["uid"] != old_pod["metadata"]["uid"]
    owners = [r for r in pod["metadata"]["ownerReferences"] if r.get("controller")]
    assert [r["uid"] for r in owners] == [new_job_uid]
    conflict_after = job.condition(NAME_CONFLICT)
    assert conflict_after is None or conflict_after["status"] == "False"


def test_a_results_config_map_of_someone_else_is_a_name_conflict_and_never_granted(
    job: JobUnderTest,
) -> None:
    name = results_config_map(job.name)
    job.kubectl("create", "configmap", name, "-n", job.namespace, "--from-literal=owner=someone")
    before = _get(job, "configmap", name)
    assert before is not None

    job.create(env=FAST)
    conflict = _true_condition(job, NAME_CONFLICT)
    assert name in conflict["message"]
    _stays(lambda: _pending_without_pod(job), 3, "the job stays Pending, with no pod")
    assert _nothing_ended(job.status())

    after = _get(job, "configmap", name)
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after.get("data") == {"owner": "someone"}, "the ConfigMap was written to"
    assert not after["metadata"].get("ownerReferences"), "the ConfigMap was adopted"
    account = f"system:serviceaccount:{job.namespace}:{checkpoint_service_account(job.name)}"
    for verb in ("patch", "get"):
        answer = job.kubectl.run(
            "auth",
            "can-i",
            verb,
            f"configmap/{name}",
            f"--as={account}",
            "-n",
            job.namespace,
            check=False,
        )
        assert answer.stdout.strip() == "no", f"the job's account may {verb} {name}"


@pytest.mark.parametrize("labelled", [False, True], ids=["bare", "with-the-jobs-labels"])
def test_a_pod_of_someone_else_with_the_attempts_name_is_a_name_conflict_and_left_alone(
    job: JobUnderTest, labelled: bool
) -> None:
    name = pod_name(job.name, 1)
    labels = {"continuable.dev/job": job.name, "continuable.dev/attempt": "1"} if labelled else {}
    foreign = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": job.namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "other",
                    "image": "python",
                    "command": [PYTHON, "-c", "import time; time.sleep(300)"],
                }
            ],
        },
    }
    job.apply(foreign)
    uid = job.wait_pod(1, "Running")["metadata"]["uid"]

    job.create(env=FAST)
    conflict = _true_condition(job, NAME_CONFLICT)
    assert name in conflict["message"]

    def untouched() -> bool:
        pod = job.pod(1)
        assert pod is not None, "the operator deleted a pod that is not its own"
        meta = pod["metadata"]
        conditions = {c["type"] for c in pod["status"].get("conditions", [])}
        return (
            meta["uid"] == uid
            and not meta.get("deletionTimestamp")
            and TRACKING_FINALIZER not in (meta.get("finalizers") or [])
            and not meta.get("ownerReferences")
            and "DisruptionTarget" not in conditions
        )

    _stays(untouched, 3, "the foreign pod was adopted, stamped or deleted")
    status = job.status()
    assert status.get("phase") == "Pending"
    assert _nothing_ended(status), "the foreign pod was taken for an attempt of the job"


# 3. A vanished pod is Lost, and its zombie is fenced out.


def test_a_force_deleted_pod_on_a_frozen_node_is_lost_and_its_zombie_is_fenced_out(
    job: JobUnderTest, pausable_node: StandaloneNode, make_node: Callable[[str], None]
) -> None:
    frozen = pausable_node.name
    # Only the test's own nodes: the frozen one now, the rescue node once it exists.
    rescue = f"rescue-{secrets.token_hex(3)}"
    placement = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [frozen, rescue],
                                }
                            ]
                        }
                    ]
                }
            }
        }
    }
    # Attempt 1 slow enough not to finish before it is declared Lost (60 s of work), the
    # replacement quicker (20 s).
    env = {"ITEM_SECONDS": "0.01", "ITEM_SECONDS_ATTEMPT_1": "0.03"}
    manifest = job.manifest([PYTHON, PER_ATTEMPT], env=env, pod=placement)
    with job.watch_pods() as pods:
        job.apply(manifest)
        first = job.wait_pod(1, "Running", timeout=60)
        assert first["spec"]["nodeName"] == frozen
        zombie_log = pausable_node.pod_log(
            job.namespace, first["metadata"]["name"], first["metadata"]["uid"]
        )
        wait_for(lambda: len(job.attempt_items(1)) >= 150, timeout=60, what="attempt 1 under way")
        # The replacement must run elsewhere: the frozen node takes no new pod, and a Ready
        # node of the test's own is there for it.
        job.kubectl("cordon", frozen)
        make_node(rescue)

        pausable_node.pause()
        try:
            _force_delete_while_frozen(job, pausable_node, first)
            lost = wait_for(
                lambda: _lost_record(job),
                timeout=LOST_AFTER_SECONDS + 30,
                what="attempt 1 recorded as Lost",
                detail=lambda: f"status: {json.dumps(job.status())}",
            )
            assert lost["podName"] == pod_name(job.name, 1)
            second = job.wait_pod(2, "Running", timeout=60)
            assert second["spec"]["nodeName"] == rescue
            wait_for(
                lambda: len(job.attempt_items(2)) >= 100, timeout=60, what="attempt 2 under way"
            )
            # Still frozen: the zombie must stop by itself, on its refused write.
            wait_for(
                lambda: job.attempt_exit(1) is not None,
                timeout=30,
                what="the zombie (attempt 1) to stop by itself",
                detail=lambda: _tail(zombie_log, 15),
            )
        finally:
            pausable_node.resume()
        status = _finished(job, timeout=90)
    _assert_succeeded(job, status)

    log = _tail(zombie_log, 15)
    assert job.attempt_exit(1) == 75, log
    assert "fenced" in log or "without writing" in log, log
    assert [a["outcome"] for a in status["attempts"]] == ["Lost", "Succeeded"]
    assert status["attempt"] == 2
    assert status["checkpoint"]["attempt"] == 2

    zombie, replacement = job.attempt_items(1), job.attempt_items(2)
    assert zombie == list(range(len(zombie))), "attempt 1 did its items once each, in order"
    assert replacement == list(range(replacement[0], 2000)), "attempt 2 repeated nothing"
    assert replacement[0] <= len(zombie), "an item was skipped"
    assert Counter(job.attempt_lines(2))["fetch"] == 0, "attempt 2 redid a finished step"
    assert Counter(job.attempt_lines(1) + job.attempt_lines(2))["notify"] == 1
    assert pods.errors == []
    assert pods.overlaps() == [], "two pods of the job were alive at once"


def _force_delete_while_frozen(
    job: JobUnderTest, node: StandaloneNode, pod: dict[str, Any]
) -> None:
    """What people do to a pod stuck on a lost node: delete it with grace 0. Our tracking
    finalizer keeps the object (Terminating) until the operator has recorded the outcome."""
    assert node.state() == "T", "the agent is frozen"
    done = len(job.attempt_items(1))
    name = pod["metadata"]["name"]
    job.kubectl(
        "delete", "pod", name, "-n", job.namespace, "--force", "--grace-period=0", "--wait=false"
    )
    deleted = job.pod(1)
    assert deleted is not None, "the tracking finalizer keeps the force-deleted pod"
    assert deleted["metadata"]["uid"] == pod["metadata"]["uid"]
    assert deleted["metadata"].get("deletionTimestamp")
    assert TRACKING_FINALIZER in deleted["metadata"]["finalizers"]
    wait_for(
        lambda: len(job.attempt_items(1)) >= done + 25,
        timeout=10,
        what="the zombie working on while its node is frozen",
    )


def _tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace") if path.exists() else f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


def _lost_record(job: JobUnderTest) -> dict[str, Any] | None:
    attempts = job.status().get("attempts") or []
    first = next((a for a in attempts if a.get("attempt") == 1), None)
    return first if first and first.get("outcome") == "Lost" else None


# 4. A shared service account.


def test_a_service_account_named_by_two_jobs_serves_only_the_first(
    job: JobUnderTest, scratch: Path
) -> None:
    job.kubectl("create", "serviceaccount", "shared", "-n", job.namespace)
    uses_shared = {"serviceAccountName": "shared"}
    job.create(env={"ITEM_SECONDS": "0.003"}, pod=uses_shared)
    job.wait_pod(1, "Running")
    second = JobUnderTest(job.kubectl, job.namespace, f"{job.name}-b", scratch)
    second.create(env=FAST, pod=uses_shared)

    shared = _true_condition(second, SERVICE_ACCOUNT_SHARED)
    assert job.name in shared["message"]
    _stays(lambda: _pending_without_pod(second), 2, "the second job stays Pending, no pod")
    assert _nothing_ended(second.status())

    token = job.kubectl("create", "token", "shared", "-n", job.namespace).strip()
    with tempfile.TemporaryDirectory(prefix="continuable-token-") as folder:
        as_account = job.kubectl.with_token(token, Path(folder) / "kubeconfig")
        who = as_account("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        assert who == f"system:serviceaccount:{job.namespace}:shared"
        forged = {"status": {"checkpoint": {"currentStep": "forged"}}}
        patch = as_account.run(
            "patch",
            "cjob",
            second.name,
            "-n",
            job.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(forged),
            check=False,
        )
    assert patch.returncode != 0, "the shared account wrote the second job's status"
    assert "Forbidden" in patch.stderr or "forbidden" in patch.stderr, patch.stderr
    assert not second.status().get("checkpoint")

    status = _finished(job)
    _assert_succeeded(job, status)
    assert job.items() == list(range(2000))


# 5. Restart is atomic and checked.


def test_a_restart_after_the_deadline_runs_again_and_completes(job: JobUnderTest) -> None:
    # Slow in its first attempt only (100 s of work against an 8 s deadline), quick after.
    job.create(
        [PYTHON, PER_ATTEMPT],
        env={"ITEM_SECONDS": "0", "ITEM_SECONDS_ATTEMPT_1": "0.05"},
        activeDeadlineSeconds=8,
    )
    status = _finished(job, timeout=60)
    failed = job.condition("Failed")
    assert status["phase"] == "Failed"
    assert failed is not None
    assert failed["reason"] == "DeadlineExceeded"
    wait_for(
        lambda: job.status()["attempts"][0]["outcome"] != "Running",
        timeout=30,
        what="the stopped pod recorded",
    )
    failed_since = failed["lastTransitionTime"]

    job.restart("fetch_orders")

    def ended_again() -> dict[str, Any] | None:
        """Attempt 2 has ended: Succeeded, or Failed anew (not the stale first failure)."""
        status = job.status()
        if status.get("attempt") != 2:
            return None
        if status.get("phase") == "Succeeded":
            return status
        conditions = status.get("conditions", [])
        again = next((c for c in conditions if c["type"] == "Failed"), None)
        if (
            status.get("phase") == "Failed"
            and again
            and again["lastTransitionTime"] != failed_since
        ):
            return status
        return None

    status = wait_for(
        ended_again,
        timeout=60,
        what="the restarted attempt 2 to end",
        detail=lambda: f"status: {json.dumps(job.status())}",
    )
    _assert_succeeded(job, status)
    assert job.attempt_items(2) == list(range(2000))
    assert Counter(job.attempt_lines(2))["fetch"] == 1, "restarted from the first step"
    assert job.attempt_exit(2) == 0
    failed = job.condition("Failed")
    assert failed is None or failed["status"] == "False"


def test_a_restart_from_an_unknown_step_is_refused_and_resets_nothing(
    job: JobUnderTest,
) -> None:
    job.create(env=FAST)
    _assert_succeeded(job, _finished(job))
    before = job.status()
    results = results_config_map(job.name)
    results_before = (_get(job, "configmap", results) or {}).get("data")
    assert results_before, "the test's premise: the steps' results are saved"

    job.kubectl(
        "annotate",
        "cjob",
        job.name,
        "-n",
        job.namespace,
        f"{RESTART_FROM_STEP_ANNOTATION}=proces_orders",
        f"{RESTART_NONCE_ANNOTATION}={secrets.token_hex(8)}",
    )
    wait_for(
        lambda: UNKNOWN_STEP in job.event_reasons("Warning"),
        timeout=20,
        what="a Warning Event UnknownStep",
        detail=lambda: f"events: {job.event_reasons()}; status: {json.dumps(job.status())}",
    )
    refused = next(
        (c for c in job.status().get("conditions", []) if c["reason"] == UNKNOWN_STEP), None
    )
    assert refused is not None, "a condition says why the restart was refused"
    assert refused["status"] == "True"
    assert "proces_orders" in refused["message"]

    def nothing_reset() -> bool:
        status = job.status()
        data = (_get(job, "configmap", results) or {}).get("data")
        return (
            status.get("checkpoint") == before["checkpoint"]
            and data == results_before
            and status.get("attempt") == before["attempt"]
            and status.get("phase") == "Succeeded"
            and job.pod(before["attempt"] + 1) is None
        )

    _stays(nothing_reset, 3, "the refused restart reset or launched something")


# 6. Suspended time does not count toward the deadline.


def test_suspended_time_does_not_count_toward_the_deadline(job: JobUnderTest) -> None:
    deadline, suspended_for = 15, 18
    # About 5 s of work: well within the deadline, if only running time counts.
    job.create(env={"ITEM_SECONDS": "0.0025"}, activeDeadlineSeconds=deadline)
    job.wait_items(50)
    job.kubectl(
        "patch",
        "cjob",
        job.name,
        "-n",
        job.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"suspend": True}}),
    )
    job.wait_phase("Suspended", timeout=30)
    _stays(
        lambda: job.status().get("phase") == "Suspended",
        suspended_for,
        f"the job left Suspended while suspended longer than its deadline ({deadline} s)",
    )
    job.kubectl(
        "patch",
        "cjob",
        job.name,
        "-n",
        job.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"suspend": False}}),
    )
    status = _finished(job, timeout=60)
    _assert_succeeded(job, status)
    assert job.items() == list(range(2000))
    assert status["attempts"][0]["reason"] == "Suspended"
