"""A queued job's priority for Kueue (issue 25): the class it names, resolved to the value the
Workload carries, and, with --kueue-priority-boost, the boost from the age of the work a
preemption would lose. Pure functions over plain objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

# Kueue's label for a WorkloadPriorityClass on a job; it wins over the pod's priorityClassName.
PRIORITY_CLASS_LABEL: Final = "kueue.x-k8s.io/priority-class"
# Kueue's PriorityBoost (alpha, KEP-7990): added to spec.priority when Kueue orders preemption
# victims. The operator raises it with the age of a running job's checkpoint (--kueue-priority-
# boost), so among equal priorities the job that saved most recently, which loses least, goes
# first.
BOOST_ANNOTATION: Final = "kueue.x-k8s.io/priority-boost"
MAX_BOOST: Final = 10


@dataclass(frozen=True)
class Priority:
    """A priority class resolved to its value: spec.priorityClassRef and spec.priority go
    together (Kueue does not fill in the value for a Workload it did not make)."""

    group: str  # kueue.x-k8s.io (WorkloadPriorityClass) or scheduling.k8s.io (PriorityClass)
    kind: str
    name: str
    value: int


def priority_class_wanted(job: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(group, kind, name) of the class the job's priority comes from: the WorkloadPriorityClass
    its label names, else the PriorityClass its pod template names, else none."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    if labels.get(PRIORITY_CLASS_LABEL):
        return ("kueue.x-k8s.io", "WorkloadPriorityClass", str(labels[PRIORITY_CLASS_LABEL]))
    spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    if spec.get("priorityClassName"):
        return ("scheduling.k8s.io", "PriorityClass", str(spec["priorityClassName"]))
    return None


def missing_class(wanted: tuple[str, str, str]) -> str:
    """What a queued job says while the priority class it names does not exist."""
    _, kind, name = wanted
    where = (
        f"metadata.labels[{PRIORITY_CLASS_LABEL}]"
        if kind == "WorkloadPriorityClass"
        else "spec.template.spec.priorityClassName"
    )
    return (
        f"{where}: {kind} {name!r} does not exist; the job's Workload is made (and the job "
        "queued) once it does"
    )


def boost(age: float, interval: float) -> int:
    """The priority boost of a running job whose last checkpoint is `age` seconds old: 0 while
    it is younger than two checkpoint intervals (a job that saves on time never gets one), then
    floor(log2(age / interval)): 1 from 2 intervals, 2 from 4, 3 from 8, ... at most MAX_BOOST
    (from 1,024 intervals). A logarithm, so a job that has not saved for long is protected
    more, without one stale job outranking a whole priority class."""
    if interval <= 0 or age < 2 * interval:
        return 0
    return min(MAX_BOOST, int(math.log2(age / interval)))


def boost_of(workload: Mapping[str, Any]) -> int:
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(BOOST_ANNOTATION) or 0)
    except ValueError:
        return 0
