"""`Step.map`: items N at a time on threads, resumed at item grain; stopping and errors."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

import continuable
from continuable.backends import Settings
from continuable.errors import CheckpointTooLarge, ItemFailed
from continuable.mapping import drain_budget
from continuable.testing import interrupt_after_items, run


def _mapping(
    count: int, fn: Any, *, concurrency: int = 8, **options: Any
) -> tuple[Any, list[list[int]]]:
    """A job of one concurrent step over range(count); returns it and each attempt's results."""
    returned: list[list[int]] = []

    def job_fn(job: continuable.Job) -> None:
        @job.step
        def work(step: continuable.Step) -> None:
            returned.append(step.map(fn, range(count), concurrency=concurrency, **options))

    return job_fn, returned


def test_every_item_runs_once_and_the_results_come_in_item_order() -> None:
    def jittery(i: int) -> int:
        time.sleep(random.uniform(0, 0.003))
        return i * i

    job_fn, returned = _mapping(200, jittery, concurrency=16)
    result = run(job_fn)
    assert result.completed
    assert returned == [[i * i for i in range(200)]]
    result.assert_each_item_once("work", 200)
    step = result.checkpoint["steps"][0]  # type: ignore[index]
    assert step["state"] == "Completed"
    assert "cursor" not in step


def test_a_stop_lets_the_items_in_flight_finish_so_a_resume_repeats_none() -> None:
    def slow_odd(i: int) -> int:
        time.sleep(0.004 if i % 2 else 0.001)  # they finish out of order
        return i

    job_fn, returned = _mapping(300, slow_odd, concurrency=32)
    result = run(job_fn, interrupt=interrupt_after_items("work", 100))
    assert [a.stop_reason for a in result.attempts] == ["Interrupted", "Completed"]
    result.assert_each_item_once("work", 300, repeated_at_most=0)
    first = set(result.attempts[0].items["work"])
    assert len(first) >= 100
    assert returned == [sorted(set(range(300)) - first)], "the resumed attempt's results only"


def test_items_still_in_flight_past_the_drain_budget_run_again_and_only_they() -> None:
    """The items stuck in flight are abandoned at the stop (at most N of them) and run again
    on resume; the finished ones never."""
    release = threading.Event()
    concurrency = 8

    def stuck_after_40(i: int) -> int:
        if i >= 40:
            release.wait(5)  # in the first attempt, until the second one starts
        return i

    mapped, _ = _mapping(100, stuck_after_40, concurrency=concurrency, drain_seconds=0.05)

    def job_fn(job: continuable.Job) -> None:
        if job.attempt > 1:
            release.set()
        mapped(job)

    result = run(job_fn, interrupt=interrupt_after_items("work", 40))
    assert [a.stop_reason for a in result.attempts] == ["Interrupted", "Completed"]
    first = result.attempts[0]
    abandoned = set(first.started_items["work"]) - set(first.items["work"])
    assert 0 < len(abandoned) <= concurrency
    result.assert_each_item_once("work", 100, repeated_at_most=concurrency)
    assert set(result.repeated("work")) == abandoned


def test_an_item_error_fails_the_step_after_the_items_in_flight_are_recorded() -> None:
    failing = {"armed": True}
    started_17 = threading.Event()

    def flaky(i: int) -> int:
        if i == 17 and failing["armed"]:
            started_17.set()
            raise ValueError("malformed record")
        if i > 17:
            started_17.wait(1)
            time.sleep(0.01)  # in flight when 17 fails: still recorded
        return i

    job_fn, _ = _mapping(60, flaky, concurrency=8)
    first = run(job_fn)
    (attempt,) = first.attempts
    assert attempt.stop_reason == "Failed"
    assert isinstance(attempt.error, ItemFailed)
    assert attempt.error.index == 17
    assert str(attempt.error) == "step 'work': item 17 failed: ValueError: malformed record"
    assert isinstance(attempt.error.__cause__, ValueError)
    in_flight = set(attempt.started_items["work"]) - {17}
    assert in_flight <= set(attempt.items["work"]), "the items in flight finished and count"
    saved = first.checkpoint["steps"][0]["cursor"]  # type: ignore[index]
    assert saved["next"] == 17
    assert set(saved["done"]) == {i for i in attempt.items["work"] if i > 17}

    failing["armed"] = False
    again = run(job_fn, backend=first.backend)
    assert again.completed
    both = first.attempts + again.attempts
    redone = [i for a in both[1:] for i in a.started_items["work"] if i in attempt.items["work"]]
    assert redone == [], "a retry never redoes a finished item"
    assert sorted(again.items("work")) == sorted(set(range(60)) - set(attempt.items["work"]))


class RateLimited(Exception):
    pass


def test_a_retry_on_a_named_error_backs_off_and_tries_again() -> None:
    tries: dict[int, int] = {}
    lock = threading.Lock()

    def limited(i: int) -> int:
        with lock:
            tries[i] = tries.get(i, 0) + 1
            seen = tries[i]
        if i % 10 == 0 and seen < 3:
            raise RateLimited("429")
        return i

    retry = continuable.Retry(on=(RateLimited,), attempts=3, backoff_seconds=0.001)
    job_fn, returned = _mapping(50, limited, retry=retry)
    result = run(job_fn)
    assert result.completed
    assert returned == [list(range(50))]
    assert {i: n for i, n in tries.items() if n > 1} == dict.fromkeys(range(0, 50, 10), 3)


@pytest.mark.parametrize(("error", "tries"), [(RateLimited("429"), 2), (KeyError("id"), 1)])
def test_a_retry_gives_up_after_its_attempts_and_other_errors_are_not_retried(
    error: Exception, tries: int
) -> None:
    calls: list[int] = []

    def failing_3(i: int) -> int:
        calls.append(i)
        if i == 3:
            raise error
        return i

    retry = continuable.Retry(on=(RateLimited,), attempts=2, backoff_seconds=0.001)
    job_fn, _ = _mapping(10, failing_3, concurrency=1, retry=retry)
    (attempt,) = run(job_fn).attempts
    assert isinstance(attempt.error, ItemFailed)
    assert attempt.error.index == 3
    assert calls.count(3) == tries


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on": ()}, "expected exception classes"),
        ({"on": (ValueError,), "attempts": 0}, r"attempts=\.\.\.\): expected an int >= 1"),
        ({"on": ("429",)}, "expected exception classes"),
    ],
)
def test_a_bad_retry_is_refused_where_it_is_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        continuable.Retry(**options)


@pytest.mark.parametrize("concurrency", [0, -1, 1025, 2.5])
def test_a_bad_concurrency_fails_the_step_naming_it(concurrency: Any) -> None:
    job_fn, _ = _mapping(10, lambda i: i, concurrency=concurrency)
    (attempt,) = run(job_fn).attempts
    assert attempt.stop_reason == "Failed"
    assert "concurrency must be an int from 1 to 1024" in str(attempt.error)


def test_a_concurrency_whose_cursor_cannot_fit_fails_at_the_call() -> None:
    job_fn, _ = _mapping(10**6, lambda i: i, concurrency=256)
    (attempt,) = run(job_fn, settings=Settings(max_bytes=1024)).attempts
    assert isinstance(attempt.error, CheckpointTooLarge)
    assert "at concurrency 256" in str(attempt.error)


def test_a_resume_at_a_lower_concurrency_than_the_items_done_ahead_goes_on() -> None:
    """A cursor saved at concurrency 32 lists up to 31 items above its watermark; resumed at 4
    the first item must still start, or nothing would."""
    job_fn, _ = _mapping(100, lambda i: i, concurrency=4)
    backend = run(lambda job: None).backend
    backend.checkpoint = {
        "attempt": 1,
        "currentStep": "work",
        "steps": [
            {
                "name": "work",
                "state": "Started",
                "attempt": 1,
                "cursor": {"next": 10, "done": list(range(11, 40))},
            }
        ],
    }
    result = run(job_fn, backend=backend)
    assert result.completed
    assert sorted(result.items("work")) == [10, *range(40, 100)]


def test_an_iterable_without_a_length_resumes_past_the_done_items() -> None:
    def job_fn(job: continuable.Job) -> None:
        @job.step
        def work(step: continuable.Step) -> None:
            step.map(lambda i: i, (i for i in range(120)), concurrency=4)

    result = run(job_fn, interrupt=interrupt_after_items("work", 50))
    assert result.completed
    result.assert_each_item_once("work", 120)


def test_a_second_map_in_one_step_is_refused() -> None:
    def job_fn(job: continuable.Job) -> None:
        @job.step
        def work(step: continuable.Step) -> None:
            step.map(lambda i: i, range(3))
            step.map(lambda i: i, range(3))

    (attempt,) = run(job_fn).attempts
    assert "a step runs one concurrent map" in str(attempt.error)


def test_progress_counts_the_items_done() -> None:
    seen: list[Any] = []

    def job_fn(job: continuable.Job) -> None:
        @job.step
        def work(step: continuable.Step) -> None:
            step.map(lambda i: i, range(30), concurrency=4)
            seen.append(step._progress_wire())

    run(job_fn)
    assert seen == [{"done": 30, "summary": "30/30", "total": 30}]


@pytest.mark.parametrize(("grace", "drain"), [(30, 22.5), (10, 5.0), (120, 90.0), (4, 0.0)])
def test_the_default_drain_leaves_the_final_write_inside_the_grace_period(
    grace: float, drain: float
) -> None:
    assert drain_budget(grace) == drain


def test_a_set_of_items_is_refused_as_its_order_is_not_stable() -> None:
    def job_fn(job: continuable.Job) -> None:
        @job.step
        def work(step: continuable.Step) -> None:
            step.map(str.upper, {"a", "b"})

    (attempt,) = run(job_fn).attempts
    assert "a set's order changes from process to process; pass sorted(items)" in str(attempt.error)
