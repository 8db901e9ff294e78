"""The pydantic models: round trips, defaults, and every invalid input refused with its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from continuable.api import (
    AttemptRecord,
    Condition,
    ContinuableJob,
    ContinuableJobSpec,
    ContinuableJobStatus,
)

FULL_SPEC: dict[str, Any] = {
    "template": {
        "metadata": {"labels": {"team": "finance"}},
        "spec": {
            "containers": [{"name": "job", "image": "python:3.11", "args": ["-m", "jobs.report"]}],
            "restartPolicy": "Never",
            "priorityClassName": "batch-low",
        },
    },
    "backoffLimit": 3,
    "backoff": {"initialSeconds": 5, "maxSeconds": 60, "factor": 3.0},
    "podFailurePolicy": {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "Count",
                "onExitCodes": {"containerName": "job", "operator": "NotIn", "values": [0, 75]},
            },
        ]
    },
    "maxResumptions": 10,
    "activeDeadlineSeconds": 3600,
    "ttlSecondsAfterFinished": 600,
    "suspend": True,
    "checkpoint": {"intervalSeconds": 1, "maxBytes": 4096, "resultsMaxBytes": 65536},
    "restartPolicyOnTemplateChange": "Ignore",
    "steps": ["fetch_orders", "process_orders", "notify"],
}

FULL_STATUS: dict[str, Any] = {
    "observedGeneration": 2,
    "phase": "Running",
    "attempt": 2,
    "podName": "nightly-report-2",
    "startTime": "2026-11-27T08:00:00Z",
    "interruptions": 1,
    "failures": 0,
    "resumptions": 1,
    "attempts": [
        {
            "attempt": 1,
            "podName": "nightly-report-1",
            "startTime": "2026-11-27T08:00:00Z",
            "endTime": "2026-11-27T08:05:00Z",
            "outcome": "Interrupted",
            "reason": "Preempted",
            "message": "preempted by a higher priority pod",
            "exitCode": 75,
        },
        {"attempt": 2, "podName": "nightly-report-2", "outcome": "Running"},
    ],
    "conditions": [
        {
            "type": "Running",
            "status": "True",
            "reason": "PodRunning",
            "message": "attempt 2 is running",
            "lastTransitionTime": "2026-11-27T08:05:02Z",
            "observedGeneration": 2,
        }
    ],
    "savedSeconds": 290.5,
    "checkpoint": {
        "steps": [
            {
                "name": "fetch_orders",
                "state": "Completed",
                "attempt": 1,
                "startedAt": "2026-11-27T08:00:01Z",
                "completedAt": "2026-11-27T08:00:31Z",
                "durationSeconds": 30.0,
            },
            {
                "name": "process_orders",
                "state": "Started",
                "cursor": {"page": 7, "token": "abc"},
                "attempt": 1,
                "startedAt": "2026-11-27T08:00:31Z",
            },
        ],
        "currentStep": "process_orders",
        "progress": {"done": 742, "total": 1000, "summary": "742/1000"},
        "updatedAt": "2026-11-27T08:05:10Z",
        "attempt": 2,
    },
}


def test_full_object_round_trips(minimal: dict[str, Any]) -> None:
    minimal["spec"] = FULL_SPEC
    minimal["status"] = FULL_STATUS
    assert ContinuableJob.model_validate(minimal).to_wire() == minimal


def test_defaults_match_batch_job_and_the_design(minimal: dict[str, Any]) -> None:
    job = ContinuableJob.model_validate(minimal)
    wire = job.to_wire()["spec"]
    assert wire["backoffLimit"] == 6
    # No maxSeconds: when omitted it is max(360, initialSeconds), which no schema default can say.
    assert wire["backoff"] == {"initialSeconds": 10, "factor": 2.0}
    assert wire["checkpoint"] == {
        "intervalSeconds": 10,
        "maxBytes": 16384,
        "resultsMaxBytes": 524288,
    }
    assert wire["suspend"] is False
    assert wire["restartPolicyOnTemplateChange"] == "Resume"
    assert "maxResumptions" not in wire


BACKOFFS: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"initialSeconds": 600}, True),
    ({"initialSeconds": 600, "maxSeconds": None}, True),
    ({"initialSeconds": 86400, "factor": 1.0}, True),
    ({"initialSeconds": 600, "maxSeconds": 600}, True),
    ({"initialSeconds": 5, "maxSeconds": 60}, True),
    ({"maxSeconds": 60}, True),
    ({"initialSeconds": 60, "maxSeconds": 10}, False),
    ({"initialSeconds": 600, "maxSeconds": 360}, False),
    ({"maxSeconds": 5}, False),
]


@pytest.mark.parametrize(("backoff", "valid"), BACKOFFS, ids=[repr(b) for b, _ in BACKOFFS])
def test_max_seconds_is_checked_only_when_given(
    minimal: dict[str, Any], backoff: dict[str, Any], valid: bool
) -> None:
    """The same verdicts as the API server's CEL rule (tests/e2e/cluster/test_validation.py)."""
    minimal["spec"]["backoff"] = backoff
    if valid:
        wire = ContinuableJob.model_validate(minimal).to_wire()["spec"]["backoff"]
        assert wire.get("maxSeconds") == backoff.get("maxSeconds")
    else:
        with pytest.raises(ValidationError, match="maxSeconds must be greater than or equal"):
            ContinuableJob.model_validate(minimal)


def test_status_counters_are_always_present() -> None:
    wire = ContinuableJobStatus().to_wire()
    assert {k: wire[k] for k in ("attempt", "interruptions", "failures", "resumptions")} == {
        "attempt": 0,
        "interruptions": 0,
        "failures": 0,
        "resumptions": 0,
    }


def test_unknown_pod_template_fields_are_kept(minimal: dict[str, Any]) -> None:
    minimal["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "batch"}
    wire = ContinuableJob.model_validate(minimal).to_wire()
    assert wire["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "batch"}
    assert wire["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.11"


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        document = document.setdefault(key, {})
    document[keys[-1]] = value


INVALID: list[tuple[str, Any, str]] = [
    ("spec.backoffLimit", -1, "backoffLimit"),
    ("spec.backoffLimit", "six", "backoffLimit"),
    ("spec.backofLimit", 3, "backofLimit"),
    ("spec.maxResumptions", -2, "maxResumptions"),
    ("spec.activeDeadlineSeconds", 0, "activeDeadlineSeconds"),
    ("spec.ttlSecondsAfterFinished", -1, "ttlSecondsAfterFinished"),
    ("spec.suspend", "maybe", "suspend"),
    ("spec.checkpoint.intervalSeconds", 0, "intervalSeconds"),
    ("spec.checkpoint.maxBytes", 512, "maxBytes"),
    ("spec.checkpoint.maxBytes", 2 * 1024 * 1024, "maxBytes"),
    ("spec.checkpoint.resultsMaxBytes", 2 * 1024 * 1024, "resultsMaxBytes"),
    ("spec.restartPolicyOnTemplateChange", "Restart", "restartPolicyOnTemplateChange"),
    ("spec.template.spec.containers", [], "containers"),
    ("spec.template.spec", {}, "containers"),
    ("spec.template.spec.restartPolicy", "OnFailure", "restartPolicy"),
    ("spec.template", None, "template"),
    ("spec.backoff", {"initialSeconds": 60, "maxSeconds": 10}, "maxSeconds"),
    ("spec.backoff.factor", 0.5, "factor"),
    ("spec.podFailurePolicy", {"rules": [{"action": "Retry", "onPodConditions": []}]}, "action"),
    (
        "spec.podFailurePolicy",
        {"rules": [{"action": "Count"}]},
        "exactly one of onExitCodes and onPodConditions",
    ),
    (
        "spec.podFailurePolicy",
        {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 1]}}]},
        "values",
    ),
    (
        "spec.podFailurePolicy",
        {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3, 3]}}]},
        "values",
    ),
    (
        "spec.podFailurePolicy",
        {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "Is", "values": [3]}}]},
        "operator",
    ),
    (
        "spec.podFailurePolicy",
        {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [256]}}]},
        "values",
    ),
    ("spec.steps", ["fetch", "fetch"], "steps"),
    ("spec.steps", ["has space"], "steps"),
    ("spec.steps", [f"s{i}" for i in range(101)], "steps"),
    ("spec.activeDeadlineSeconds", 5, "activeDeadlineSeconds"),
    ("metadata.name", "Nightly_Report", "metadata.name"),
    ("metadata.name", "x" * 64, "metadata.name"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"), INVALID, ids=[f"{p}={v!r:.30}" for p, v, _ in INVALID]
)
def test_invalid_input_is_refused_naming_the_field(
    minimal: dict[str, Any], path: str, value: Any, field: str
) -> None:
    document = copy.deepcopy(minimal)
    _set(document, path, value)
    with pytest.raises(ValidationError) as raised:
        ContinuableJob.model_validate(document)
    assert field in str(raised.value)


def test_assignment_is_validated_too() -> None:
    spec = ContinuableJobSpec.model_validate(
        {"template": {"spec": {"containers": [{"name": "c"}]}}}
    )
    with pytest.raises(ValidationError, match="backoff_limit"):
        spec.backoff_limit = -1


def test_a_vanished_pod_ends_its_attempt_as_lost() -> None:
    record = {"attempt": 3, "podName": "nightly-report-3", "outcome": "Lost", "reason": "PodLost"}
    assert AttemptRecord.model_validate(record).to_wire() == record


@pytest.mark.parametrize("type_", ["NameConflict", "ServiceAccountShared", "RestartRefused"])
def test_the_operator_may_write_the_new_condition_types(type_: str) -> None:
    condition = {
        "type": type_,
        "status": "True",
        "reason": type_,
        "message": "details",
        "lastTransitionTime": "2026-11-27T08:05:02Z",
    }
    assert Condition.model_validate(condition).to_wire()["type"] == type_


# What metav1.Condition allows as a reason (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
CONDITION_REASONS: list[tuple[str, bool]] = [
    ("PodRunning", True),
    ("Out_of_gpu", True),
    ("a", True),
    ("Quota:Exceeded,Twice", True),
    ("OutOfnvidia.com/gpu", False),
    ("OutOfephemeral-storage", False),
    ("Ends:", False),
    ("1stReason", False),
    ("", False),
]


@pytest.mark.parametrize(
    ("reason", "valid"), CONDITION_REASONS, ids=[r or "empty" for r, _ in CONDITION_REASONS]
)
def test_condition_reasons_follow_the_metav1_pattern(reason: str, valid: bool) -> None:
    condition = {
        "type": "PodCreateFailed",
        "status": "True",
        "reason": reason,
        "lastTransitionTime": "2026-11-27T08:05:02Z",
    }
    if valid:
        Condition.model_validate(condition)
    else:
        with pytest.raises(ValidationError, match="reason"):
            Condition.model_validate(condition)
