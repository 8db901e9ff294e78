"""The generated CRD on a real apiserver: accepted, printed, explained, and fencing on /status."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.cluster.session import Cluster, crd_dir

CRD_FILE = crd_dir() / "continuable.dev_continuablejobs.yaml"
CRD_NAME = "continuablejobs.continuable.dev"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.usefixtures("crds"),
    pytest.mark.skipif(not CRD_FILE.is_file(), reason=f"{CRD_FILE} not generated yet"),
]


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _job(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "continuable.dev/v1alpha1",
        "kind": "ContinuableJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}
            }
        },
    }


def _create_job(cluster: Cluster, name: str, namespace: str) -> None:
    cluster.kubectl.retrying("create", "-f", "-", input=json.dumps(_job(name, namespace)))


def _status(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    obj = json.loads(cluster.kubectl("get", "cjob", name, "-n", namespace, "-o", "json"))
    status: dict[str, Any] = obj.get("status", {})
    return status


def test_crd_is_established_and_structural(cluster: Cluster) -> None:
    crd = json.loads(cluster.kubectl("get", "crd", CRD_NAME, "-o", "json"))
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert conditions.get("NamesAccepted") == "True"
    # A non-structural schema is accepted but flagged with this condition.
    assert conditions.get("NonStructuralSchema", "False") == "False"


def test_get_cjob_prints_the_columns(cluster: Cluster, namespace: str) -> None:
    _create_job(cluster, "columns", namespace)
    header = cluster.kubectl("get", "cjob", "-n", namespace).splitlines()[0].split()
    assert header == ["NAME", "PHASE", "STEP", "PROGRESS", "ATTEMPT", "AGE"]


def test_explain_prints_the_descriptions(cluster: Cluster) -> None:
    explained = " ".join(cluster.kubectl.retrying("explain", "cjob.spec.checkpoint").split())
    checkpoint = _schema()["properties"]["spec"]["properties"]["checkpoint"]
    descriptions = [checkpoint["description"]] + [
        field["description"] for field in checkpoint["properties"].values()
    ]
    for description in descriptions:
        # kubectl wraps lines; compare with whitespace normalised.
        assert " ".join(description.split()) in explained


def _json_patch_status(
    cluster: Cluster, name: str, namespace: str, ops: list[dict[str, Any]]
) -> tuple[int, str]:
    # -v=6 logs the HTTP status line, so the test can check for 422 itself.
    result = cluster.kubectl.run(
        "-v=6",
        "patch",
        "cjob",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=json",
        "-p",
        json.dumps(ops),
        check=False,
    )
    return result.returncode, result.stderr


def test_status_patch_is_fenced_on_the_attempt(cluster: Cluster, namespace: str) -> None:
    _create_job(cluster, "fenced", namespace)
    cluster.kubectl(
        "patch",
        "cjob",
        "fenced",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"attempt": 2}}),
    )

    def write(expected_attempt: int, step: str) -> tuple[int, str]:
        return _json_patch_status(
            cluster,
            "fenced",
            namespace,
            [
                {"op": "test", "path": "/status/attempt", "value": expected_attempt},
                {
                    "op": "add",
                    "path": "/status/checkpoint",
                    "value": {"attempt": expected_attempt, "currentStep": step},
                },
            ],
        )

    code, err = write(2, "current")
    assert code == 0, err
    assert _status(cluster, "fenced", namespace)["checkpoint"]["currentStep"] == "current"

    # A pod of an earlier attempt writing late: the test op fails, the apiserver answers 422.
    code, err = write(1, "stale")
    assert code != 0
    assert 'status="422 Unprocessable Entity"' in err, err
    status = _status(cluster, "fenced", namespace)
    assert status["checkpoint"] == {"attempt": 2, "currentStep": "current"}
    assert status["attempt"] == 2
