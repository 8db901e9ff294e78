"""Byte budgets of what the SDK writes: etcd stores the whole object on every write.

Sizes are measured as the bytes of compact JSON, the form in which a value travels in a patch,
so a budget check here agrees with what the API server receives.
"""

from __future__ import annotations

import json
from typing import Any


def encoded(value: Any) -> str:
    """Compact JSON of a value; TypeError/ValueError for what JSON cannot carry."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encoded_size(value: Any) -> int:
    return len(encoded(value).encode("utf-8"))


def over_budget(size: int, budget: int) -> str | None:
    """A sentence saying by how much `size` exceeds `budget`, or None when it fits."""
    if size <= budget:
        return None
    return f"{size} bytes exceeds the budget of {budget} bytes by {size - budget}"
