"""The soak's report: figures per fault kind, the invariants' verdicts with their evidence, the
totals, and the command that reproduces the run; as JSON (`report.json`) and as text
(`report.txt`, also what `make soak` prints).

Pure over the records and the verdicts, like the judges, so a kept run folder can be reported
again. Relaunch latency is measured from the fault's injection to the first Running event of a
later attempt's pod of the same job uid in the pod watch (for a suspend it includes the
suspension); faults that reached no pod, or after which the job never ran again, have none.
Repeated items are attributed to the kind of the fault that reached the attempt charged with
them (see `judges/passes.py`), or to "(none)" when no fault reached it.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.soak.judges import load_records
from tests.soak.judges.faults import lossy
from tests.soak.judges.passes import Run, faults_on
from tests.soak.judges.verdict import Verdict
from tests.soak.records import Fault, Records

# Evidence lines kept per invariant: the JSON keeps enough to debug, the text enough to read.
JSON_EVIDENCE = 200
TEXT_EVIDENCE = 20
NO_FAULT = "(none)"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def relaunch_latency(records: Records, fault: Fault) -> float | None:
    uid = records.fault_uid(fault)
    if not fault.reached_pod or uid is None:
        return None
    attempt = fault.attempt
    if attempt is None:
        # The newest attempt the pod watch had seen by then.
        seen = [p.attempt or 0 for p in records.pods_of(uid) if p.t <= fault.t]
        attempt = max(seen, default=0)
    started = [
        p.t
        for p in records.pods_of(uid)
        if (p.attempt or 0) > attempt and p.phase == "Running" and p.t >= fault.t
    ]
    return min(started) - fault.t if started else None


def repeats_by_kind(records: Records) -> Counter[str]:
    counts: Counter[str] = Counter()
    for job in records.jobs:
        run = Run(records, job)
        for repeat in run.repeats():
            if repeat.what.isdigit():
                hits = faults_on(records, run, repeat.charged)
                first = [f for f in hits if lossy(f)] or hits
                counts[first[0].kind if first else NO_FAULT] += 1
    return counts


def fault_table(records: Records) -> list[dict[str, Any]]:
    injected: Counter[str] = Counter(f.kind for f in records.faults)
    reached: Counter[str] = Counter(f.kind for f in records.faults if f.reached_pod)
    latencies: dict[str, list[float]] = defaultdict(list)
    for fault in records.faults:
        latency = relaunch_latency(records, fault)
        if latency is not None:
            latencies[fault.kind].append(latency)
    repeats = repeats_by_kind(records)
    rows = []
    for kind in sorted(set(injected) | set(repeats)):
        rows.append(
            {
                "kind": kind,
                "injected": injected[kind],
                "reached_pod": reached[kind],
                "relaunches": len(latencies[kind]),
                "relaunch_p50_seconds": percentile(latencies[kind], 50),
                "relaunch_p99_seconds": percentile(latencies[kind], 99),
                "repeated_items": repeats[kind],
            }
        )
    return rows


def _command(seed: int, jobs: int, faults: int, minutes: float) -> str:
    return (
        f"make soak SOAK_SEED={seed} SOAK_JOBS={jobs} SOAK_FAULTS={faults} SOAK_MINUTES={minutes:g}"
    )


def build_report(
    records: Records,
    verdicts: list[Verdict],
    seed: int,
    wall_seconds: float,
    *,
    jobs: int | None = None,
    faults_per_job: int | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    """The report as a JSON-able dict. `jobs`, `faults_per_job` and `minutes` are the run's
    settings for the reproducing command; when not given they are estimated from the records
    (the jobs' names, the faults per name, the wall time)."""
    names = records.names()
    jobs = jobs if jobs is not None else len(names)
    if faults_per_job is None:
        faults_per_job = round(len(records.faults) / len(names)) if names else 0
    minutes = minutes if minutes is not None else math.ceil(wall_seconds / 60)
    table = fault_table(records)
    item_lines = sum(
        1 for lines in records.ledger.values() for line in lines if line.item is not None
    )
    return {
        "seed": seed,
        "command": _command(seed, jobs, faults_per_job, minutes),
        "held": all(v.held for v in verdicts),
        "violations": sum(len(v.evidence) for v in verdicts),
        "totals": {
            "jobs": len(names),
            "uids": len(records.jobs),
            "faults": len(records.faults),
            "faults_reached_pod": sum(1 for f in records.faults if f.reached_pod),
            "items": sum(records.last(n).items for n in names),
            "items_done": item_lines,
            "repeated_items": sum(row["repeated_items"] for row in table),
            "wall_seconds": round(wall_seconds, 1),
            "unreadable_lines": dict(records.skipped),
        },
        "faults": table,
        "invariants": [
            {
                "name": v.name,
                "held": v.held,
                "violations": len(v.evidence),
                "evidence": v.evidence[:JSON_EVIDENCE],
                "figures": v.figures,
            }
            for v in verdicts
        ],
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return [line.format(*header), line.format(*("-" * w for w in widths))] + [
        line.format(*r) for r in rows
    ]


def _figures(figures: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in figures.items())


def render(report: dict[str, Any]) -> str:
    totals = report["totals"]
    result = "HELD" if report["held"] else f"{report['violations']} VIOLATIONS"
    out = [
        f"ContinuableJob soak, seed {report['seed']}: {result}",
        f"reproduce: {report['command']}",
        "",
    ]
    header = ["fault", "injected", "reached pod", "relaunch p50", "relaunch p99", "repeated"]
    rows = [
        [
            row["kind"],
            str(row["injected"]),
            str(row["reached_pod"]),
            _seconds(row["relaunch_p50_seconds"]),
            _seconds(row["relaunch_p99_seconds"]),
            str(row["repeated_items"]),
        ]
        for row in report["faults"]
    ]
    out += [*_table(header, rows), ""]
    for invariant in report["invariants"]:
        state = "held" if invariant["held"] else f"VIOLATED ({invariant['violations']})"
        out.append(f"{invariant['name']}: {state}; {_figures(invariant['figures'])}")
        shown = invariant["evidence"][:TEXT_EVIDENCE]
        out += [f"  - {line}" for line in shown]
        if invariant["violations"] > len(shown):
            out.append(f"  ... {invariant['violations'] - len(shown)} more in report.json")
    out += [
        "",
        f"totals: {totals['faults']} faults ({totals['faults_reached_pod']} reached a pod), "
        f"{totals['jobs']} jobs ({totals['uids']} uids), {totals['items']} items "
        f"({totals['items_done']} done), {totals['repeated_items']} repeated, "
        f"wall time {totals['wall_seconds'] / 60:.1f} min",
    ]
    if totals["unreadable_lines"]:
        out.append(f"unreadable record lines (skipped): {totals['unreadable_lines']}")
    return "\n".join(out) + "\n"


def write(report: dict[str, Any], run_dir: Path) -> None:
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.txt").write_text(render(report))


def write_report(run_dir: Path, verdicts: list[Verdict], summary: dict[str, Any]) -> int:
    """What the runner calls at the end: the report from the run's summary (`seed`,
    `wall_seconds`, `settings`), written and printed; the exit code (1: a violation)."""
    settings = summary.get("settings") or {}
    built = build_report(
        load_records(run_dir),
        verdicts,
        int(summary.get("seed") or settings.get("seed") or 0),
        float(summary.get("wall_seconds") or 0.0),
        jobs=settings.get("jobs"),
        faults_per_job=settings.get("faults_per_job"),
        minutes=settings.get("minutes"),
    )
    write(built, run_dir)
    sys.stdout.write(render(built))
    return 0 if built["held"] else 1
