from __future__ import annotations

from datetime import UTC, datetime

from continuable_operator.electing import may_take

NOW = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)


def test_a_free_lease_can_be_taken() -> None:
    assert may_take(None, "a", NOW)
    assert may_take({"holderIdentity": ""}, "a", NOW)


def test_our_own_lease_is_renewed() -> None:
    assert may_take({"holderIdentity": "a", "renewTime": "2026-11-27T08:59:59.000000Z"}, "a", NOW)


def test_a_live_lease_of_another_is_respected_until_it_expires() -> None:
    held = {
        "holderIdentity": "b",
        "renewTime": "2026-11-27T08:59:50.000000Z",
        "leaseDurationSeconds": 15,
    }
    assert not may_take(held, "a", NOW)
    assert may_take({**held, "renewTime": "2026-11-27T08:59:40.000000Z"}, "a", NOW)
