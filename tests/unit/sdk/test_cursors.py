"""Cursors: what set() and advance() accept, and the byte budget."""

from __future__ import annotations

import math
from typing import Any

import pytest

from continuable import CheckpointTooLarge, CursorError, Job, ResultError, ResultTooLarge, Step
from continuable.backends import Settings
from continuable.testing import interrupt_after_step, interrupt_during_step, run


def _error_of(job_fn: Any, settings: Settings | None = None) -> BaseException | None:
    return run(job_fn, settings=settings).attempts[-1].error


@pytest.mark.parametrize(
    "cursor",
    [0, -5, 10**30, "page-token", 1.5, True, None, [1, "a"], {"id": 7, "shard": "eu"}],
)
def test_json_cursors_survive_a_resume(cursor: Any) -> None:
    seen: list[Any] = []

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            seen.append(step.cursor)
            if not step.resumed:
                step.set(cursor)
                step.set(cursor)  # the interruption fires on the second set of the same value

    run(job_fn, interrupt=interrupt_during_step("work", cursor=cursor))
    assert seen[-1] == cursor


@pytest.mark.parametrize(
    ("cursor", "why"),
    [({1, 2}, "set"), (object(), "object"), (math.nan, "nan"), ({"k": b"x"}, "bytes")],
)
def test_a_cursor_that_is_not_json_fails_at_set(cursor: Any, why: str) -> None:
    line: list[int] = []

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            step.set(1)
            line.append(1)
            step.set(cursor)
            line.append(2)

    error = _error_of(job_fn)
    assert isinstance(error, CursorError), why
    assert "step 'work'" in str(error)
    assert "not JSON-serialisable" in str(error)
    assert line == [1]


def test_a_mutable_cursor_is_copied_at_set() -> None:
    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            cursor = {"page": 1}
            step.set(cursor)
            cursor["page"] = 99
            assert step.cursor == {"page": 1}

    assert run(job_fn).completed


def test_advance_needs_an_integer() -> None:
    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            step.set("abc")
            step.advance()

    error = _error_of(job_fn)
    assert isinstance(error, CursorError)
    assert "advance() needs an integer" in str(error)
    assert "str 'abc'" in str(error)


def test_advance_from() -> None:
    def job_fn(job: Job) -> Any:
        @job.step
        def work(step: Step) -> Any:
            step.advance(from_=41)
            return step.cursor

    assert run(job_fn).result("work") == 42


def test_oversized_cursor_fails_at_the_set_that_made_it() -> None:
    settings = Settings(max_bytes=2048)

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            step.set("x" * 1000)
            step.set("x" * 3000)

    error = _error_of(job_fn, settings)
    assert isinstance(error, CheckpointTooLarge)
    assert "step 'work'" in str(error)
    assert "3002 bytes" in str(error)
    assert "spec.checkpoint.maxBytes is 2048" in str(error)


def test_checkpoint_never_exceeds_its_budget() -> None:
    settings = Settings(max_bytes=1024)

    def job_fn(job: Job) -> None:
        for index in range(40):

            @job.step(f"step-number-{index:03d}")
            def work(step: Step) -> None:
                for i in step.range(3):
                    step.set(i)

    result = run(job_fn, settings=settings)
    error = result.attempts[-1].error
    assert isinstance(error, CheckpointTooLarge)
    assert "use fewer or shorter step names" in str(error)
    assert result.checkpoint is not None
    assert "step-number-005" not in str(result.checkpoint["steps"])
    assert result.checkpoint["error"]["step"] == "step-number-005"
    assert str(result.attempts[-1].error).startswith(result.checkpoint["error"]["message"])
    assert result.backend.checkpoint_writes >= 5
    assert result.backend.largest_checkpoint <= 1024


def test_result_that_is_not_json_fails_naming_the_step() -> None:
    def job_fn(job: Job) -> None:
        job.step("fetch", lambda: {1, 2, 3})

    error = _error_of(job_fn)
    assert isinstance(error, ResultError)
    assert "step 'fetch' returned set" in str(error)


def test_results_budget() -> None:
    settings = Settings(results_max_bytes=4096)

    def job_fn(job: Job) -> None:
        job.step("small", lambda: "x" * 1000)
        job.step("big", lambda: "x" * 4000)

    error = _error_of(job_fn, settings)
    assert isinstance(error, ResultTooLarge)
    assert "step 'big'" in str(error)
    assert "spec.checkpoint.resultsMaxBytes" in str(error)


@pytest.mark.parametrize(
    "interrupt", [(), interrupt_after_step("a")], ids=["one attempt", "resumed"]
)
def test_results_budget_counts_the_bytes_of_keys_and_values(interrupt: Any) -> None:
    """A result counts as its ConfigMap entry, the key `<step>.json` and the value in UTF-8
    bytes, beside room for the `attempt` key; results loaded on a resume count the same."""
    settings = Settings(results_max_bytes=1600)

    def job_fn(job: Job) -> None:
        job.step("a", lambda: "é" * 400)  # 402 characters, 802 bytes
        job.step("b", lambda: "é" * 400)

    result = run(job_fn, settings=settings, interrupt=interrupt)
    error = result.attempts[-1].error
    assert isinstance(error, ResultTooLarge)
    assert "step 'b'" in str(error)
    assert result.backend.results == {"a": "é" * 400}


@pytest.mark.parametrize(("done", "total"), [(-1, None), (1.5, None), (1, -1), (1, "10")])
def test_progress_rejects_nonsense(done: Any, total: Any) -> None:
    def job_fn(job: Job) -> None:
        job.step("work", lambda step: step.progress(done, total))

    error = _error_of(job_fn)
    assert isinstance(error, ValueError)
    assert "progress" in str(error)
