from __future__ import annotations

import copy
import threading
import time
from typing import Any

import pytest

from continuable_operator.electing import LeaseElector, LeaseObserver, LeaseTiming


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


HELD_BY_B = {
    "holderIdentity": "b",
    "leaseDurationSeconds": 15,
    "acquireTime": "2026-11-27T08:00:00.000000Z",
    "renewTime": "2026-11-27T08:59:50.000000Z",
    "leaseTransitions": 3,
}


def test_a_free_lease_or_our_own_can_be_taken_at_once() -> None:
    observer = LeaseObserver("a", clock=Clock())
    assert observer.may_take(None)
    assert observer.may_take({"holderIdentity": ""})
    assert observer.may_take({**HELD_BY_B, "holderIdentity": "a"})


@pytest.mark.parametrize(
    "renew_time",
    [
        "2020-01-01T00:00:00.000000Z",  # the holder's clock far behind ours (or long dead)
        "2099-01-01T00:00:00.000000Z",  # the holder's clock far ahead of ours
    ],
)
def test_another_holders_lease_expires_by_our_clock_not_its_renew_time(renew_time: str) -> None:
    clock = Clock()
    observer = LeaseObserver("a", clock=clock)
    held = {**HELD_BY_B, "renewTime": renew_time}
    assert not observer.may_take(held), "first seen now: it may have been renewed just now"
    clock.now += 14.9
    assert not observer.may_take(held)
    clock.now += 0.1
    assert observer.may_take(held), "unchanged for a lease duration of our own time"


def test_a_renewal_restarts_the_wait() -> None:
    clock = Clock()
    observer = LeaseObserver("a", clock=clock)
    assert not observer.may_take(HELD_BY_B)
    clock.now += 10
    renewed = {**HELD_BY_B, "renewTime": "2026-11-27T09:00:00.000000Z"}
    assert not observer.may_take(renewed)
    clock.now += 10
    assert not observer.may_take(renewed), "only 10 s since the record last changed"
    clock.now += 5
    assert observer.may_take(renewed)


def test_the_holders_lease_duration_is_the_one_waited_for() -> None:
    clock = Clock()
    observer = LeaseObserver("a", clock=clock)
    held = {**HELD_BY_B, "leaseDurationSeconds": 40}
    observer.may_take(held)
    clock.now += 20
    assert not observer.may_take(held)
    clock.now += 20
    assert observer.may_take(held)


def test_the_renew_deadline_must_end_before_the_lease_could_be_taken() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        LeaseTiming(duration=10, renew_deadline=10, retry=2)
    with pytest.raises(ValueError, match="retry"):
        LeaseTiming(duration=15, renew_deadline=10, retry=10)
    defaults = LeaseTiming()
    assert defaults.renew_deadline < defaults.duration


class FakeLeases:
    """A Lease in memory, with resourceVersion conflicts; it can fail or hang on demand."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = copy.deepcopy(spec)
        self.version = 1
        self.failing = False
        self.hanging = threading.Event()
        self.released = threading.Event()
        self.renewed_at: list[float] = []

    def _answer(self) -> None:
        if self.hanging.is_set():
            self.released.wait(30)
        if self.failing:
            raise ConnectionRefusedError(111, "Connection refused")

    def read(self) -> tuple[dict[str, Any], str] | None:
        self._answer()
        return None if self.spec is None else (copy.deepcopy(self.spec), str(self.version))

    def create(self, spec: dict[str, Any]) -> bool:
        self._answer()
        if self.spec is not None:
            return False
        self.spec = copy.deepcopy(spec)
        self.renewed_at.append(time.monotonic())
        return True

    def replace(self, spec: dict[str, Any], version: str) -> bool:
        self._answer()
        if version != str(self.version):
            return False
        self.spec = copy.deepcopy(spec)
        self.version += 1
        self.renewed_at.append(time.monotonic())
        return True


def test_a_follower_takes_an_abandoned_lease_after_the_duration_of_its_own_clock() -> None:
    clock = Clock()
    leases = FakeLeases(HELD_BY_B)
    elector = LeaseElector(leases, "a", clock=clock)
    assert not elector.try_acquire_or_renew()
    clock.now += 14
    assert not elector.try_acquire_or_renew()
    clock.now += 1
    assert elector.try_acquire_or_renew()
    assert leases.spec is not None
    assert leases.spec["holderIdentity"] == "a"
    assert leases.spec["leaseTransitions"] == 4
    assert leases.spec["acquireTime"] == leases.spec["renewTime"]
    assert elector.try_acquire_or_renew(), "renewing our own lease"
    assert leases.spec["leaseTransitions"] == 4


def test_a_missing_lease_is_created() -> None:
    leases = FakeLeases()
    elector = LeaseElector(leases, "a", clock=Clock())
    assert elector.try_acquire_or_renew()
    assert leases.spec is not None
    assert (leases.spec["holderIdentity"], leases.spec["leaseDurationSeconds"]) == ("a", 15)


FAST = LeaseTiming(duration=1.5, renew_deadline=0.8, retry=0.1)


@pytest.mark.parametrize("trouble", ["hangs", "fails"])
def test_a_leader_that_cannot_renew_stops_before_the_lease_could_be_taken(trouble: str) -> None:
    leases = FakeLeases()
    elector = LeaseElector(leases, "a", timing=FAST)
    stop = threading.Event()
    lost = threading.Event()
    try:
        assert elector.acquire(stop)
        elector.keep(lost.set, stop)
        time.sleep(0.35)
        assert not lost.is_set(), "renewing fine"
        if trouble == "hangs":
            leases.hanging.set()
        else:
            leases.failing = True
        assert lost.wait(5), "the leader never stopped"
        stopped = time.monotonic()
        last_renewal = leases.renewed_at[-1]
        # A follower could take the lease a lease duration after it saw the last renewal.
        assert stopped - last_renewal < FAST.duration
        assert stopped - last_renewal >= FAST.renew_deadline - FAST.retry
    finally:
        stop.set()
        leases.released.set()
