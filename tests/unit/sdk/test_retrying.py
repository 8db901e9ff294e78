from __future__ import annotations

import pytest

from continuable.errors import BackendUnavailable
from continuable.retrying import MAX_DELAY, next_delay, retrying


def test_backoff_doubles_to_a_cap_and_honours_retry_after() -> None:
    error = BackendUnavailable("busy")
    delays = [0.0]
    for _ in range(8):
        delays.append(next_delay(delays[-1], error))
    assert delays[1:5] == [0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == MAX_DELAY
    assert next_delay(0.2, BackendUnavailable("429", retry_after=7)) == 7


def test_retries_until_success() -> None:
    answers: list[BaseException | str] = [BackendUnavailable("a"), BackendUnavailable("b"), "ok"]
    slept: list[float] = []

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert retrying(call, what="write", give_up=lambda: False, sleep=slept.append) == "ok"
    assert slept == [0.2, 0.4]


def test_gives_up_when_told() -> None:
    def call() -> None:
        raise BackendUnavailable("down")

    with pytest.raises(BackendUnavailable):
        retrying(call, what="write", give_up=lambda: True, sleep=lambda s: None)
