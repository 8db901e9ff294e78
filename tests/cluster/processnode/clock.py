"""Timestamps in the two shapes the API uses: Time (whole seconds) and MicroTime (Leases)."""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(when: dt.datetime | None = None) -> str:
    # The kubelet truncates status times to whole seconds (normalizeStatus), as metav1.Time
    # serialises them anyway; doing it here keeps our own comparisons exact.
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro(when: dt.datetime | None = None) -> str:
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
