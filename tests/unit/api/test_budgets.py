from __future__ import annotations

import math

import pytest

from continuable.budgets import encoded, encoded_size, over_budget


def test_size_is_compact_utf8_json() -> None:
    assert encoded({"a": [1, 2]}) == '{"a":[1,2]}'
    assert encoded_size({"a": [1, 2]}) == 11
    assert encoded_size("é") == 4  # two quotes and two UTF-8 bytes


@pytest.mark.parametrize("value", [{1, 2}, object(), math.nan])
def test_what_json_cannot_carry_is_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        encoded(value)


def test_over_budget_says_by_how_much() -> None:
    assert over_budget(100, 100) is None
    assert over_budget(130, 100) == "130 bytes exceeds the budget of 100 bytes by 30"
