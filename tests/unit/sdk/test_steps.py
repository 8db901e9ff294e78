"""Step semantics on the in-memory backend: order, skipping, results, resuming."""

from __future__ import annotations

from typing import Any

import pytest

import continuable
from continuable import Job, Step
from continuable.testing import interrupt_after_step, interrupt_during_step, run

CALLS: list[str] = []


def three_steps(job: Job) -> None:
    CALLS.append("outside")

    @job.step
    def fetch(step: Step) -> list[int]:
        CALLS.append("fetch")
        return list(range(0, 200, 2))

    ids = job.result("fetch")
    assert ids == fetch

    @job.step(isolated=False)
    def process(step: Step) -> int:
        total = 0
        for i in step.range(len(ids)):
            total += ids[i]
        return total

    job.step("notify", lambda: CALLS.append("notify"))


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def test_uninterrupted_run_runs_each_step_once() -> None:
    result = run(three_steps)
    assert result.completed
    assert len(result.attempts) == 1
    assert result.attempts[0].started == ["fetch", "process", "notify"]
    assert result.result("process") == sum(range(0, 200, 2))
    assert result.items("process") == list(range(100))
    assert CALLS == ["outside", "fetch", "notify"]


def test_interrupted_step_resumes_at_its_cursor_and_repeats_nothing() -> None:
    result = run(three_steps, interrupt=interrupt_during_step("process", cursor=40))
    assert result.completed
    first, second = result.attempts
    assert first.stop_reason == "Interrupted"
    assert first.exit_code == 75
    assert first.items["process"] == list(range(40))
    assert second.skipped == ["fetch"]
    assert second.resumed == ["process"]
    assert second.items["process"] == list(range(40, 100))
    assert result.items("process") == list(range(100))
    assert CALLS == ["outside", "fetch", "outside", "notify"]


def test_completed_step_is_skipped_and_its_persisted_result_returned() -> None:
    result = run(three_steps, interrupt=interrupt_after_step("fetch"))
    first, second = result.attempts
    assert first.completed == ["fetch"]
    assert first.started == ["fetch"]
    assert second.skipped == ["fetch"]
    assert second.started == ["process", "notify"]
    assert result.times_ran("fetch") == 1


def test_result_round_trips_through_json_on_first_run_too() -> None:
    def job_fn(job: Job) -> None:
        value = job.step("pair", lambda: (1, 2))
        assert value == [1, 2]
        assert job.result("pair") == [1, 2]

    assert run(job_fn).completed


def test_result_of_unfinished_step_is_an_error() -> None:
    def job_fn(job: Job) -> None:
        job.result("later")

    result = run(job_fn)
    assert result.attempts[0].stop_reason == "Failed"
    assert isinstance(result.attempts[0].error, continuable.InvalidStepError)
    assert "has not completed" in str(result.attempts[0].error)


def test_decorator_forms_and_start() -> None:
    seen: dict[str, Any] = {}

    def job_fn(job: Job) -> None:
        @job.step
        def plain(step: Step) -> str:
            return step.name

        @job.step("named", start=10)
        def anything(step: Step) -> Any:
            seen["start"] = step.cursor
            step.advance()
            return step.cursor

        @job.step(name="kw")
        def kw(step: Step) -> int:
            return 3

        seen.update(plain=plain, anything=anything, kw=kw)

    assert run(job_fn).completed
    assert seen == {"plain": "plain", "anything": 11, "start": 10, "kw": 3}


def test_start_is_ignored_when_resuming() -> None:
    first_cursors: list[int] = []

    def job_fn(job: Job) -> None:
        @job.step(start=100)
        def count(step: Step) -> Any:
            first_cursors.append(step.cursor)
            while step.cursor < 105:
                step.advance()
            return step.cursor

    result = run(job_fn, interrupt=interrupt_during_step("count", cursor=102))
    assert first_cursors == [100, 102]
    assert result.result("count") == 105


def test_resumed_and_advanced_flags() -> None:
    flags: list[tuple[bool, bool, bool]] = []

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            before = step.advanced
            for _ in step.range(10):
                pass
            flags.append((step.resumed, before, step.advanced))

    run(job_fn, interrupt=interrupt_during_step("work", cursor=5))
    assert flags == [(True, False, True)]


def test_each_resumes_at_the_next_item() -> None:
    letters = list("abcdefgh")
    seen: list[str] = []

    def job_fn(job: Job) -> None:
        @job.step
        def walk(step: Step) -> None:
            for letter in step.each(letters):
                seen.append(letter)

    result = run(job_fn, interrupt=interrupt_during_step("walk", cursor=3))
    assert seen == letters
    assert result.attempts[0].items["walk"] == [0, 1, 2]


def test_range_with_start_reports_progress() -> None:
    def job_fn(job: Job) -> None:
        @job.step
        def window(step: Step) -> None:
            for _ in step.range(10, 20):
                pass

    result = run(job_fn, interrupt=interrupt_during_step("window", cursor=14))
    first_checkpoint_progress = result.attempts[0]
    assert first_checkpoint_progress.items["window"] == [10, 11, 12, 13]
    assert result.items("window") == list(range(10, 20))


def test_progress_is_in_the_checkpoint_while_interrupted() -> None:
    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            for i in range(1000):
                step.progress(i, 1000)
                step.set(i)

    result = run(job_fn, interrupt=interrupt_during_step("work", cursor=742), max_attempts=1)
    assert result.checkpoint is not None
    assert result.checkpoint["progress"] == {"done": 742, "total": 1000, "summary": "742/1000"}
    assert result.checkpoint["currentStep"] == "work"
    assert result.checkpoint["stopReason"] == "Interrupted"


def test_the_last_step_and_its_progress_stay_once_the_job_completed() -> None:
    """The Step and Progress columns keep showing where the job ended."""

    def job_fn(job: Job) -> None:
        job.step("fetch", lambda: None)

        @job.step
        def process(step: Step) -> None:
            for _ in step.range(100):
                pass

    result = run(job_fn)
    assert result.checkpoint is not None
    assert result.checkpoint["stopReason"] == "Completed"
    assert result.checkpoint["currentStep"] == "process"
    assert result.checkpoint["progress"] == {"done": 100, "total": 100, "summary": "100/100"}


def test_isolated_step_starts_in_a_fresh_attempt() -> None:
    def job_fn(job: Job) -> None:
        job.step("first", lambda: 1)

        @job.step(isolated=True)
        def heavy(step: Step) -> int:
            return 2

        job.step("last", lambda: 3)

    result = run(job_fn)
    first, second = result.attempts
    assert first.stop_reason == "Isolated"
    assert first.exit_code == 75
    assert first.ran == ["first"]
    assert second.ran == ["heavy", "last"]
    assert result.completed


def test_isolated_first_step_runs_at_once() -> None:
    def job_fn(job: Job) -> None:
        job.step("heavy", lambda: 1, isolated=True)

    assert len(run(job_fn).attempts) == 1


def test_code_outside_steps_runs_every_attempt() -> None:
    run(three_steps, interrupt=[interrupt_after_step("fetch"), interrupt_after_step("process")])
    assert CALLS.count("outside") == 3


def test_user_error_fails_the_attempt_and_records_it_after_flushing_the_cursor() -> None:
    def job_fn(job: Job) -> None:
        @job.step
        def load(step: Step) -> None:
            for i in step.range(100):
                if i == 37:
                    raise ValueError("row 37 is malformed")

    result = run(job_fn)
    attempt = result.attempts[0]
    assert attempt.stop_reason == "Failed"
    assert attempt.exit_code == 1
    assert isinstance(attempt.error, ValueError)
    checkpoint = result.checkpoint
    assert checkpoint is not None
    assert checkpoint["error"] == {
        "step": "load",
        "type": "ValueError",
        "message": "row 37 is malformed",
    }
    assert checkpoint["steps"][0]["cursor"] == 37

    # A retry resumes at the cursor too.
    retried: list[int] = []

    def fixed(job: Job) -> None:
        @job.step
        def load(step: Step) -> None:
            retried.extend(step.range(100))

    assert run(fixed, backend=result.backend).completed
    assert retried[0] == 37


def test_interrupted_is_not_swallowed_by_except_exception() -> None:
    def job_fn(job: Job) -> None:
        @job.step
        def careless(step: Step) -> None:
            for i in range(100):
                try:
                    step.set(i)
                except Exception:
                    pytest.fail("Interrupted was caught by except Exception")

    result = run(job_fn, interrupt=interrupt_during_step("careless", cursor=50), max_attempts=1)
    assert result.attempts[0].stop_reason == "Interrupted"
    assert issubclass(continuable.Interrupted, BaseException)
    assert not issubclass(continuable.Interrupted, Exception)


def test_not_idempotent_step_never_runs_twice() -> None:
    sent: list[int] = []

    def job_fn(job: Job) -> None:
        @job.step(idempotent=False)
        def send_emails(step: Step) -> None:
            for i in step.range(10):
                sent.append(i)

        job.step("after", lambda: None)

    result = run(job_fn, interrupt=interrupt_during_step("send_emails", cursor=4))
    first, second = result.attempts
    assert first.stop_reason == "Interrupted"
    assert second.stop_reason == "NotReplayable"
    assert second.exit_code == 1
    assert isinstance(second.error, continuable.StepNotReplayable)
    assert "attempt 1" in str(second.error)
    assert sent == [0, 1, 2, 3]
    assert result.checkpoint is not None
    assert result.checkpoint["stopReason"] == "NotReplayable"
    assert result.checkpoint["error"]["step"] == "send_emails"


def test_not_idempotent_step_is_durable_before_it_runs() -> None:
    writes_before: list[int] = []

    def job_fn(job: Job) -> None:
        backend = job._backend
        assert hasattr(backend, "checkpoint")

        @job.step(idempotent=False)
        def charge(step: Step) -> None:
            checkpoint = backend.checkpoint  # type: ignore[attr-defined]
            writes_before.append(len(checkpoint["steps"]))

    run(job_fn)
    assert writes_before == [1]
