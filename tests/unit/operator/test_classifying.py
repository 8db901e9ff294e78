"""How a pod ended: a table, since this decides what counts against which budget."""

from __future__ import annotations

from typing import Any

import pytest

from continuable_operator.classifying import classify

from .conftest import pod

DISRUPTED = [
    {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    }
]
POLICY = [
    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
    {"action": "Ignore", "onPodConditions": [{"type": "ConfigIssue", "status": "True"}]},
    {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 75]}},
]


def _checkpoint(stop: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
    return {"attempt": attempt, "stopReason": stop, **extra}


CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    ("success", pod(1, "Succeeded", exit_code=0), {}, "Succeeded", "Completed"),
    (
        "eviction",
        pod(1, "Failed", exit_code=143, conditions=DISRUPTED),
        {},
        "Interrupted",
        "EvictionByEvictionAPI",
    ),
    (
        "deleted by someone",
        pod(1, "Failed", exit_code=143, deleting=True),
        {},
        "Interrupted",
        "PodDeleted",
    ),
    (
        "sdk clean stop",
        pod(1, "Failed", exit_code=75),
        {"checkpoint": _checkpoint("Interrupted")},
        "Interrupted",
        "Interrupted",
    ),
    (
        "isolated step",
        pod(1, "Failed", exit_code=75),
        {"checkpoint": _checkpoint("Isolated")},
        "Isolated",
        "IsolatedStep",
    ),
    (
        "isolated step as an eviction came",
        pod(1, "Failed", exit_code=75, conditions=DISRUPTED, deleting=True),
        {"checkpoint": _checkpoint("Isolated")},
        "Isolated",
        "IsolatedStep",
    ),
    (
        "isolated step as the operator stopped it for a rollout",
        pod(1, "Failed", exit_code=75, conditions=[{**DISRUPTED[0], "reason": "TemplateChanged"}]),
        {"checkpoint": _checkpoint("Isolated")},
        "Isolated",
        "IsolatedStep",
    ),
    (
        "the job finished as a preemption came",
        pod(1, "Failed", exit_code=0, conditions=DISRUPTED, deleting=True),
        {"checkpoint": _checkpoint("Completed")},
        "Succeeded",
        "Completed",
    ),
    (
        "a completion of another attempt",
        pod(2, "Failed", exit_code=0, conditions=DISRUPTED),
        {"attempt": 2, "checkpoint": _checkpoint("Completed", attempt=1)},
        "Interrupted",
        "EvictionByEvictionAPI",
    ),
    (
        "isolated marker of another attempt",
        pod(2, "Failed", exit_code=75),
        {"attempt": 2, "checkpoint": _checkpoint("Isolated", attempt=1)},
        "Interrupted",
        "Interrupted",
    ),
    ("crash", pod(1, "Failed", exit_code=1), {}, "Failed", "Error"),
    (
        "user code raised",
        pod(1, "Failed", exit_code=1),
        {
            "checkpoint": _checkpoint(
                "Failed", error={"step": "load", "type": "KeyError", "message": "'id'"}
            )
        },
        "Failed",
        "StepFailed",
    ),
    ("oom", pod(1, "Failed", exit_code=137, reason="OOMKilled"), {}, "Failed", "OOMKilled"),
    (
        "not replayable",
        pod(1, "Failed", exit_code=1),
        {"checkpoint": _checkpoint("NotReplayable", error={"message": "step x"})},
        "NotReplayable",
        "StepNotReplayable",
    ),
    (
        "policy FailJob",
        pod(1, "Failed", exit_code=42),
        {"policy_rules": POLICY},
        "FailJob",
        "PodFailurePolicy",
    ),
    (
        "policy Ignore",
        pod(1, "Failed", exit_code=1, conditions=[{"type": "ConfigIssue", "status": "True"}]),
        {"policy_rules": POLICY},
        "Ignored",
        "PodFailurePolicy",
    ),
    (
        "policy Count",
        pod(1, "Failed", exit_code=3),
        {"policy_rules": POLICY},
        "Failed",
        "PodFailurePolicy",
    ),
    (
        "policy counts a disruption the user asked to count",
        pod(1, "Failed", exit_code=143, conditions=DISRUPTED),
        {"policy_rules": POLICY[2:]},
        "Failed",
        "PodFailurePolicy",
    ),
    (
        "no rule matches: the defaults",
        pod(1, "Failed", exit_code=75),
        {"policy_rules": POLICY},
        "Interrupted",
        "Interrupted",
    ),
]


@pytest.mark.parametrize(
    ("the_pod", "options", "kind", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classify(the_pod: dict[str, Any], options: dict[str, Any], kind: str, reason: str) -> None:
    options = {"attempt": 1, **options}
    ending = classify(the_pod, **options)
    assert (ending.kind, ending.reason) == (kind, reason)


def test_messages_say_what_happened() -> None:
    ending = classify(
        pod(1, "Failed", exit_code=1),
        attempt=1,
        checkpoint=_checkpoint(
            "Failed", error={"step": "load", "type": "KeyError", "message": "'id'"}
        ),
    )
    assert ending.message == "step load failed: KeyError: 'id'"
    assert ending.exit_code == 1
    assert ending.finished_at == "2026-11-27T08:59:30Z"
    rejected = {
        "metadata": {"name": "x"},
        "status": {"phase": "Failed", "reason": "OutOfcpu", "message": "Pod was rejected: cpu"},
    }
    assert classify(rejected, attempt=1).reason == "OutOfcpu"
