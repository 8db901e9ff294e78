"""The API server's own verdict on bad ContinuableJobs: each refused, naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from continuable.api import ContinuableJob
from tests.cluster.session import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

VALID: dict[str, Any] = {
    "apiVersion": "continuable.dev/v1alpha1",
    "kind": "ContinuableJob",
    "metadata": {"name": "bad"},
    "spec": {
        "template": {
            "spec": {"containers": [{"name": "main", "image": "python", "command": ["true"]}]}
        }
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    node = document
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return document


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("wrong type", _with("spec.backoffLimit", "six"), "spec.backoffLimit"),
    ("negative backoffLimit", _with("spec.backoffLimit", -1), "spec.backoffLimit"),
    ("negative maxResumptions", _with("spec.maxResumptions", -1), "spec.maxResumptions"),
    ("deadline 0", _with("spec.activeDeadlineSeconds", 0), "spec.activeDeadlineSeconds"),
    ("negative ttl", _with("spec.ttlSecondsAfterFinished", -5), "spec.ttlSecondsAfterFinished"),
    ("interval 0", _with("spec.checkpoint.intervalSeconds", 0), "spec.checkpoint.intervalSeconds"),
    ("budget too small", _with("spec.checkpoint.maxBytes", 100), "spec.checkpoint.maxBytes"),
    (
        "results budget over 1 MiB",
        _with("spec.checkpoint.resultsMaxBytes", 2 * 1024 * 1024),
        "spec.checkpoint.resultsMaxBytes",
    ),
    (
        "unknown restart policy on template change",
        _with("spec.restartPolicyOnTemplateChange", "Restart"),
        "spec.restartPolicyOnTemplateChange",
    ),
    (
        "empty containers",
        _with("spec.template.spec.containers", []),
        "spec.template.spec.containers",
    ),
    ("no template", _with("spec.template", None) | {}, "spec.template"),
    (
        "pod restartPolicy OnFailure",
        _with("spec.template.spec.restartPolicy", "OnFailure"),
        "spec.template.spec.restartPolicy",
    ),
    (
        "bad podFailurePolicy action",
        _with(
            "spec.podFailurePolicy",
            {"rules": [{"action": "Retry", "onExitCodes": {"operator": "In", "values": [1]}}]},
        ),
        "spec.podFailurePolicy.rules[0].action",
    ),
    (
        "rule with neither exit codes nor conditions (CEL)",
        _with("spec.podFailurePolicy", {"rules": [{"action": "Count"}]}),
        "exactly one of onExitCodes and onPodConditions",
    ),
    (
        "exit code 0 with In (CEL)",
        _with(
            "spec.podFailurePolicy",
            {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}]},
        ),
        "spec.podFailurePolicy.rules[0].onExitCodes.values",
    ),
    (
        "backoff max below initial (CEL)",
        _with("spec.backoff", {"initialSeconds": 60, "maxSeconds": 10}),
        "spec.backoff.maxSeconds",
    ),
    (
        "deadline not above the interval (CEL)",
        _with("spec.activeDeadlineSeconds", 5),
        "spec.activeDeadlineSeconds",
    ),
    ("duplicate step names", _with("spec.steps", ["a", "a"]), "spec.steps[1]"),
    ("too many steps", _with("spec.steps", [f"s{i}" for i in range(101)]), "spec.steps"),
    ("step name with a space", _with("spec.steps", ["has space"]), "spec.steps[0]"),
    (
        "oversized container name",
        _with("spec.template.spec.containers", [{"name": "x" * 64}]),
        "spec.template.spec.containers[0].name",
    ),
    ("name not a DNS label (CEL)", _with("metadata.name", "Nightly.Report"), "metadata.name"),
    ("misspelt field (strict)", _with("spec.backofLimit", 3), "backofLimit"),
]


@pytest.mark.parametrize(
    ("document", "field"), [(d, f) for _, d, f in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_jobs_are_refused_naming_the_field(
    cluster: Cluster, namespace: str, document: dict[str, Any], field: str
) -> None:
    if document["spec"].get("template") is None:
        document["spec"].pop("template", None)
    result = cluster.kubectl.run(
        "create",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(document),
        check=False,
    )
    assert result.returncode != 0, f"accepted: {json.dumps(document)}"
    assert field in result.stderr, result.stderr
    assert cluster.kubectl("get", "cjob", "-n", namespace, "-o", "name").strip() == ""


def test_the_valid_base_is_accepted_with_defaults(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "create", "--validate=strict", "-n", namespace, "-f", "-", input=json.dumps(VALID)
    )
    spec = json.loads(cluster.kubectl("get", "cjob", "bad", "-n", namespace, "-o", "json"))["spec"]
    assert spec["backoffLimit"] == 6
    assert spec["checkpoint"] == {
        "intervalSeconds": 10,
        "maxBytes": 16384,
        "resultsMaxBytes": 524288,
    }
    assert spec["restartPolicyOnTemplateChange"] == "Resume"
    assert spec["backoff"] == {"initialSeconds": 10, "factor": 2.0}


# (backoff, accepted): the API server's CEL rule and the model's Python rule give one verdict.
BACKOFFS: list[tuple[dict[str, Any], bool]] = [
    ({"initialSeconds": 600}, True),
    # Stored as null (the field is nullable), which the operator must read as omitted.
    ({"initialSeconds": 600, "maxSeconds": None}, True),
    ({"initialSeconds": 600, "maxSeconds": 600}, True),
    ({"maxSeconds": 60}, True),
    ({"initialSeconds": 600, "maxSeconds": 360}, False),
    ({"maxSeconds": 5}, False),
]


@pytest.mark.parametrize(("backoff", "accepted"), BACKOFFS, ids=[repr(b) for b, _ in BACKOFFS])
def test_max_seconds_is_checked_only_when_given(
    cluster: Cluster, namespace: str, backoff: dict[str, Any], accepted: bool
) -> None:
    """maxSeconds has no schema default (when omitted it is max(360, initialSeconds)), so
    initialSeconds alone is never refused; given, it must not be below initialSeconds."""
    document = _with("spec.backoff", backoff)
    result = cluster.kubectl.run(
        "create",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(document),
        check=False,
    )
    try:
        ContinuableJob.model_validate(document)
        python_accepts = True
    except ValidationError:
        python_accepts = False
    assert (result.returncode == 0, python_accepts) == (accepted, accepted), result.stderr
    if not accepted:
        assert "spec.backoff.maxSeconds" in result.stderr, result.stderr
        return
    job = json.loads(cluster.kubectl("get", "cjob", "bad", "-n", namespace, "-o", "json"))
    assert job["spec"]["backoff"] == {"initialSeconds": 10, "factor": 2.0} | backoff


EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*/job.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_example_is_accepted(cluster: Cluster, namespace: str, example: Path) -> None:
    result = cluster.kubectl.run(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        str(example),
        check=False,
    )
    assert result.returncode == 0, result.stderr
