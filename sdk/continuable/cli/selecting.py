"""Which job, which pod: reading the user's JOB argument and picking the pod a command acts on.

Pure functions of the objects the API returned, so every choice and every refusal is tested
without a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from continuable.names import (
    ATTEMPT_LABEL,
    GROUP,
    JOB_NAME_MAX_LENGTH,
    JOB_NAME_PATTERN,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    pod_name,
)

from .errors import CliError

# Spellings of the resource kubectl accepts before a slash: `cjob/x`, `continuablejobs/x`, ...
_RESOURCE_NAMES = {
    name
    for base in (SHORT_NAME, SINGULAR, PLURAL, KIND.lower())
    for name in (base, f"{base}.{GROUP}")
}


def job_name(reference: str) -> str:
    """`x`, `cjob/x` or `continuablejobs.continuable.dev/x` -> `x`."""
    name = reference
    if "/" in reference:
        resource, _, name = reference.partition("/")
        if resource.lower() not in _RESOURCE_NAMES:
            raise CliError(
                f"{reference!r} is not a ContinuableJob; write NAME or cjob/NAME "
                f"(not {resource}/...)"
            )
    if len(name) > JOB_NAME_MAX_LENGTH or not re.fullmatch(JOB_NAME_PATTERN, name):
        raise CliError(
            f"{name!r} is not a valid ContinuableJob name (a DNS-1123 label: lower case "
            f"letters, digits and '-', at most {JOB_NAME_MAX_LENGTH} characters)"
        )
    return name


def status_of(job: Mapping[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = job.get("status") or {}
    return status


def checkpoint_of(job: Mapping[str, Any]) -> dict[str, Any]:
    checkpoint: dict[str, Any] = status_of(job).get("checkpoint") or {}
    return checkpoint


def known_steps(job: Mapping[str, Any]) -> list[str]:
    """Step names the job's pods have reported, in the order they first ran."""
    return [str(step["name"]) for step in checkpoint_of(job).get("steps") or [] if "name" in step]


def restartable_steps(job: Mapping[str, Any]) -> list[str]:
    """Step names a restart may name, as the operator accepts them: those reported, then those
    spec.steps expects."""
    reported = known_steps(job)
    expected = (job.get("spec") or {}).get("steps") or []
    return [*reported, *(str(s) for s in expected if s not in reported)]


def attempt_of(pod: Mapping[str, Any]) -> int:
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(ATTEMPT_LABEL, "")
    return int(label) if str(label).isdigit() else 0


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_to_interrupt(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The job's running pod, or a CliError saying why there is none to interrupt."""
    name = str((job.get("metadata") or {}).get("name", ""))
    status = status_of(job)
    ordered = sorted(pods, key=attempt_of, reverse=True)
    alive = [p for p in ordered if _phase(p) not in ("Succeeded", "Failed")]
    current = status.get("podName")
    alive.sort(key=lambda p: _name(p) != current)  # the operator's current pod first
    if alive:
        pod = alive[0]
        if _terminating(pod):
            raise CliError(
                f"pod {_name(pod)} of job {name} is already stopping (deleted at "
                f"{pod['metadata']['deletionTimestamp']}); the operator relaunches the job "
                "from its checkpoint when it is gone"
            )
        if _phase(pod) != "Running":
            raise CliError(
                f"pod {_name(pod)} of job {name} is {_phase(pod)}, not running yet: there is "
                "no progress to interrupt; try again once it runs"
            )
        return dict(pod)
    phase = status.get("phase") or "Pending"
    hint = {
        "Succeeded": "it has finished",
        "Failed": "it has failed (use `continuable restart` to run it again)",
        "Suspended": "it is suspended (spec.suspend is true)",
        "Interrupted": "it is between attempts; the operator is starting the next one",
    }.get(phase, "the operator has not started one yet")
    raise CliError(f"job {name} has no running pod to interrupt: {hint} (phase {phase})")


def pod_for_logs(
    job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], attempt: int | None
) -> str:
    """The pod whose log `logs` shows: the given attempt's, or the current (latest) one."""
    name = str((job.get("metadata") or {}).get("name", ""))
    status = status_of(job)
    records = status.get("attempts") or []
    if attempt is not None:
        for record in records:
            if record.get("attempt") == attempt and record.get("podName"):
                return str(record["podName"])
        for pod in pods:
            if attempt_of(pod) == attempt:
                return _name(pod)
        latest = int(status.get("attempt") or 0)
        if attempt < 1 or attempt > latest:
            raise CliError(
                f"job {name} has no attempt {attempt}"
                + (f" (attempts: 1 to {latest})" if latest else " (no attempt has started yet)")
            )
        return pod_name(name, attempt)
    if status.get("podName"):
        return str(status["podName"])
    ordered = sorted(pods, key=attempt_of, reverse=True)
    if ordered:
        return _name(ordered[0])
    if records and records[-1].get("podName"):
        return str(records[-1]["podName"])
    raise CliError(f"job {name} has no pod yet: the operator has not started an attempt")


def job_container(pod: Mapping[str, Any]) -> str | None:
    """The container that runs the job's code: the first one (the operator's convention)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0]["name"]) if containers else None
