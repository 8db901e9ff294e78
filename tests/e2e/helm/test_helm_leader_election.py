"""The chart with `replicaCount=2` on the local control plane: both replicas run (as host
processes on the process node) with the chart's `--leader-elect --lease-name=<fullname>`, the
Lease is in the release namespace (POD_NAMESPACE from the downward API) under the chart's Lease
Role, one replica leads and the other stands by (/readyz 200 "standby"), jobs run, and when the
leader's pod is deleted the follower takes the Lease over and handles the jobs; a rolling
`helm upgrade` then replaces both replicas and one of the new ones leads.

One Deployment gives both pods the same arguments, so on the shared host network the chart's
fixed health and metrics ports would collide. The test appends `--metrics-port=0
--health-port=0` through `operator.extraArgs` (the last one wins): each replica binds free
loopback ports, which the test reads from the process's listening sockets (the process node
names the pid in the container ID). The containerPort values no longer match then; nothing
here uses them (the process node runs no probes).
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.session import Cluster
from tests.cluster.waiting import WaitTimeout, wait_for

from .conftest import INSTALL_TIMEOUT, THREE_STEPS, Jobs, Release, fail_with, released, tail

pytestmark = pytest.mark.e2e

PYTHON = [sys.executable]
# The operator's Lease timing (electing.py): 15 s lease, renewed or retried every 5 s.
TAKEOVER_TIMEOUT = 90.0
TWO_REPLICAS: dict[str, Any] = {
    "replicaCount": 2,
    # Loopback only, and ports of the kernel's choosing: both replicas share the host network.
    "operator.extraArgs": ["--bind-address=127.0.0.1", "--metrics-port=0", "--health-port=0"],
}
# /proc/net/tcp state of a listening socket.
TCP_LISTEN = "0A"


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on: its socket inodes, looked up in its /proc/net tables."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if match:
            inodes.add(match.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_LISTEN and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status), answer.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode(errors="replace")
    except OSError:
        return 0, ""


@dataclass(frozen=True)
class Replica:
    """One running operator pod and its host process."""

    pod: str
    uid: str
    pid: int
    log: Path | None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def health_port(self) -> int | None:
        """The listening port that answers /healthz as the operator's health server does."""
        for port in sorted(listening_ports(self.pid)):
            if get(port, "/healthz") == (200, "ok\n"):
                return port
        return None

    def readyz(self) -> tuple[int, str]:
        port = self.health_port()
        return get(port, "/readyz") if port else (0, "")


def replicas(release: Release) -> list[Replica]:
    """The release's running, not deleted, operator pods, each with its process."""
    found = []
    for pod in release.operator_pods():
        if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Running":
            continue
        for status in pod["status"].get("containerStatuses", []):
            # processnode://<uid>-<container>-<pid>
            match = re.search(r"-(\d+)$", status.get("containerID", ""))
            if status.get("state", {}).get("running") and match:
                found.append(
                    Replica(
                        pod["metadata"]["name"],
                        pod["metadata"]["uid"],
                        int(match.group(1)),
                        release.log_path(pod),
                    )
                )
    return sorted(found, key=lambda r: r.pod)


def lease_spec(release: Release) -> dict[str, Any] | None:
    result = release.kubectl.run(
        "get", "lease", release.fullname, "-n", release.namespace, "-o", "json", check=False
    )
    if result.returncode != 0:
        return None
    spec: dict[str, Any] = json.loads(result.stdout).get("spec", {})
    return spec


def holder(spec: Mapping[str, Any] | None, among: list[Replica]) -> Replica | None:
    """The replica whose identity (`<hostname>-<pid>`) holds the Lease."""
    identity = (spec or {}).get("holderIdentity") or ""
    matches = [r for r in among if identity.endswith(f"-{r.pid}")]
    return matches[0] if len(matches) == 1 else None


def describe(release: Release) -> str:
    logs = "\n".join(f"--- {r.pod} (pid {r.pid})\n{tail(r.log)}" for r in replicas(release))
    return f"lease: {json.dumps(lease_spec(release))}\n{logs or release.operator_log()}"


def test_two_replicas_one_leads_and_a_follower_takes_over(helm_cluster: Cluster) -> None:
    try:
        with released(helm_cluster, "helm-ha", install=False, **TWO_REPLICAS) as (release, jobs):
            _run(release, jobs)
    except WaitTimeout as err:
        fail_with(str(err))


def _run(release: Release, jobs: Jobs) -> None:
    release.install()
    kubectl = release.kubectl
    deployment = json.loads(
        kubectl("get", "deployment", release.fullname, "-n", release.namespace, "-o", "json")
    )
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--leader-elect" in container["args"]
    assert f"--lease-name={release.fullname}" in container["args"]

    def two() -> list[Replica] | None:
        found = replicas(release)
        return found if len(found) == 2 and all(r.log for r in found) else None

    pair = wait_for(
        two,
        timeout=INSTALL_TIMEOUT,
        what=f"two running replicas of release {release.name}",
        detail=release.operator_log,
    )

    # One leads: it holds the Lease, in the release namespace, named after the release.
    leader = wait_for(
        lambda: holder(lease_spec(release), pair),
        timeout=60,
        what=f"lease {release.namespace}/{release.fullname} held by a replica",
        detail=lambda: describe(release),
    )
    (follower,) = [r for r in pair if r != leader]
    wait_for(
        lambda: "standing by" in follower.text(),
        timeout=60,
        what=f"replica {follower.pod} to stand by",
        detail=lambda: describe(release),
    )
    assert "leading as" in leader.text()
    assert "leading as" not in follower.text()

    # Both are healthy and ready: a follower reports ready, so a rollout can proceed.
    wait_for(
        lambda: leader.readyz() == (200, "ok\n"),
        timeout=60,
        what=f"/readyz of the leader {leader.pod} to say ok",
        detail=lambda: describe(release),
    )
    assert follower.readyz() == (200, "standby\n"), describe(release)
    assert leader.health_port() != follower.health_port()

    # The leader runs jobs; the follower does not act.
    jobs.create("led", [*PYTHON, THREE_STEPS], ITEM_SECONDS="0.001")
    status = jobs.wait_phase("led", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", jobs.describe("led")
    assert jobs.items("led") == list(range(2000))
    assert "leading as" not in follower.text()
    assert not release.forbidden(), "\n".join(release.forbidden()[:5])
    before = lease_spec(release) or {}

    # The leader's pod goes. Once its Lease expires another replica takes it over: the old
    # follower, or the Deployment's replacement pod if it asks first; both wait as followers.
    kubectl("delete", "pod", leader.pod, "-n", release.namespace, "--wait=false")
    # Created while no replica acts: the new leader picks it up.
    jobs.create("handed-over", [*PYTHON, THREE_STEPS], ITEM_SECONDS="0.001")

    def new_leader() -> Replica | None:
        live = [r for r in replicas(release) if r.uid != leader.uid]
        return holder(lease_spec(release), live)

    successor = wait_for(
        new_leader,
        timeout=TAKEOVER_TIMEOUT,
        what=f"a replica other than {leader.pod} to take the lease over",
        detail=lambda: describe(release),
    )
    after = lease_spec(release) or {}
    assert int(after.get("leaseTransitions") or 0) == int(before.get("leaseTransitions") or 0) + 1
    assert "leading as" in successor.text()
    status = jobs.wait_phase("handed-over", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", jobs.describe("handed-over")
    assert jobs.items("handed-over") == list(range(2000))
    assert status["attempt"] == 1

    # The other live replica stands by behind the new leader.
    def standby() -> Replica | None:
        found = [r for r in replicas(release) if r.uid not in (leader.uid, successor.uid)]
        return found[0] if len(found) == 1 and "standing by" in found[0].text() else None

    new = wait_for(
        standby,
        timeout=INSTALL_TIMEOUT,
        what="the other replica to stand by",
        detail=lambda: describe(release),
    )
    assert holder(lease_spec(release), [successor, new]) == successor
    assert "leading as" not in new.text()
    wait_for(
        lambda: new.readyz() == (200, "standby\n") and successor.readyz() == (200, "ok\n"),
        timeout=60,
        what="/readyz: the new leader ok, the other replica standby",
        detail=lambda: describe(release),
    )
    assert not release.forbidden(), "\n".join(release.forbidden()[:5])

    # A rolling upgrade replaces both: the new pods stand by until the Lease is free, one of
    # them takes it, and jobs run again.
    release.upgrade(podAnnotations={"rolled": "yes"})
    old = {leader.uid, follower.uid, successor.uid, new.uid}

    def rolled() -> list[Replica] | None:
        found = [r for r in replicas(release) if r.uid not in old]
        pods = release.operator_pods()
        return found if len(found) == 2 and len(pods) == 2 else None

    pair = wait_for(
        rolled,
        timeout=INSTALL_TIMEOUT,
        what="two new replicas after the upgrade",
        detail=lambda: describe(release),
    )
    leader = wait_for(
        lambda: holder(lease_spec(release), pair),
        timeout=TAKEOVER_TIMEOUT,
        what="a new replica to take the lease after the upgrade",
        detail=lambda: describe(release),
    )
    (follower,) = [r for r in pair if r != leader]
    jobs.create("rolled", [*PYTHON, THREE_STEPS], ITEM_SECONDS="0.001")
    status = jobs.wait_phase("rolled", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", jobs.describe("rolled")
    assert "leading as" not in follower.text()
    assert follower.readyz() == (200, "standby\n"), describe(release)
    assert not release.forbidden(), "\n".join(release.forbidden()[:5])
