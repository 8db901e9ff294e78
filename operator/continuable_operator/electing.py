"""Leader election over a coordination.k8s.io/v1 Lease, for more than one replica.

kopf's peering is not high availability (replicas at one priority freeze each other), so with
`--leader-elect` a replica acts only while it holds the Lease; the others wait. A leader that
cannot renew within the lease duration exits, and its pod restarts as a follower: two replicas
never act at once for longer than it takes a stale leader to notice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

LEASE_SECONDS = 15
RENEW_SECONDS = 5


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def may_take(lease_spec: Mapping[str, Any] | None, identity: str, now: datetime) -> bool:
    """Whether `identity` may hold the lease now: it is free, ours, or expired."""
    if not lease_spec or not lease_spec.get("holderIdentity"):
        return True
    if lease_spec["holderIdentity"] == identity:
        return True
    renewed = _time(lease_spec.get("renewTime")) or _time(lease_spec.get("acquireTime"))
    duration = int(lease_spec.get("leaseDurationSeconds") or LEASE_SECONDS)
    return renewed is None or now > renewed + timedelta(seconds=duration)


def _micro(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(self, namespace: str, name: str, identity: str) -> None:
        from kubernetes import client

        self._api = client.CoordinationV1Api()
        self.namespace = namespace
        self.name = name
        self.identity = identity

    def _try(self) -> bool:
        from kubernetes.client.exceptions import ApiException

        now = datetime.now(UTC)
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "acquireTime": _micro(now),
                    "renewTime": _micro(now),
                    "leaseTransitions": 0,
                },
            }
            try:
                self._api.create_namespaced_lease(self.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            return True
        spec = self._api.api_client.sanitize_for_serialization(lease.spec) or {}
        if not may_take(spec, self.identity, now):
            return False
        taking = spec.get("holderIdentity") != self.identity
        spec.update(
            holderIdentity=self.identity, renewTime=_micro(now), leaseDurationSeconds=LEASE_SECONDS
        )
        if taking:
            spec.update(
                acquireTime=_micro(now), leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1
            )
        body = {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": lease.metadata.resource_version,
            },
            "spec": spec,
        }
        try:
            # A replace with the read resourceVersion: of two replicas racing, one wins.
            self._api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as conflict:
            if conflict.status == 409:
                return False
            raise
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until leading (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self._try():
                    log.info(
                        "leading as %s (lease %s/%s)", self.identity, self.namespace, self.name
                    )
                    return True
            except Exception as err:
                log.warning("lease %s/%s: %s", self.namespace, self.name, err)
            if not announced:
                log.info(
                    "standing by: another replica holds lease %s/%s", self.namespace, self.name
                )
                announced = True
            stop.wait(RENEW_SECONDS)
        return False

    def keep(self, on_lost: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Renew in the background; call `on_lost` once renewing fails for a lease duration."""

        def renew() -> None:
            last = time.monotonic()
            while not stop.wait(RENEW_SECONDS):
                try:
                    if self._try():
                        last = time.monotonic()
                        continue
                except Exception as err:
                    log.warning("renewing lease %s/%s failed: %s", self.namespace, self.name, err)
                if time.monotonic() - last > LEASE_SECONDS - RENEW_SECONDS:
                    log.error("lost lease %s/%s; stopping", self.namespace, self.name)
                    on_lost()
                    return

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        return thread
