"""The soak's judges: pure functions from a run's records to verdicts, one invariant each.

None of them takes the operator's own counters or conditions as the truth: the ledger (what
the jobs' code did), the fault log (what the harness did), the API server's audit log and a
watch of pods and nodes are the evidence; the operator's status is what is being checked.
`judge_run` is what the runner calls on a finished run's folder.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from tests.soak.records import Records, load

from . import accounting, audit, ledger, liveness, pods
from .verdict import Verdict

__all__ = ["Verdict", "judge_all", "judge_run", "load_records"]


def judge_all(
    records: Records,
    *,
    bound_seconds: float | None = None,
    requests_per_second: float = audit.DEFAULT_RATE,
) -> list[Verdict]:
    """Every judge's verdict, in the README's order of the guarantees."""
    return [
        ledger.judge(records),
        audit.judge(records, rate=requests_per_second),
        pods.judge(records),
        accounting.judge(records),
        liveness.judge(records, bound_seconds=bound_seconds),
    ]


@functools.lru_cache(maxsize=1)
def load_records(run_dir: Path) -> Records:
    """The run folder's records, loaded once for the judges and the report (the audit log of
    a full run takes a while to read)."""
    return load(run_dir)


def judge_run(run_dir: Path) -> list[Verdict]:
    """The verdicts on a run folder. Every job must end within the run's budget
    (`settings.minutes` of `summary.json`, when the runner wrote it) of its creation."""
    bound: float | None = None
    summary = run_dir / "summary.json"
    if summary.exists():
        minutes = (json.loads(summary.read_text()).get("settings") or {}).get("minutes")
        bound = float(minutes) * 60 if minutes else None
    return judge_all(load_records(run_dir), bound_seconds=bound)
