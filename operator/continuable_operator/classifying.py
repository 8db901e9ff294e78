"""How a pod ended, decided from the pod alone (and the SDK's checkpoint): a pure function.

`spec.podFailurePolicy` is applied first to a failed pod, as batch/v1 Job applies it. Then the
defaults: a disruption (any DisruptionTarget condition, a deletion, or the SDK's clean stop,
exit 75) is an interruption, relaunched at once and never counted against backoffLimit; an
isolated step's stop is neither; anything else that failed is a counted failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from continuable.names import EXIT_INTERRUPTED

from . import conditions as c

Kind = Literal[
    "Succeeded", "Interrupted", "Isolated", "Ignored", "Failed", "FailJob", "NotReplayable"
]


@dataclass(frozen=True)
class Ending:
    kind: Kind
    reason: str
    message: str
    exit_code: int | None = None
    finished_at: str | None = None


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _terminated(pod: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return [
        (s.get("name", ""), s["state"]["terminated"])
        for s in statuses
        if (s.get("state") or {}).get("terminated")
    ]


def _main_exit(pod: Mapping[str, Any]) -> tuple[int | None, str | None, str | None]:
    """Exit code, reason and finish time of the first container (the one running the job)."""
    terminated = _terminated(pod)
    if not terminated:
        return None, None, None
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    first = containers[0].get("name")
    state = next((s for n, s in terminated if n == first), terminated[0][1])
    return state.get("exitCode"), state.get("reason"), state.get("finishedAt")


def _policy_match(rule: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    """Why `rule` matches the pod, or None."""
    on_exit = rule.get("onExitCodes")
    if on_exit:
        wanted = set(on_exit.get("values") or [])
        for name, state in _terminated(pod):
            code = state.get("exitCode")
            # As in batch/v1 Job: containers that succeeded are not considered.
            if code in (None, 0) or on_exit.get("containerName") not in (None, name):
                continue
            if (code in wanted) == (on_exit.get("operator") == "In"):
                return f"container {name} exited with {code}"
    for pattern in rule.get("onPodConditions") or []:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == pattern.get("type") and condition.get(
                "status"
            ) == pattern.get("status", "True"):
                return f"the pod has condition {pattern.get('type')}={condition.get('status')}"
    return None


def classify(
    pod: Mapping[str, Any],
    *,
    attempt: int,
    policy_rules: Sequence[Mapping[str, Any]] = (),
    checkpoint: Mapping[str, Any] | None = None,
) -> Ending:
    """How the terminal `pod` of `attempt` ended."""
    status = pod.get("status") or {}
    exit_code, exit_reason, finished = _main_exit(pod)
    if status.get("phase") == "Succeeded":
        return Ending("Succeeded", c.COMPLETED, "the job's code completed", exit_code, finished)

    for index, rule in enumerate(policy_rules):
        why = _policy_match(rule, pod)
        if why is None:
            continue
        message = f"{why}, matching podFailurePolicy rule {index} ({rule.get('action')})"
        action = rule.get("action")
        if action == "FailJob":
            return Ending("FailJob", c.POD_FAILURE_POLICY, message, exit_code, finished)
        if action == "Ignore":
            return Ending("Ignored", c.POD_FAILURE_POLICY, message, exit_code, finished)
        return Ending("Failed", c.POD_FAILURE_POLICY, message, exit_code, finished)

    ours = checkpoint if checkpoint and checkpoint.get("attempt") == attempt else {}
    stop_reason = ours.get("stopReason")
    disruption = c.find(status.get("conditions") or [], "DisruptionTarget")
    if disruption is not None and disruption.get("status") == "True":
        reason = str(disruption.get("reason") or "DisruptionTarget")
        message = str(disruption.get("message") or "the pod was disrupted")
        return Ending("Interrupted", reason, message, exit_code, finished)
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return Ending("Interrupted", c.POD_DELETED, "the pod was deleted", exit_code, finished)
    if stop_reason == "NotReplayable":
        error = ours.get("error") or {}
        return Ending(
            "NotReplayable",
            c.STEP_NOT_REPLAYABLE,
            str(error.get("message", "")),
            exit_code,
            finished,
        )
    if exit_code == EXIT_INTERRUPTED:
        if stop_reason == "Isolated":
            return Ending(
                "Isolated",
                c.ISOLATED,
                "stopped so an isolated step starts afresh",
                exit_code,
                finished,
            )
        return Ending(
            "Interrupted",
            c.SDK_INTERRUPTED,
            "the job stopped with its cursor saved (exit 75)",
            exit_code,
            finished,
        )
    return Ending("Failed", *_failure(status, exit_code, exit_reason, ours), exit_code, finished)


def _failure(
    status: Mapping[str, Any],
    exit_code: int | None,
    exit_reason: str | None,
    checkpoint: Mapping[str, Any],
) -> tuple[str, str]:
    error = checkpoint.get("error") if checkpoint.get("stopReason") == "Failed" else None
    if error:
        where = f"step {error['step']} failed" if error.get("step") else "the job failed"
        return "StepFailed", f"{where}: {error.get('type')}: {error.get('message')}"
    if exit_reason == "OOMKilled":
        return "OOMKilled", f"the container was killed for exceeding its memory (exit {exit_code})"
    if exit_code is not None:
        return str(exit_reason or "Error"), f"the container exited with code {exit_code}"
    reason = str(status.get("reason") or "PodFailed")
    return reason, str(status.get("message") or "the pod failed before its container ran")
