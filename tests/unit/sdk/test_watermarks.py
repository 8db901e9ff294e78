"""The watermark cursor of a concurrent step: right under any completion order, and small."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuable.budgets import encoded_size
from continuable.errors import CursorError
from continuable.names import DEFAULT_CHECKPOINT_MAX_BYTES
from continuable.watermarks import Watermark, widest_cursor


@given(st.permutations(list(range(60))), st.integers(min_value=0, max_value=60))
def test_under_any_completion_order_exactly_the_finished_items_are_done(
    order: list[int], finished: int
) -> None:
    watermark = Watermark()
    for index in order[:finished]:
        watermark.mark(index)
    done = set(order[:finished])
    assert {i for i in range(60) if watermark.is_done(i)} == done
    assert watermark.done_count() == len(done)
    # The saved form says the same: a resume skips exactly these.
    again = Watermark.from_cursor(json.loads(json.dumps(watermark.cursor())), step="s")
    assert {i for i in range(60) if again.is_done(i)} == done
    assert all(i > again.next for i in again.cursor().get("done", []))


@given(st.data())
def test_with_at_most_n_in_flight_the_cursor_lists_fewer_than_n(data: st.DataObject) -> None:
    """The dispatcher's rule (start an item only while those in flight plus those done above
    the watermark are fewer than N, or nothing is in flight) bounds the listed items by N - 1,
    whatever finishes when."""
    concurrency = data.draw(st.integers(min_value=1, max_value=16))
    total = data.draw(st.integers(min_value=0, max_value=80))
    watermark, in_flight, position = Watermark(), set[int](), 0
    while position < total or in_flight:
        while position < total and (
            len(in_flight) + watermark.ahead < concurrency or not in_flight
        ):
            in_flight.add(position)
            position += 1
        finished = data.draw(st.sampled_from(sorted(in_flight)))
        in_flight.remove(finished)
        watermark.mark(finished)
        assert watermark.ahead <= concurrency - 1
    assert watermark.cursor() == {"next": total}


def test_a_sequential_cursor_resumes_as_a_watermark() -> None:
    watermark = Watermark.from_cursor(7, step="s")
    assert watermark.is_done(6)
    assert not watermark.is_done(7)
    assert Watermark.from_cursor(None, step="s").cursor() == {"next": 0}


@pytest.mark.parametrize(
    "cursor",
    [
        -1,
        "12",
        {"next": 3, "done": [2]},
        {"next": 3, "done": [5, 5]},
        {"next": 3, "done": "4"},
        {"next": -1},
        {"next": 3, "skipped": [4]},
    ],
)
def test_a_cursor_that_is_no_watermark_names_the_step_and_the_form(cursor: object) -> None:
    with pytest.raises(CursorError, match=r"step 'embed': a concurrent step's cursor is"):
        Watermark.from_cursor(cursor, step="embed")


def test_an_item_done_twice_is_refused() -> None:
    watermark = Watermark(3, [5])
    with pytest.raises(ValueError, match="item 5 is already done"):
        watermark.mark(5)
    with pytest.raises(ValueError, match="item 1 is already done"):
        watermark.mark(1)


@pytest.mark.parametrize("concurrency", [1, 8, 64, 256])
def test_the_widest_cursor_at_up_to_256_in_flight_fits_the_default_budget(
    concurrency: int,
) -> None:
    widest = widest_cursor(concurrency, 10**12)
    assert len(widest["done"]) == concurrency - 1
    assert encoded_size(widest) < DEFAULT_CHECKPOINT_MAX_BYTES // 4
    watermark = Watermark.from_cursor(widest, step="s")
    assert watermark.ahead == concurrency - 1
