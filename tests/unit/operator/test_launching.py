"""The pod and the per-job objects the operator creates for an attempt."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from continuable_operator.launching import (
    build_pod,
    build_results_config_map,
    service_account_of,
    template_hash,
)
from continuable_operator.permissions import (
    build_role,
    build_role_binding,
    build_service_account,
    needs_own_service_account,
)

JOB: dict[str, Any] = {
    "apiVersion": "continuable.dev/v1alpha1",
    "kind": "ContinuableJob",
    "metadata": {"name": "report", "namespace": "batch", "uid": "u-1"},
    "spec": {
        "checkpoint": {"intervalSeconds": 5},
        "template": {
            "metadata": {"labels": {"team": "finance"}, "annotations": {"a": "b"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "job",
                        "image": "python",
                        "env": [
                            {"name": "CONTINUABLE_ATTEMPT", "value": "stale"},
                            {"name": "X", "value": "1"},
                        ],
                    },
                    {"name": "sidecar", "image": "busybox"},
                ],
            },
        },
    },
}


@pytest.fixture
def job() -> dict[str, Any]:
    return copy.deepcopy(JOB)


def test_pod_of_an_attempt(job: dict[str, Any]) -> None:
    pod = build_pod(job, 3)
    metadata = pod["metadata"]
    assert metadata["name"] == "report-3"
    assert metadata["namespace"] == "batch"
    assert metadata["labels"] == {
        "team": "finance",
        "continuable.dev/job": "report",
        "continuable.dev/attempt": "3",
    }
    assert metadata["annotations"]["a"] == "b"
    assert metadata["annotations"]["continuable.dev/template-hash"] == template_hash(
        job["spec"]["template"]
    )
    assert metadata["finalizers"] == ["continuable.dev/tracking"]
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "continuable.dev/v1alpha1",
            "kind": "ContinuableJob",
            "name": "report",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["serviceAccountName"] == "report-checkpoint"
    for container in pod["spec"]["containers"]:
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["CONTINUABLE_JOB"] == "report"
        assert env["CONTINUABLE_NAMESPACE"] == "batch"
        assert env["CONTINUABLE_ATTEMPT"] == "3"
        assert env["CONTINUABLE_CHECKPOINT_INTERVAL"] == "5"
    assert [e["name"] for e in pod["spec"]["containers"][0]["env"]].count(
        "CONTINUABLE_ATTEMPT"
    ) == 1
    assert job == JOB, "building a pod leaves the job as it was"


def test_template_hash_is_stable_and_changes_with_the_template(job: dict[str, Any]) -> None:
    first = template_hash(job["spec"]["template"])
    assert first == template_hash(copy.deepcopy(job["spec"]["template"]))
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "python:3.12"
    assert template_hash(job["spec"]["template"]) != first


def test_named_service_account_is_used_and_none_created(job: dict[str, Any]) -> None:
    assert needs_own_service_account(job)
    job["spec"]["template"]["spec"]["serviceAccountName"] = "reports"
    assert not needs_own_service_account(job)
    assert service_account_of(job) == "reports"
    assert build_pod(job, 1)["spec"]["serviceAccountName"] == "reports"
    assert build_role_binding(job)["subjects"] == [
        {"kind": "ServiceAccount", "name": "reports", "namespace": "batch"}
    ]


def test_role_grants_only_this_jobs_objects(job: dict[str, Any]) -> None:
    rules = build_role(job, 4)["rules"]
    block = tuple(f"report-{n}" for n in range(1, 9))
    assert {(r["resources"][0], tuple(r["resourceNames"]), tuple(r["verbs"])) for r in rules} == {
        ("continuablejobs", ("report",), ("get",)),
        ("continuablejobs/status", ("report",), ("get", "patch")),
        ("configmaps", ("report-results",), ("get", "patch")),
        ("pods", block, ("get",)),
    }


@pytest.mark.parametrize(("attempt", "same_as"), [(1, 8), (9, 16), (17, 24)])
def test_the_role_changes_once_per_block_of_attempts_not_at_every_relaunch(
    job: dict[str, Any], attempt: int, same_as: int
) -> None:
    assert build_role(job, attempt) == build_role(job, same_as)
    assert build_role(job, attempt) != build_role(job, same_as + 1)
    pods = next(r for r in build_role(job, attempt)["rules"] if r["resources"] == ["pods"])
    assert f"report-{attempt}" in pods["resourceNames"]


def test_owned_objects(job: dict[str, Any]) -> None:
    results = build_results_config_map(job, 2)
    assert results["metadata"]["name"] == "report-results"
    assert results["data"] == {"attempt": "2"}
    for built in (results, build_service_account(job), build_role(job, 1), build_role_binding(job)):
        assert built["metadata"]["ownerReferences"][0]["uid"] == "u-1"
        assert built["metadata"]["namespace"] == "batch"
