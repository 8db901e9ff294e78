from __future__ import annotations

import pytest

from continuable_operator.throttling import TokenBucket


def test_burst_then_the_steady_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(qps=10, burst=3, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    now[0] = 10.0  # a long pause refills up to the burst, not beyond
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() > 0


def test_nonsense_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="qps must be > 0"):
        TokenBucket(qps=0, burst=1)
