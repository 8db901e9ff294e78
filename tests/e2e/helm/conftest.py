"""The chart installed with the pinned helm on the local control plane.

The operator's pod is scheduled to the process node, which runs the chart's container command
(`continuable-operator` and the chart's args) on the host with the pod's ServiceAccount token:
the operator runs with exactly the chart's RBAC. Each release watches its own namespaces only,
so it never meets another suite's operator, and binds its health and metrics ports on loopback.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kubectl import Kubectl
from tests.cluster.ports import free_ports
from tests.cluster.session import Cluster, temporary_namespace
from tests.cluster.waiting import WaitTimeout, wait_for
from tests.e2e.jobs import job_manifest
from tests.unit.chart.helm import CHART, Helm, set_flags

THREE_STEPS = "tests/e2e/local/jobs/three_steps.py"
PEEK = "tests/e2e/sdk/jobs/peek.py"
CHART_NAME = "continuable-operator"
# Generous: a cold operator imports the kubernetes client on a 2-core machine.
INSTALL_TIMEOUT = 240.0
JOB_TIMEOUT = 240.0


def fail_with(message: str) -> None:
    pytest.fail(message, pytrace=False)


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Release:
    """One helm release of the chart: its namespace, the namespaces it watches, its ports."""

    helm: Helm
    kubectl: Kubectl
    name: str
    namespace: str
    watch: list[str]
    metrics_port: int
    health_port: int
    installed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        return f"{self.name}-{CHART_NAME}"

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/name={CHART_NAME}"

    def values(self, **overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "watchNamespaces": self.watch,
            "metrics.port": self.metrics_port,
            "health.port": self.health_port,
            # On the process node the operator shares the host's network: loopback only.
            "operator.extraArgs": ["--bind-address=127.0.0.1"],
            **self.extra,
        }
        values.update(overrides)
        return values

    def install(self, **overrides: Any) -> str:
        out = self._apply("install", overrides)
        self.installed = True
        return out

    def upgrade(self, **overrides: Any) -> str:
        return self._apply("upgrade", overrides)

    def _apply(self, verb: str, overrides: dict[str, Any]) -> str:
        """`helm install` or `helm upgrade`, waiting until the release's objects are ready."""
        return self.helm.run(
            verb,
            self.name,
            str(CHART),
            "--namespace",
            self.namespace,
            "--wait=watcher",
            f"--timeout={int(INSTALL_TIMEOUT)}s",
            *set_flags(self.values(**overrides)),
            timeout=INSTALL_TIMEOUT + 30,
        ).stdout

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.helm.run(
            "uninstall",
            self.name,
            "--namespace",
            self.namespace,
            "--wait=watcher",
            "--timeout=120s",
            timeout=150,
        )
        self.installed = False

    def operator_pods(self) -> list[dict[str, Any]]:
        raw = self.kubectl("get", "pods", "-n", self.namespace, "-l", self.selector, "-o", "json")
        pods: list[dict[str, Any]] = json.loads(raw)["items"]
        return pods

    def running_operator(self) -> dict[str, Any] | None:
        """The one operator pod that runs (not being deleted), once it is alone."""
        pods = self.operator_pods()
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if len(pods) == 1 and len(live) == 1 and live[0]["status"].get("phase") == "Running":
            return live[0]
        return None

    def log_path(self, pod: dict[str, Any]) -> Path | None:
        """Where the process node writes the container's output (named in its Started event)."""
        raw = self.kubectl(
            "get",
            "events",
            "-n",
            self.namespace,
            "--field-selector",
            f"involvedObject.name={pod['metadata']['name']},reason=Started",
            "-o",
            "json",
        )
        for event in json.loads(raw)["items"]:
            match = re.search(r"output in (\S+)", event.get("message", ""))
            if match:
                return Path(match.group(1))
        return None

    def operator_log(self) -> str:
        pods = self.operator_pods()
        if not pods:
            return "(no operator pod)"
        return "\n".join(f"--- {p['metadata']['name']}\n{self._log_tail(p)}" for p in pods)

    def _log_tail(self, pod: dict[str, Any]) -> str:
        path = self.log_path(pod)
        if path is not None:
            return tail(path)
        # A real node names no file: the kubelet serves the container's log.
        logs = self.kubectl.run(
            "logs", "-n", self.namespace, pod["metadata"]["name"], "--tail=40", check=False
        )
        return logs.stdout + logs.stderr

    def forbidden(self) -> list[str]:
        """Lines of the operator pods' logs that report a refused API call (HTTP 403)."""
        found = []
        for pod in self.operator_pods():
            path = self.log_path(pod)
            assert path is not None, f"no Started event for {pod['metadata']['name']}"
            assert path.exists(), f"no log of {pod['metadata']['name']} at {path}"
            text = path.read_text(errors="replace")
            found += [line for line in text.splitlines() if "forbidden" in line.lower()]
        return found

    def get_health(self, path: str, port: int | None = None) -> tuple[int, str]:
        url = f"http://127.0.0.1:{port or self.health_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return int(answer.status), answer.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            return int(err.code), ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = INSTALL_TIMEOUT) -> dict[str, Any]:
        """The operator pod runs alone and its /readyz (the readiness probe's target) says 200.
        The process node runs no probes, so the test asks the endpoint itself."""
        pod = wait_for(
            self.running_operator,
            timeout=timeout,
            what=f"one running operator pod of release {self.name}",
            detail=self.operator_log,
        )
        wait_for(
            lambda: self.get_health("/readyz")[0] == 200,
            timeout=timeout,
            what=f"/readyz of release {self.name} on 127.0.0.1:{self.health_port}",
            detail=self.operator_log,
        )
        return pod


@dataclass
class Jobs:
    """ContinuableJobs in a watched namespace, each appending its side effects to a file."""

    kubectl: Kubectl
    namespace: str
    folder: Path
    release: Release | None = None

    def events(self, name: str) -> Path:
        return self.folder / f"{name}.events"

    def create(
        self, name: str, command: list[str], *, interval: int = 1, **env: str
    ) -> dict[str, Any]:
        env = {"EVENTS": str(self.events(name)), **env}
        job = job_manifest(
            name, self.namespace, command, env, checkpoint={"intervalSeconds": interval}
        )
        self.kubectl.retrying("apply", "-f", "-", input=json.dumps(job))
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        job: dict[str, Any] = json.loads(
            self.kubectl("get", "cjob", name, "-n", self.namespace, "-o", "json")
        )
        return job

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.get(name).get("status", {})
        return status

    def describe(self, name: str) -> str:
        status = self.status(name)
        status.pop("checkpoint", None)
        operator = self.release.operator_log() if self.release else ""
        return f"status: {json.dumps(status)}\n{len(self.items(name))} items\n{operator}"

    def wait_phase(self, name: str, *phases: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") in phases else None

        return wait_for(
            reached,
            timeout=timeout,
            what=f"job {name} in phase {'/'.join(phases)}",
            interval=0.5,
            detail=lambda: self.describe(name),
        )

    def pod(self, name: str, attempt: int) -> dict[str, Any] | None:
        result = self.kubectl.run(
            "get", "pod", f"{name}-{attempt}", "-n", self.namespace, "-o", "json", check=False
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def lines(self, name: str) -> list[str]:
        path = self.events(name)
        if not path.exists():
            return []
        return [line.rsplit(" ", 1)[0] for line in path.read_text().splitlines()]

    def counts(self, name: str) -> Counter[str]:
        return Counter(self.lines(name))

    def items(self, name: str) -> list[int]:
        return [int(line.split()[1]) for line in self.lines(name) if line.startswith("item ")]

    def wait_items(self, name: str, count: int, timeout: float = JOB_TIMEOUT) -> None:
        wait_for(
            lambda: len(self.items(name)) >= count,
            timeout=timeout,
            what=f"{count} items of job {name}",
            interval=0.2,
            detail=lambda: self.describe(name),
        )

    def delete_all(self, timeout: float = 120) -> None:
        """While the operator still runs, so it can release the finalizers it put on pods."""
        self.kubectl.run(
            "delete",
            "cjob",
            "--all",
            "-n",
            self.namespace,
            "--wait=true",
            f"--timeout={int(timeout)}s",
            check=False,
            timeout=timeout + 30,
        )


def release_name() -> str:
    return f"cjop-{secrets.token_hex(3)}"


@contextmanager
def released(
    cluster: Cluster, hint: str, *, install: bool = True, **values: Any
) -> Iterator[tuple[Release, Jobs]]:
    """A release in a namespace of its own, watching a second namespace for jobs; everything
    (jobs, release, namespaces) is removed afterwards, the jobs first."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="continuable-helm-")))
        folder.chmod(0o777)
        ops = stack.enter_context(temporary_namespace(cluster.kubectl, f"{hint}-ops"))
        watched = stack.enter_context(temporary_namespace(cluster.kubectl, f"{hint}-jobs"))
        metrics_port, health_port = free_ports(2)
        release = Release(
            helm=Helm.pinned(cluster.kubeconfig),
            kubectl=cluster.kubectl,
            name=release_name(),
            namespace=ops,
            watch=[watched],
            metrics_port=metrics_port,
            health_port=health_port,
            extra=dict(values),
        )
        jobs = Jobs(cluster.kubectl, watched, folder, release)
        stack.callback(release.uninstall)
        stack.callback(jobs.delete_all)
        if install:
            release.install()
            release.wait_ready()
        yield release, jobs


@pytest.fixture(scope="module")
def helm_cluster(cluster: Cluster, process_node: str | None) -> Cluster:
    """The cluster with the CRDs and a node for the operator's and the jobs' pods."""
    if cluster.crd_error is not None:
        fail_with(f"the CRDs were not applied: {cluster.crd_error}")
    return cluster


@pytest.fixture(scope="module")
def shared_release(helm_cluster: Cluster) -> Iterator[tuple[Release, Jobs]]:
    """One release for the tests that only run jobs through it."""
    try:
        with released(helm_cluster, "helm-shared") as pair:
            yield pair
    except WaitTimeout as err:
        fail_with(str(err))
