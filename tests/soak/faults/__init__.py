"""Fault injectors, one module per family: `pods` (a job's pod), `jobs` (a job's spec or the
job object), `nodes` (a node and every job pod on it), `control` (operator and API server).

Each injection appends one line per job it hit to `<run>/faults.jsonl`:

    {"t": epoch, "kind", "job", "pod", "attempt", "node", "reached_pod", "graceful", "detail"}

`t` is the moment the fault hit (for a partition: the agent's freeze). `reached_pod` says the
fault hit a running pod of the job (for a node fault, one line per job pod on the node; a node
or cluster fault that hit no job pod writes one line with `job` null). `graceful` says the pod,
if hit, was given its grace period (SIGTERM first). `detail` is `key=value` words.
A planned fault whose job has finished is moved to a job still running (or skipped if none is),
see `running.py`; skipped faults go to `<run>/skipped.jsonl`, not here.
"""

from __future__ import annotations

from .base import FaultContext, FaultLog, FaultRecord, inject

__all__ = ["FaultContext", "FaultLog", "FaultRecord", "inject"]
