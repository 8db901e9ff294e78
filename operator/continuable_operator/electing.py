"""Leader election over a coordination.k8s.io/v1 Lease, for more than one replica.

Replicas must not act at once (two would race every launch to its fence), so with
`--leader-elect` a replica acts only while it holds the Lease; the others wait. The rules are
client-go's (k8s.io/client-go/tools/leaderelection), so that two replicas never act at once:

- a follower never trusts the holder's `renewTime` (another machine's clock). It keeps the last
  record it read and the moment, on its own monotonic clock, that record last changed; the
  lease has expired only once the record has not changed for `leaseDurationSeconds` of its own
  time (a follower that starts late waits a whole duration);
- the leader renews every `retry` seconds, each call bounded by a timeout, and stops acting
  (`on_lost`: the process exits and restarts as a follower) once it has not renewed for
  `renew_deadline`, which is shorter than the lease duration: since a follower counts from a
  moment after the leader's last renewal began, the leader has stopped before anyone may take
  the lease, a hanging API call included.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)
Object = dict[str, Any]

# (connect, read) seconds for one Lease call; the renew deadline bounds the leader's calls anyway.
CALL_TIMEOUT = (2.0, 5.0)


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults: LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s. The 5 s
    between the deadline and the duration cover a late wake-up of the renewing thread and the
    exit; a follower looks every `retry` seconds too."""

    duration: float = 15
    renew_deadline: float = 10
    retry: float = 2

    def __post_init__(self) -> None:
        if not self.duration > self.renew_deadline:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        if not self.renew_deadline > self.retry > 0:
            raise ValueError("the retry period must be positive and shorter than the deadline")


class LeaseObserver:
    """When a lease held by another has expired, by our own clock (client-go's observedTime)."""

    def __init__(self, identity: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.identity = identity
        self._clock = clock
        self._record: Object | None = None
        self._changed_at = clock()

    def may_take(self, record: Mapping[str, Any] | None) -> bool:
        """Whether `identity` may hold the lease now: it is free, ours, or expired."""
        now = self._clock()
        seen = dict(record) if record else None
        if seen != self._record:
            self._record = seen
            self._changed_at = now
        if not record or not record.get("holderIdentity"):
            return True
        if record["holderIdentity"] == self.identity:
            return True
        duration = float(record.get("leaseDurationSeconds") or LeaseTiming.duration)
        return now - self._changed_at >= duration


class Leases(Protocol):
    """One Lease's store: the kubernetes API, or a fake in the tests."""

    def read(self) -> tuple[Object, str] | None:
        """The Lease's spec and resourceVersion; None when there is no Lease."""

    def create(self, spec: Object) -> bool:
        """False when another replica created it first."""

    def replace(self, spec: Object, version: str) -> bool:
        """False when it changed since `version` was read (another replica wrote first)."""


class KubeLeases:
    def __init__(self, namespace: str, name: str) -> None:
        from kubernetes import client

        self._api = client.CoordinationV1Api()
        self.namespace = namespace
        self.name = name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _body(self, spec: Object, version: str | None = None) -> Object:
        metadata: Object = {"name": self.name, "namespace": self.namespace}
        if version is not None:
            metadata["resourceVersion"] = version
        return {"metadata": metadata, "spec": spec}

    def read(self) -> tuple[Object, str] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=CALL_TIMEOUT
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        spec: Object = self._api.api_client.sanitize_for_serialization(lease.spec) or {}
        return spec, str(lease.metadata.resource_version)

    def create(self, spec: Object) -> bool:
        return self._conflict_is_false(
            lambda: self._api.create_namespaced_lease(
                self.namespace, self._body(spec), _request_timeout=CALL_TIMEOUT
            )
        )

    def replace(self, spec: Object, version: str) -> bool:
        # A replace with the read resourceVersion: of two replicas racing, one wins.
        return self._conflict_is_false(
            lambda: self._api.replace_namespaced_lease(
                self.name, self.namespace, self._body(spec, version), _request_timeout=CALL_TIMEOUT
            )
        )

    @staticmethod
    def _conflict_is_false(write: Callable[[], Any]) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            write()
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True


def _micro(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        leases: Leases,
        identity: str,
        *,
        timing: LeaseTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.leases = leases
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self._clock = clock
        self._wall = wall
        self._observer = LeaseObserver(identity, clock=clock)
        # When the last successful acquire or renewal began (not leading yet: never).
        self._renewed = float("-inf")

    def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's tryAcquireOrRenew): whether we hold the lease now."""
        began = self._clock()
        now = _micro(self._wall())
        found = self.leases.read()
        if found is None:
            spec: Object = {"acquireTime": now, "leaseTransitions": 0}
            taken = self.leases.create(self._record(spec, now))
        else:
            spec, version = found
            if not self._observer.may_take(spec):
                return False
            if spec.get("holderIdentity") != self.identity:
                transitions = int(spec.get("leaseTransitions") or 0) + 1
                spec = {**spec, "acquireTime": now, "leaseTransitions": transitions}
            taken = self.leases.replace(self._record(spec, now), version)
        if taken:
            self._renewed = began
        return taken

    def _record(self, spec: Object, now: str) -> Object:
        return {
            **copy.deepcopy(spec),
            "holderIdentity": self.identity,
            "renewTime": now,
            "leaseDurationSeconds": int(self.timing.duration),
        }

    def acquire(self, stop: threading.Event) -> bool:
        """Block until leading (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("leading as %s (lease %s)", self.identity, self.leases)
                    return True
            except Exception as err:
                log.warning("lease %s: %s", self.leases, err)
            if not announced:
                log.info("standing by: another replica holds lease %s", self.leases)
                announced = True
            stop.wait(self.timing.retry)
        return False

    def keep(self, on_lost: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Renew in the background; call `on_lost` once no renewal succeeded for the renew
        deadline. Each attempt runs on a helper thread, waited for only until the deadline, so
        a call that hangs past its timeout cannot keep the leader acting."""
        calls = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lease-call")

        def renew() -> None:
            while True:
                remaining = self._renewed + self.timing.renew_deadline - self._clock()
                if remaining <= 0:
                    log.error(
                        "could not renew lease %s for %.0f s; stopping",
                        self.leases,
                        self.timing.renew_deadline,
                    )
                    calls.shutdown(wait=False)
                    on_lost()
                    return
                if stop.wait(min(self.timing.retry, remaining)):
                    calls.shutdown(wait=False)
                    return
                attempt = calls.submit(self.try_acquire_or_renew)
                deadline = self._renewed + self.timing.renew_deadline - self._clock()
                try:
                    if not attempt.result(timeout=max(deadline, 0.0)):
                        log.warning("renewing lease %s: another replica wrote it", self.leases)
                except Exception as err:
                    why = err if attempt.done() else "no answer before the renew deadline"
                    log.warning("renewing lease %s failed: %s", self.leases, why)

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        return thread
