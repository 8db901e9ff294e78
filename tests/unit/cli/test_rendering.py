"""`continuable status` views, rendered from status documents without a cluster."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from rich.console import Console

from continuable.cli import rendering
from continuable.cli.rendering import (
    attempt_rows,
    condition_rows,
    format_age,
    format_cursor,
    format_duration,
    next_step_hint,
    render_status,
    status_json,
    status_line,
    step_rows,
    summary_fields,
)

from .conftest import NOW, RUNNING, failed_not_replayable


def text_of(job: dict[str, Any], *, bar: bool = False, width: int = 120) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=bar)
    console.print(render_status(job, now=NOW, bar=bar))
    return out.getvalue()


def row_of(text: str, step: str) -> str:
    return next(line for line in text.splitlines() if f"│ {step}" in line)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0, "0.00s"),
        (0.4213, "0.42s"),
        (12.34, "12.3s"),
        (124, "2m04s"),
        (3725, "1h02m"),
        (2 * 86400 + 3 * 3600 + 5, "2d03h"),
        (-1, "0.00s"),
    ],
)
def test_durations_are_precise_when_short_and_brief_when_long(
    seconds: float | None, shown: str
) -> None:
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("when", "shown"),
    [
        ("2026-05-04T12:00:25Z", "5s"),
        ("2026-05-04T11:57:18Z", "3m12s"),
        ("2026-05-04T11:30:30Z", "30m"),
        ("2026-05-04T09:55:30Z", "2h5m"),
        ("2026-05-01T08:00:30Z", "3d4h"),
        ("2026-05-04T12:01:00Z", "0s"),
        (None, "-"),
        ("not a time", "-"),
    ],
)
def test_ages_read_like_kubectls(when: str | None, shown: str) -> None:
    assert format_age(when, NOW) == shown


@pytest.mark.parametrize(
    ("cursor", "shown"),
    [
        (None, "-"),
        (3100, "3100"),
        ("abc", '"abc"'),
        ({"page": 3, "offset": 40}, '{"page":3,"offset":40}'),
        ({"token": "x" * 100}, '{"token":"' + "x" * 21 + "…"),
    ],
)
def test_cursors_are_compact_json_cut_to_fit(cursor: Any, shown: str) -> None:
    assert format_cursor(cursor) == shown


def test_steps_show_reported_then_expected_ones_with_their_state() -> None:
    rows = step_rows(RUNNING)

    assert [(r.name, r.state, r.cursor, r.duration, r.attempt) for r in rows] == [
        ("fetch_orders", "Completed", "-", "2.01s", "1"),
        ("process_orders", "Running", "3100", "2m04s", "1"),
        ("notify", "Pending", "-", "-", "-"),
    ]
    assert [r.current for r in rows] == [False, True, False]
    assert (rows[1].done, rows[1].total) == (3100, 5000)


@pytest.mark.parametrize(
    ("phase", "stop_reason", "error_step", "state"),
    [
        ("Running", None, None, "Running"),
        ("Interrupted", "Interrupted", None, "Paused"),
        ("Suspended", "Interrupted", None, "Paused"),
        ("Failed", "Failed", "process_orders", "Failed"),
        ("Failed", "NotReplayable", None, "NotReplayable"),
    ],
)
def test_the_unfinished_step_says_what_happens_to_it(
    phase: str, stop_reason: str | None, error_step: str | None, state: str
) -> None:
    job = copy.deepcopy(RUNNING)
    job["status"]["phase"] = phase
    job["status"]["checkpoint"]["stopReason"] = stop_reason
    if error_step:
        job["status"]["checkpoint"]["error"] = {
            "step": error_step,
            "type": "ValueError",
            "message": "bad order",
        }

    assert step_rows(job)[1].state == state


def test_a_job_before_any_write_shows_its_expected_steps_as_pending() -> None:
    job = {"metadata": {"name": "x"}, "spec": {"steps": ["a", "b"]}}

    assert [(r.name, r.state) for r in step_rows(job)] == [("a", "Pending"), ("b", "Pending")]
    assert status_json(job) == "{}"
    assert "Phase" in text_of(job)


def test_attempts_show_outcome_reason_exit_code_and_how_long_they_ran() -> None:
    rows = attempt_rows(RUNNING, NOW)

    first, second = rows
    assert (first.attempt, first.pod, first.outcome, first.reason, first.exit_code) == (
        "1",
        "order-batch-1",
        "Interrupted",
        "ManualInterruption",
        "75",
    )
    assert first.duration == "1m10s"
    assert (second.outcome, second.reason, second.exit_code) == ("Running", "-", "-")
    assert second.duration == "1m18s"  # still running: counted up to now


def test_conditions_show_type_status_reason_and_age() -> None:
    (row,) = condition_rows(RUNNING, NOW)

    assert (row.type, row.status, row.reason, row.age) == ("Running", "True", "PodRunning", "1m18s")


def test_the_summary_gives_counters_against_their_limits_and_the_time_left() -> None:
    fields = dict(summary_fields(RUNNING, NOW))

    assert fields["Phase"] == "Running"
    assert fields["Attempt"] == "2"
    assert fields["Interruptions"] == "1 (of 10, spec.maxResumptions)"
    assert fields["Failures"] == "0 (of 6, spec.backoffLimit)"
    assert fields["Resumptions"] == "1"
    assert fields["Work saved"] == "12.5s"
    # 124 s for 3,100 items: 1,900 more at that pace.
    assert fields["Time left"] == "~1m16s in process_orders"
    assert fields["Checkpoint"] == "1s ago by attempt 2"


def test_the_table_view_has_every_section() -> None:
    text = text_of(RUNNING)

    assert "ContinuableJob shop/order-batch" in text
    for heading in ("Steps", "Attempts", "Conditions"):
        assert heading in text
    assert "3100/5000 62%" in text
    assert "ManualInterruption" in text
    assert "━" not in row_of(text, "process_orders")  # no terminal: the progress is text


def test_on_a_terminal_the_current_step_has_a_progress_bar() -> None:
    row = row_of(text_of(RUNNING, bar=True), "process_orders")

    assert "━" in row
    assert "3100/5000 62%" in row


def test_a_failed_step_shows_its_error() -> None:
    job = copy.deepcopy(RUNNING)
    job["status"]["phase"] = "Failed"
    job["status"]["checkpoint"]["stopReason"] = "Failed"
    job["status"]["checkpoint"]["error"] = {
        "step": "process_orders",
        "type": "ValueError",
        "message": "order 100042 is malformed",
    }

    text = text_of(job)

    assert "Error in step process_orders: ValueError: order 100042 is malformed" in text
    assert "continuable restart order-batch --from-step STEP" in text


def test_a_not_replayable_job_says_how_to_go_on() -> None:
    job = failed_not_replayable()

    hint = next_step_hint(job)

    assert hint is not None
    assert "Step deliver is not idempotent" in hint
    assert "continuable restart ai-report --from-step deliver" in hint
    assert "NotReplayable" in text_of(job)
    assert next_step_hint(RUNNING) is None


def test_json_output_is_the_status_as_the_api_server_holds_it() -> None:
    assert json.loads(status_json(RUNNING)) == RUNNING["status"]


def test_the_watch_line_is_one_line_of_phase_attempt_step_and_progress() -> None:
    assert status_line(RUNNING) == "Running  attempt 2  step process_orders  3100/5000 62%"
    assert status_line({"metadata": {"name": "x"}}) == "Pending  attempt 0  step -"


def test_a_job_is_finished_once_it_succeeded_or_failed() -> None:
    assert not rendering.is_finished(RUNNING)
    assert rendering.is_finished(failed_not_replayable())
