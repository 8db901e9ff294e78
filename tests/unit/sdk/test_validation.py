"""Misuse that would make a resume run the wrong code is refused, naming the steps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from continuable import InvalidStepError, Job, Step
from continuable.backends import Settings
from continuable.backends.memory import MemoryBackend
from continuable.names import KIB, MAX_STEPS
from continuable.testing import interrupt_after_step, interrupt_during_step, run


def _fails_with(job_fn: Callable[[Job], None], *, backend: object = None) -> str:
    result = run(job_fn, backend=backend)  # type: ignore[arg-type]
    attempt = result.attempts[-1]
    assert attempt.stop_reason == "Failed"
    assert attempt.exit_code == 1
    assert isinstance(attempt.error, InvalidStepError)
    return str(attempt.error)


def test_duplicate_step_name() -> None:
    def job_fn(job: Job) -> None:
        job.step("a", lambda: 1)
        job.step("a", lambda: 2)

    assert "'a' appears twice" in _fails_with(job_fn)


def test_nested_step() -> None:
    def job_fn(job: Job) -> None:
        @job.step
        def outer(step: Step) -> None:
            job.step("inner", lambda: 1)

    assert "'inner' was started inside step 'outer'" in _fails_with(job_fn)


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 129, "-lead"])
def test_invalid_step_name(name: str) -> None:
    def job_fn(job: Job) -> None:
        job.step(name, lambda: 1)

    assert "invalid" in _fails_with(job_fn)


def test_completed_steps_reached_in_another_order() -> None:
    def first_version(job: Job) -> None:
        job.step("a", lambda: 1)
        job.step("b", lambda: 2)
        job.step("c", lambda: 3)

    def reordered(job: Job) -> None:
        job.step("b", lambda: 2)
        job.step("a", lambda: 1)
        job.step("c", lambda: 3)

    started = run(first_version, interrupt=interrupt_after_step("b"), max_attempts=1)
    message = _fails_with(reordered, backend=started.backend)
    assert "'b' was reached where the checkpoint has completed step 'a'" in message
    assert "a, b" in message


def test_new_step_inserted_before_the_one_being_resumed() -> None:
    def first_version(job: Job) -> None:
        @job.step
        def a(step: Step) -> None:
            for _ in step.range(10):
                pass

    def changed(job: Job) -> None:
        job.step("new", lambda: 0)
        first_version(job)

    started = run(first_version, interrupt=interrupt_during_step("a", cursor=3), max_attempts=1)
    message = _fails_with(changed, backend=started.backend)
    assert "'new' was reached where step 'a' should resume at cursor 3" in message


def test_more_steps_than_the_limit_are_refused_at_the_step_past_it() -> None:
    def job_fn(job: Job) -> None:
        for index in range(MAX_STEPS + 1):
            job.step(f"s{index}", lambda: None)

    backend = MemoryBackend(Settings(max_bytes=64 * KIB))
    message = _fails_with(job_fn, backend=backend)
    assert f"step 's{MAX_STEPS}' would be step {MAX_STEPS + 1}" in message
    assert f"at most {MAX_STEPS} steps" in message
    assert backend.checkpoint is not None
    assert len(backend.checkpoint["steps"]) == MAX_STEPS
