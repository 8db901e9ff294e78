"""How a pod ended, decided from the pod alone (and the SDK's checkpoint): a pure function.

The stops the operator causes itself (a rollout, suspend, the deadline, a restart: stamped on the
pod as DisruptionTarget first) are classified first, so no podFailurePolicy rule can turn them into
failures (an `onExitCodes` rule on 137 would, when the grace period ends in SIGKILL). Then
`spec.podFailurePolicy`, as batch/v1 Job applies it; an `Ignore` rule counts in no budget, except
that a disrupted pod it matches still counts against maxResumptions (otherwise the batch/v1
recipe `DisruptionTarget -> Ignore` would exempt preemptions from it). Then the defaults: a
disruption (any DisruptionTarget condition, a deletion, or the SDK's clean stop, exit 75) is an
interruption, relaunched at once and never counted against backoffLimit; an isolated step's stop
is neither; anything else that failed is a counted failure.
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
    # The pod was disrupted (DisruptionTarget, or deleted): an Ignored ending then still counts
    # as an interruption.
    disrupted: bool = False


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
    ours = checkpoint if checkpoint and checkpoint.get("attempt") == attempt else {}
    stop_reason = ours.get("stopReason")
    # A pod that finished the job, or stopped at an isolated step's boundary, says so in its
    # own last checkpoint; that holds even if a stop was on its way (an eviction, a rollout,
    # a preemption that marks the pod Failed): it was not interrupted (found by the soak).
    if status.get("phase") == "Succeeded" or (exit_code == 0 and stop_reason == "Completed"):
        return Ending("Succeeded", c.COMPLETED, "the job's code completed", exit_code, finished)
    if exit_code == EXIT_INTERRUPTED and stop_reason == "Isolated":
        return Ending(
            "Isolated", c.ISOLATED, "stopped so an isolated step starts afresh", exit_code, finished
        )

    disruption = c.find(status.get("conditions") or [], "DisruptionTarget")
    if disruption is not None and disruption.get("status") != "True":
        disruption = None
    if disruption is not None and disruption.get("reason") in c.OWN_STOPS:
        message = str(disruption.get("message") or "the operator stopped the pod")
        return Ending("Interrupted", str(disruption["reason"]), message, exit_code, finished, True)
    deleted = bool((pod.get("metadata") or {}).get("deletionTimestamp"))

    for index, rule in enumerate(policy_rules):
        why = _policy_match(rule, pod)
        if why is None:
            continue
        message = f"{why}, matching podFailurePolicy rule {index} ({rule.get('action')})"
        action = rule.get("action")
        if action == "FailJob":
            return Ending("FailJob", c.POD_FAILURE_POLICY, message, exit_code, finished)
        if action == "Ignore":
            disrupted = disruption is not None or deleted
            return Ending("Ignored", c.POD_FAILURE_POLICY, message, exit_code, finished, disrupted)
        return Ending("Failed", c.POD_FAILURE_POLICY, message, exit_code, finished)

    if disruption is not None:
        reason = str(disruption.get("reason") or "DisruptionTarget")
        message = str(disruption.get("message") or "the pod was disrupted")
        return Ending("Interrupted", reason, message, exit_code, finished, True)
    if deleted:
        message = "the pod was deleted"
        return Ending("Interrupted", c.POD_DELETED, message, exit_code, finished, True)
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
