"""The operator through an API server restart (issue 21, item 3): work the operator scheduled for
a later moment (the end of a backoff, a TTL) still happens when that moment falls while the API
server is down.

The reconcile that such a requeue starts fails when no API server answers (connection refused);
the operator must turn that into a retry. Without one, the requeue is spent and nothing else is
scheduled: the job waits for an event, and none comes, since nothing about it changed.

Whether an event comes depends on how the operator's watches resume. A restarted API server's
watch cache starts at the newest revision, so a watch resumed at an older one gets 410 Gone;
the operator then lists again, and a listing that reconciled every job would hide a lost
requeue. Clients that reconnect to another replica of an HA control plane, or whose connection
alone broke (a read timeout), resume their watches without a listing. So this module's API
server runs with `--watch-cache=false`: a resumed watch is served from etcd at the revision it
asks for, as by a replica that kept its cache, and only real changes reach the operator.
(Measured when kopf ran the operator's watches: with the watch cache on, an operator that did
not retry transport errors passed this test because of kopf's listing; with it off, it left
both jobs waiting forever.)

The API server is stopped here, so this module runs on a control plane of its own (with its own
process node and operator), never on the session's cluster the other tests share.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests.cluster.binaries import BinariesMissing
from tests.cluster.controlplane import ControlPlane
from tests.cluster.crds import apply_crds
from tests.cluster.kubectl import Kubectl
from tests.cluster.operating import OperatorProcess
from tests.cluster.processes import tail
from tests.cluster.processnode import NodeConfig, ProcessNodes
from tests.cluster.session import EXTERNAL_KUBECONFIG_ENV, crd_dir, temporary_namespace
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import JobUnderTest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# A fails at once and waits this long before its next attempt; B succeeds at once and is
# deleted this long after. Long enough to see both waiting before the outage begins.
BACKOFF_SECONDS = 20
TTL_SECONDS = 25
# The API server is told to stop this long before the first of the two moments (it refuses new
# requests from its SIGTERM on, and takes a second or two to exit) and comes back this long after
# the last: both timers fire while nothing answers.
MARGIN_SECONDS = 5.0
# And it stays down at least this long, as a real restart or an etcd hiccup can.
MIN_DOWN_SECONDS = 10.0
RELAUNCH_AT = re.compile(r"relaunching at (\S+)")


@dataclass
class OwnCluster:
    control_plane: ControlPlane
    kubectl: Kubectl
    operator: OperatorProcess


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[OwnCluster]:
    """etcd, kube-apiserver, controller-manager and scheduler, the CRDs, a process node and the
    operator from the working tree, all of this module's own; stopped in reverse order."""
    if os.environ.get(EXTERNAL_KUBECONFIG_ENV):
        pytest.skip("restarts the API server: needs a local control plane of its own")
    try:
        # Watches resume without a listing (see the module's docstring).
        control_plane = ControlPlane(extra_apiserver_args=["--watch-cache=false"])
    except BinariesMissing as err:
        pytest.fail(str(err), pytrace=False)
    with control_plane, tempfile.TemporaryDirectory(prefix="continuable-outage-") as folder:
        kubectl = Kubectl.for_kubeconfig(control_plane.kubeconfig)
        apply_crds(kubectl, crd_dir())
        operator = OperatorProcess(
            control_plane.kubeconfig, Path(folder) / "operator.log", namespaces=["op-*"]
        )
        with ProcessNodes(control_plane, [NodeConfig(name="outage-node")]), operator:
            yield OwnCluster(control_plane, kubectl, operator)


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="continuable-e2e-") as folder:
        path = Path(folder)
        path.chmod(0o777)
        yield path


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _gone(job: JobUnderTest) -> bool:
    result = job.kubectl.run("get", "cjob", job.name, "-n", job.namespace, check=False)
    if result.returncode == 0:
        return False
    assert "NotFound" in result.stderr, result.stderr
    return True


def _backoff_ends(job: JobUnderTest) -> float | None:
    """When the job's next attempt is due, while it waits out a backoff."""
    running = job.condition("Running")
    if not running or running.get("reason") != "BackoffAfterFailure":
        return None
    found = RELAUNCH_AT.search(running.get("message", ""))
    return _epoch(found.group(1)) if found else None


def test_a_backoff_and_a_ttl_that_end_while_the_api_server_is_down_still_happen(
    own_cluster: OwnCluster, scratch_dir: Path
) -> None:
    kubectl, control_plane = own_cluster.kubectl, own_cluster.control_plane
    with temporary_namespace(kubectl, "api-outage", prefix="op-") as namespace:
        failing = JobUnderTest(kubectl, namespace, "backing-off", scratch_dir)
        finished = JobUnderTest(kubectl, namespace, "expiring", scratch_dir)
        failing.create(
            [sys.executable, "-c", "import sys; sys.exit(1)"],
            backoffLimit=3,
            backoff={"initialSeconds": BACKOFF_SECONDS, "maxSeconds": 60},
        )
        finished.create([sys.executable, "-c", "pass"], ttlSecondsAfterFinished=TTL_SECONDS)

        backoff_due = wait_for(
            lambda: _backoff_ends(failing),
            timeout=60,
            what="job backing-off waiting out its backoff",
            detail=lambda: str(failing.status()),
        )
        completed = finished.wait_phase("Succeeded", timeout=60)["completionTime"]
        ttl_due = _epoch(completed) + TTL_SECONDS
        first, last = min(backoff_due, ttl_due), max(backoff_due, ttl_due)
        assert first - time.time() > MARGIN_SECONDS, "both jobs must still be waiting"

        _sleep_until(first - MARGIN_SECONDS)
        assert failing.status()["attempt"] == 1
        assert not _gone(finished)
        stopping = time.time()
        control_plane.stop_apiserver()
        down = time.time()
        # From its SIGTERM on the API server answers 503 "shutting down", then nothing.
        assert first - stopping > 2, "the API server was stopped too late: a timer had fired"
        _sleep_until(max(last + MARGIN_SECONDS, down + MIN_DOWN_SECONDS))
        control_plane.start_apiserver()
        up = time.time()
        log = own_cluster.operator.log_path

        def story() -> str:
            return (
                f"SIGTERM to the API server {first - stopping:.1f}s before the first timer, "
                f"gone {first - down:.1f}s before it, back {up - last:.1f}s after the last "
                f"(down {up - down:.1f}s)\noperator log:\n{tail(log, 30)}"
            )

        relaunched = wait_for(
            lambda: failing.pod(2),
            timeout=90,
            what="the next attempt of the job whose backoff ended during the outage",
            detail=lambda: f"status: {failing.status()}\n{story()}",
        )
        assert failing.status()["attempt"] == 2
        assert relaunched["metadata"]["labels"]["continuable.dev/attempt"] == "2"
        wait_for(
            lambda: _gone(finished),
            timeout=90,
            what="the deletion of the job whose TTL passed during the outage",
            detail=story,
        )
