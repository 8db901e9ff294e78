"""API requests counted by the API server itself: its audit log, at Metadata level, read back
and filtered to one client (the issue's measure is the server's count, not the operator's own).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


def apiserver_args(folder: Path) -> list[str]:
    """kube-apiserver flags that log every request, once answered, to folder/audit.log."""
    policy = folder / "audit-policy.yaml"
    policy.write_text(POLICY)
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={folder / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-maxsize=10000",
        "--audit-log-mode=blocking",
    ]


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # "pods", "continuablejobs/status", ...
    user: str
    agent: str
    at: float  # seconds since the epoch, when answered
    name: str = ""  # the object's (empty for a list, or a create by generateName)


def read(path: Path) -> list[Request]:
    requests = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        resource = ref.get("resource", entry.get("requestURI", ""))
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        stamp = datetime.fromisoformat(entry["stageTimestamp"].replace("Z", "+00:00"))
        requests.append(
            Request(
                entry["verb"],
                resource,
                (entry.get("user") or {}).get("username", ""),
                entry.get("userAgent", ""),
                stamp.timestamp(),
                ref.get("name", ""),
            )
        )
    return requests


def count(
    requests: list[Request], since: float, until: float, client: Callable[[Request], bool]
) -> Counter[str]:
    """The client's requests answered between since and until, by "verb resource"; watches,
    which stay open, are not requests made for one event."""
    return Counter(
        f"{r.verb} {r.resource}"
        for r in requests
        if since <= r.at <= until and r.verb != "watch" and client(r)
    )
