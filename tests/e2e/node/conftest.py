"""Fixtures for the process-node proofs: a control plane, process nodes, a namespace per test.

The control plane is started once per session (the same recipe as tests/e2e/cluster); nodes
that a test changes (drain, preemption, restarts) are started per test so no test sees
another's cordon or capacity. Every fixture stops what it started and removes its folders.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import ControlPlane, Kubectl
from tests.cluster.processnode import ApiClient, ApiError, NodeConfig, ProcessNodes
from tests.cluster.processnode.rest import path_of, pod_path
from tests.cluster.session import Cluster
from tests.cluster.waiting import wait_for

pytestmark = pytest.mark.e2e

Pod = dict[str, Any]


@pytest.fixture(scope="session")
def control_plane(cluster: Cluster) -> ControlPlane:
    """The session's local control plane (shared with the other e2e suites)."""
    if cluster.control_plane is None:
        pytest.skip("the process-node proofs need the local control plane (they issue node certs)")
    return cluster.control_plane


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Kubectl:
    return Kubectl.for_kubeconfig(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def admin(control_plane: ControlPlane) -> Iterator[ApiClient]:
    with tempfile.TemporaryDirectory(prefix="continuable-admin-") as folder:
        yield ApiClient.from_kubeconfig(control_plane.kubeconfig, Path(folder))


@pytest.fixture(scope="session")
def node(control_plane: ControlPlane) -> Iterator[str]:
    """One shared process node for the tests that leave nodes alone."""
    with ProcessNodes(control_plane, [NodeConfig(name="shared-node")]) as nodes:
        yield next(iter(nodes.agents))


@pytest.fixture
def make_nodes(control_plane: ControlPlane) -> Iterator[Callable[..., ProcessNodes]]:
    """Start process nodes of a test's own; stopped (pods killed, folders removed) afterwards."""
    started: list[tuple[ProcessNodes, list[str]]] = []

    def make(*configs: NodeConfig) -> ProcessNodes:
        nodes = ProcessNodes(control_plane, configs).start()
        started.append((nodes, [c.name for c in configs]))
        return nodes

    yield make
    for nodes, names in started:
        nodes.stop()
        for name in names:
            # The Node objects would otherwise outlive the test as NotReady nodes.
            Kubectl.for_kubeconfig(control_plane.kubeconfig).run(
                "delete", "node", name, "--wait=false", check=False
            )


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder the pods' processes write their evidence into (signals received, output)."""
    with tempfile.TemporaryDirectory(prefix="continuable-node-test-") as folder:
        path = Path(folder)
        path.chmod(0o777)
        yield path


@pytest.fixture
def namespace(kubectl: Kubectl, admin: ApiClient) -> Iterator[str]:
    name = f"node-{uuid.uuid4().hex[:8]}"
    kubectl.retrying("create", "namespace", name)
    # Pods are refused until the ServiceAccount controller made `default` in the namespace.
    wait_for(
        lambda: _exists(
            admin, path_of("api", "v1", "namespaces", name, "serviceaccounts", "default")
        ),
        timeout=30,
        what=f"serviceaccount default in {name}",
    )
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _exists(api: ApiClient, path: str) -> bool:
    try:
        api.get(path)
        return True
    except ApiError as err:
        if err.not_found:
            return False
        raise


class Pods:
    """Creating pods and waiting on them through the admin client."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def manifest(
        self,
        name: str,
        command: list[str],
        *,
        node: str,
        grace: int = 30,
        **spec: Any,
    ) -> Pod:
        metadata = spec.pop("metadata", {})
        container = {"name": "main", "image": "ignored.invalid/image", "command": command}
        container.update(spec.pop("container", {}))
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, **metadata},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": grace,
                # Through the scheduler (not spec.nodeName) so binding is exercised too.
                "nodeSelector": {"kubernetes.io/hostname": node},
                "containers": [container],
                **spec,
            },
        }

    def create(self, pod: Pod) -> Pod:
        path = path_of("api", "v1", "namespaces", self.namespace, "pods")
        return self.api.post(path, pod)

    def get(self, name: str) -> Pod | None:
        try:
            return self.api.get(pod_path(self.namespace, name))
        except ApiError as err:
            if err.not_found:
                return None
            raise

    def wait(self, name: str, check: Callable[[Pod], bool], *, timeout: float, what: str) -> Pod:
        last: list[Pod | None] = [None]

        def probe() -> Pod | None:
            pod = self.get(name)
            last[0] = pod
            return pod if pod is not None and check(pod) else None

        return wait_for(
            probe,
            timeout=timeout,
            what=f"pod {name} {what}",
            detail=lambda: f"last seen status: {(last[0] or {}).get('status')}",
        )

    def wait_phase(self, name: str, *phases: str, timeout: float = 30) -> Pod:
        return self.wait(
            name,
            lambda p: p.get("status", {}).get("phase") in phases,
            timeout=timeout,
            what=f"in phase {'/'.join(phases)}",
        )

    def wait_gone(self, name: str, *, timeout: float) -> float:
        began = time.monotonic()
        wait_for(lambda: self.get(name) is None, timeout=timeout, what=f"pod {name} to be gone")
        return time.monotonic() - began

    def delete(self, name: str, **options: Any) -> None:
        self.api.delete(pod_path(self.namespace, name), options or None)

    def log_path(self, name: str) -> Path:
        """The container log, found where the node said it is: in the pod's Started event."""
        path = path_of("api", "v1", "namespaces", self.namespace, "events")

        def find() -> Path | None:
            for event in self.api.get(path).get("items", []):
                involved = event.get("involvedObject", {})
                if involved.get("name") == name and event.get("reason") == "Started":
                    match = re.search(r"output in (\S+)", event.get("message", ""))
                    if match:
                        return Path(match.group(1))
            return None

        return wait_for(find, timeout=15, what=f"the Started event of pod {name}")


class PodHistory:
    """Every version of one pod seen through a watch, so short-lived states can be asserted."""

    def __init__(self, api: ApiClient, namespace: str, name: str) -> None:
        self.versions: list[Pod] = []
        self.api = api
        self._path = path_of("api", "v1", "namespaces", namespace, "pods")
        self._params = {"fieldSelector": f"metadata.name={name}"}
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version = "0"
        while not self._stop.is_set():
            try:
                self._watch = self.api.watch(
                    self._path, {**self._params, "resourceVersion": version}, timeout_seconds=60
                )
                for event in self._watch:
                    obj = event.get("object", {})
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.versions.append(obj)
            except ApiError:
                self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.close()
        self._thread.join(5)

    def condition(self, kind: str) -> list[dict[str, Any]]:
        return [
            c
            for pod in self.versions
            for c in pod.get("status", {}).get("conditions", [])
            if c.get("type") == kind
        ]


@pytest.fixture
def pods(admin: ApiClient, namespace: str) -> Pods:
    return Pods(admin, namespace)


@pytest.fixture
def history(admin: ApiClient, namespace: str) -> Iterator[Callable[[str], PodHistory]]:
    started: list[PodHistory] = []

    def start(name: str) -> PodHistory:
        recorder = PodHistory(admin, namespace, name)
        started.append(recorder)
        return recorder

    yield start
    for recorder in started:
        recorder.stop()


@pytest.fixture
def signal_recorder() -> Callable[..., list[str]]:
    return _signal_recorder


def _signal_recorder(record: Path, *, ignore_term: bool = False) -> list[str]:
    """A python command that writes 'started' and then each signal it gets into `record`."""
    script = f"""
import os, signal, sys, time
path = {str(record)!r}
def on_term(signum, frame):
    with open(path, 'a') as f:
        f.write('SIGTERM\\n')
    sys.exit(0)
def ignore(signum, frame):
    with open(path, 'a') as f:
        f.write('SIGTERM ignored\\n')
signal.signal(signal.SIGTERM, ignore if {ignore_term!r} else on_term)
with open(path, 'a') as f:
    f.write('started\\n')
for _ in range(600):
    time.sleep(0.5)
"""
    return ["python", "-c", script]
