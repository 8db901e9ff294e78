"""How `continuable status` shows a job: rows computed from the job as the API returned it, then
drawn as rich tables (with a progress bar on a terminal), one line for `--watch` in a log, or
the status as JSON for scripts.

Everything here is a pure function of the job dict and the time, so the unit tests render real
status documents without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .selecting import checkpoint_of, status_of

FINISHED_PHASES = ("Succeeded", "Failed")
PHASE_STYLES = {
    "Pending": "dim",
    "Running": "cyan",
    "Interrupted": "yellow",
    "Suspended": "magenta",
    "Succeeded": "green",
    "Failed": "bold red",
}
STATE_STYLES = {
    "Completed": "green",
    "Running": "cyan",
    "Paused": "yellow",
    "Failed": "bold red",
    "NotReplayable": "bold red",
    "Pending": "dim",
}
OUTCOME_STYLES = {
    "Running": "cyan",
    "Succeeded": "green",
    "Interrupted": "yellow",
    "Isolated": "blue",
    "Failed": "red",
}
# Cursors can be any JSON value; a long one is cut so the table stays readable.
CURSOR_WIDTH = 32
MESSAGE_WIDTH = 60


@dataclass(frozen=True)
class StepRow:
    name: str
    state: str
    cursor: str
    duration: str
    attempt: str
    current: bool
    done: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class AttemptRow:
    attempt: str
    pod: str
    outcome: str
    reason: str
    exit_code: str
    started: str
    duration: str
    message: str


@dataclass(frozen=True)
class ConditionRow:
    type: str
    status: str
    reason: str
    age: str
    message: str


# Formatting.


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_duration(seconds: float | None) -> str:
    """`0.42s`, `12.3s`, `3m04s`, `1h02m`, `2d03h`: precise when short, brief when long."""
    if seconds is None:
        return "-"
    seconds = max(float(seconds), 0.0)
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def format_age(value: Any, now: datetime) -> str:
    """How long ago, as kubectl prints an age: `5s`, `3m12s`, `2h5m`, `3d4h`."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = max(int((now - moment).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def format_cursor(cursor: Any) -> str:
    if cursor is None:
        return "-"
    text = json.dumps(cursor, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= CURSOR_WIDTH else text[: CURSOR_WIDTH - 1] + "…"


def shorten(text: Any, width: int = MESSAGE_WIDTH) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_progress(done: int | None, total: int | None) -> str:
    if done is None:
        return ""
    if not total:
        return f"{done}"
    return f"{done}/{total} {done * 100 // total}%"


# Rows.


def step_rows(job: Mapping[str, Any]) -> list[StepRow]:
    """One row per step: those the pods reported, then those `spec.steps` expects next."""
    status = status_of(job)
    checkpoint = checkpoint_of(job)
    phase = status.get("phase")
    stop_reason = checkpoint.get("stopReason")
    error = checkpoint.get("error") or {}
    current = checkpoint.get("currentStep")
    progress = checkpoint.get("progress") or {}
    rows = []
    for record in checkpoint.get("steps") or []:
        name = str(record.get("name", "?"))
        is_current = name == current and record.get("state") != "Completed"
        rows.append(
            StepRow(
                name=name,
                state=_step_state(record, is_current, phase, stop_reason, error),
                cursor=format_cursor(record.get("cursor")),
                duration=format_duration(record.get("durationSeconds")),
                attempt=str(record.get("attempt", "-")),
                current=is_current,
                done=progress.get("done") if is_current else None,
                total=progress.get("total") if is_current else None,
            )
        )
    reported = {row.name for row in rows}
    for name in (job.get("spec") or {}).get("steps") or []:
        if name not in reported:
            rows.append(StepRow(str(name), "Pending", "-", "-", "-", current=False))
    return rows


def _step_state(
    record: Mapping[str, Any],
    current: bool,
    phase: Any,
    stop_reason: Any,
    error: Mapping[str, Any],
) -> str:
    if record.get("state") == "Completed":
        return "Completed"
    if stop_reason == "Failed" and error.get("step") == record.get("name"):
        return "Failed"
    if stop_reason == "NotReplayable" and current:
        return "NotReplayable"
    if current and phase == "Running":
        return "Running"
    # Started by some attempt, not finished, nothing running it now: it resumes at its cursor.
    return "Paused"


def attempt_rows(job: Mapping[str, Any], now: datetime) -> list[AttemptRow]:
    rows = []
    for record in status_of(job).get("attempts") or []:
        start, end = parse_time(record.get("startTime")), parse_time(record.get("endTime"))
        duration = None
        if start is not None:
            duration = ((end or now) - start).total_seconds()
        exit_code = record.get("exitCode")
        rows.append(
            AttemptRow(
                attempt=str(record.get("attempt", "?")),
                pod=str(record.get("podName", "-")),
                outcome=str(record.get("outcome", "-")),
                reason=str(record.get("reason") or "-"),
                exit_code="-" if exit_code is None else str(exit_code),
                started=format_age(record.get("startTime"), now),
                duration=format_duration(duration),
                message=shorten(record.get("message")),
            )
        )
    return rows


def condition_rows(job: Mapping[str, Any], now: datetime) -> list[ConditionRow]:
    return [
        ConditionRow(
            type=str(c.get("type", "?")),
            status=str(c.get("status", "?")),
            reason=str(c.get("reason") or "-"),
            age=format_age(c.get("lastTransitionTime"), now),
            message=shorten(c.get("message")),
        )
        for c in status_of(job).get("conditions") or []
    ]


def summary_fields(job: Mapping[str, Any], now: datetime) -> list[tuple[str, str]]:
    """The job's headline facts as (label, value), in the order they are shown."""
    status = status_of(job)
    spec = job.get("spec") or {}
    checkpoint = checkpoint_of(job)
    backoff = spec.get("backoffLimit")
    resumptions_limit = spec.get("maxResumptions")
    fields = [
        ("Phase", str(status.get("phase") or "Pending")),
        ("Attempt", str(status.get("attempt", 0))),
        ("Pod", str(status.get("podName") or "-")),
        ("Started", _ago(status.get("startTime"), now)),
    ]
    if status.get("completionTime"):
        fields.append(("Finished", _ago(status.get("completionTime"), now)))
    fields += [
        (
            "Interruptions",
            _bounded(status.get("interruptions", 0), resumptions_limit, "maxResumptions"),
        ),
        ("Failures", _bounded(status.get("failures", 0), backoff, "backoffLimit")),
        ("Resumptions", str(status.get("resumptions", 0))),
    ]
    if status.get("savedSeconds") is not None:
        fields.append(("Work saved", format_duration(status["savedSeconds"])))
    eta = _current_eta(job)
    if eta is not None and status.get("phase") == "Running":
        fields.append(("Time left", f"~{format_duration(eta)} in {checkpoint['currentStep']}"))
    if checkpoint.get("updatedAt"):
        fields.append(
            (
                "Checkpoint",
                f"{_ago(checkpoint['updatedAt'], now)} by attempt {checkpoint.get('attempt', '?')}",
            )
        )
    if checkpoint.get("stopReason"):
        fields.append(("Last stop", str(checkpoint["stopReason"])))
    return fields


def _ago(value: Any, now: datetime) -> str:
    age = format_age(value, now)
    return "-" if age == "-" else f"{age} ago"


def _bounded(value: Any, limit: Any, name: str) -> str:
    return f"{value}" if limit is None else f"{value} (of {limit}, spec.{name})"


def eta_seconds(done: Any, total: Any, duration_seconds: Any) -> float | None:
    """Seconds left in a step at its average pace so far, when that can be told."""
    numbers = (done, total, duration_seconds)
    if not all(isinstance(n, int | float) and n > 0 for n in numbers) or done >= total:
        return None
    return float(duration_seconds) / float(done) * float(total - done)


def _current_eta(job: Mapping[str, Any]) -> float | None:
    checkpoint = checkpoint_of(job)
    progress = checkpoint.get("progress") or {}
    for record in checkpoint.get("steps") or []:
        if record.get("name") == checkpoint.get("currentStep") and record.get("state") != (
            "Completed"
        ):
            return eta_seconds(
                progress.get("done"), progress.get("total"), record.get("durationSeconds")
            )
    return None


# Output.


def status_json(job: Mapping[str, Any]) -> str:
    """`-o json`: the status exactly as the API server holds it (`{}` before any write)."""
    return json.dumps(status_of(job), indent=2, ensure_ascii=False)


def status_line(job: Mapping[str, Any]) -> str:
    """One line per change for `status --watch` when stdout is not a terminal."""
    status = status_of(job)
    checkpoint = checkpoint_of(job)
    progress = checkpoint.get("progress") or {}
    parts = [
        str(status.get("phase") or "Pending"),
        f"attempt {status.get('attempt', 0)}",
        f"step {checkpoint.get('currentStep') or '-'}",
    ]
    if progress:
        parts.append(format_progress(progress.get("done"), progress.get("total")))
    return "  ".join(parts)


def render_status(job: Mapping[str, Any], *, now: datetime, bar: bool) -> RenderableType:
    """The full view: headline, steps (a progress bar on the current one), error, attempts,
    conditions. `bar` is false when the output is not a terminal: the progress is then text."""
    metadata = job.get("metadata") or {}
    title = Text(
        f"ContinuableJob {metadata.get('namespace', '-')}/{metadata.get('name', '?')}",
        style="bold",
    )
    parts: list[RenderableType] = [title, _summary_table(job, now)]
    steps = step_rows(job)
    if steps:
        parts.append(_steps_table(job, steps, bar=bar))
    else:
        parts.append(Text("No step has been reported yet.", style="dim"))
    error = checkpoint_of(job).get("error")
    if error:
        where = f" in step {error['step']}" if error.get("step") else ""
        parts.append(
            Text.assemble(
                ("Error", "bold red"),
                f"{where}: {error.get('type', '?')}: {error.get('message', '')}",
            )
        )
    hint = next_step_hint(job)
    if hint:
        parts.append(Text(hint, style="yellow"))
    attempts = attempt_rows(job, now)
    if attempts:
        parts.append(_attempts_table(attempts))
    conditions = condition_rows(job, now)
    if conditions:
        parts.append(_conditions_table(conditions))
    return Group(*parts)


def _summary_table(job: Mapping[str, Any], now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in summary_fields(job, now):
        grid.add_row(label, Text(value, style=PHASE_STYLES.get(value, "")))
    return grid


def _steps_table(job: Mapping[str, Any], rows: list[StepRow], *, bar: bool) -> Table:
    table = Table(title="Steps", title_justify="left", expand=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("Step", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Cursor", justify="right", no_wrap=True, min_width=6)
    # The one column that wraps, so a narrow terminal keeps the others whole.
    table.add_column("Progress")
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Attempt", justify="right", no_wrap=True)
    for index, row in enumerate(rows, start=1):
        progress: RenderableType = Text("")
        if row.current and row.done is not None:
            text = format_progress(row.done, row.total)
            if bar and row.total:
                cell = Table.grid(padding=(0, 1))
                cell.add_row(ProgressBar(total=row.total, completed=row.done, width=16), text)
                progress = cell
            else:
                progress = Text(text)
        table.add_row(
            str(index),
            Text(row.name, style="bold" if row.current else ""),
            Text(row.state, style=STATE_STYLES.get(row.state, "")),
            row.cursor,
            progress,
            row.duration,
            row.attempt,
        )
    return table


def _attempts_table(rows: list[AttemptRow]) -> Table:
    table = Table(title="Attempts", title_justify="left")
    for column in ("#", "Pod", "Outcome"):
        table.add_column(column, justify="right" if column == "#" else "left", no_wrap=True)
    # The one column that wraps (the reason, and the message under it), so a narrow terminal
    # keeps the others whole.
    table.add_column("Reason")
    for column in ("Exit", "Started", "Ran"):
        table.add_column(column, justify="right" if column == "Exit" else "left", no_wrap=True)
    for row in rows:
        reason = Text(row.reason)
        if row.message:
            reason.append(f"\n{row.message}", style="dim")
        table.add_row(
            row.attempt,
            row.pod,
            Text(row.outcome, style=OUTCOME_STYLES.get(row.outcome, "")),
            reason,
            row.exit_code,
            row.started,
            row.duration,
        )
    return table


def _conditions_table(rows: list[ConditionRow]) -> Table:
    table = Table(title="Conditions", title_justify="left")
    for column in ("Type", "Status", "Reason", "Age"):
        table.add_column(column, no_wrap=True)
    table.add_column("Message")  # wraps
    for row in rows:
        table.add_row(row.type, row.status, row.reason, row.age, row.message)
    return table


def next_step_hint(job: Mapping[str, Any]) -> str | None:
    """What a person can do about a job that stopped and will not go on by itself."""
    checkpoint = checkpoint_of(job)
    name = (job.get("metadata") or {}).get("name", "JOB")
    step = checkpoint.get("currentStep")
    if checkpoint.get("stopReason") == "NotReplayable" and step:
        return (
            f"Step {step} is not idempotent and an earlier attempt started it, so it was not "
            f"run again. Check its side effect, then run `continuable restart {name} "
            f"--from-step {step}` to run it again (or restart from the step after it)."
        )
    if status_of(job).get("phase") == "Failed":
        return f"`continuable restart {name} --from-step STEP` runs it again from a step."
    return None


def is_finished(job: Mapping[str, Any]) -> bool:
    return status_of(job).get("phase") in FINISHED_PHASES
