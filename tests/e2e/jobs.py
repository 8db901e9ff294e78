"""A ContinuableJob under test: create it, read its status, and watch what its pods did.

The job script (`tests/e2e/local/jobs/three_steps.py`) appends every side effect to an events
file on the host (pods of the process node are host processes), so a test can count exactly
which items ran in which attempt. Run through `tests/e2e/operator/jobs/per_attempt.py`, each
attempt writes a file of its own and ends it with its exit code, for the tests where two
attempts' processes run at once (a zombie on a lost node).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from continuable.names import pod_name
from tests.cluster.kubectl import Kubectl
from tests.cluster.waiting import wait_for

THREE_STEPS = "tests/e2e/local/jobs/three_steps.py"
PER_ATTEMPT = "tests/e2e/operator/jobs/per_attempt.py"
PYTHON = sys.executable


def job_manifest(
    name: str, namespace: str, command: list[str], env: dict[str, str], **spec: Any
) -> dict[str, Any]:
    template_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 10,
        "containers": [
            {
                "name": "job",
                "image": "python",
                "command": command,
                "env": [{"name": k, "value": v} for k, v in env.items()],
            }
        ],
    }
    template_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "continuable.dev/v1alpha1",
        "kind": "ContinuableJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"checkpoint": {"intervalSeconds": 1}, "template": {"spec": template_spec}, **spec},
    }


class JobUnderTest:
    def __init__(self, kubectl: Kubectl, namespace: str, name: str, folder: Path) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.name = name
        self.events = folder / f"{name}.events"

    def manifest(self, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
        env = {"EVENTS": str(self.events), **spec.pop("env", {})}
        return job_manifest(
            self.name, self.namespace, command or [PYTHON, THREE_STEPS], env, **spec
        )

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl.retrying("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def create(self, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
        manifest = self.manifest(command, **spec)
        self.apply(manifest)
        return copy.deepcopy(manifest)

    def get(self) -> dict[str, Any]:
        raw = self.kubectl("get", "cjob", self.name, "-n", self.namespace, "-o", "json")
        job: dict[str, Any] = json.loads(raw)
        return job

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.get().get("status") or {}
        return status

    def checkpoint(self) -> dict[str, Any]:
        checkpoint: dict[str, Any] = self.status().get("checkpoint") or {}
        return checkpoint

    def condition(self, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.status().get("conditions", []) if c["type"] == kind), None)

    def wait_phase(self, *phases: str, timeout: float = 90) -> dict[str, Any]:
        last: list[Any] = [None]

        def reached() -> dict[str, Any] | None:
            status = self.status()
            last[0] = {k: status.get(k) for k in ("phase", "attempt", "conditions")}
            return status if status.get("phase") in phases else None

        return wait_for(
            reached,
            timeout=timeout,
            what=f"job {self.name} in phase {phases}",
            detail=lambda: f"last: {last[0]}",
        )

    def pod(self, attempt: int) -> dict[str, Any] | None:
        result = self.kubectl.run(
            "get",
            "pod",
            pod_name(self.name, attempt),
            "-n",
            self.namespace,
            "-o",
            "json",
            check=False,
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def pods(self) -> list[dict[str, Any]]:
        raw = self.kubectl(
            "get",
            "pods",
            "-n",
            self.namespace,
            "-l",
            f"continuable.dev/job={self.name}",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(raw)["items"]
        return items

    def wait_pod(self, attempt: int, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            pod = self.pod(attempt)
            return pod if pod and pod.get("status", {}).get("phase") in phases else None

        return wait_for(reached, timeout=timeout, what=f"pod of attempt {attempt} in {phases}")

    def wait_gone(self, attempt: int, timeout: float = 60) -> None:
        wait_for(
            lambda: self.pod(attempt) is None,
            timeout=timeout,
            what=f"the pod of attempt {attempt} to be gone",
        )

    def delete_pod(self, attempt: int) -> None:
        self.kubectl(
            "delete", "pod", pod_name(self.name, attempt), "-n", self.namespace, "--wait=false"
        )

    def pod_log(self, attempt: int) -> str:
        """The container's output, as `kubectl logs` shows it ('' when it cannot)."""
        result = self.kubectl.run(
            "logs", pod_name(self.name, attempt), "-n", self.namespace, check=False
        )
        return result.stdout + result.stderr

    def lines(self) -> list[str]:
        if not self.events.exists():
            return []
        return [line.rsplit(" ", 1)[0] for line in self.events.read_text().splitlines()]

    def items(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines() if line.startswith("item ")]

    def wait_items(self, count: int, timeout: float = 60) -> None:
        wait_for(
            lambda: len(self.items()) >= count,
            timeout=timeout,
            what=f"{count} items processed",
            detail=lambda: f"{len(self.items())} so far",
        )

    def attempt_lines(self, attempt: int) -> list[str]:
        """What the process of one attempt did, under per_attempt.py (timestamps dropped)."""
        path = self.events.with_name(f"{self.events.name}.{attempt}")
        if not path.exists():
            return []
        return [line.rsplit(" ", 1)[0] for line in path.read_text().splitlines()]

    def attempt_items(self, attempt: int) -> list[int]:
        lines = self.attempt_lines(attempt)
        return [int(line.split()[1]) for line in lines if line.startswith("item ")]

    def attempt_exit(self, attempt: int) -> int | None:
        """The exit code the attempt's process ended with (None while it runs)."""
        ends = [line for line in self.attempt_lines(attempt) if line.startswith("exit ")]
        return int(ends[-1].split()[1]) if ends else None

    def restart(self, step: str) -> None:
        """`continuable restart <job> --from-step <step>`, as a person types it."""
        argv = [
            *(sys.executable, "-m", "continuable.cli", "--kubeconfig"),
            str(self.kubectl.kubeconfig),
            *("-n", self.namespace, "restart", self.name, "--from-step", step, "--yes"),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr

    def leftovers(self) -> list[str]:
        """Every object of this job still in the API: the job, its pods, results ConfigMap,
        ServiceAccount, Role and RoleBinding (kind/name, as `kubectl get -o name` prints)."""
        kinds = "continuablejobs,pods,configmaps,serviceaccounts,roles,rolebindings"
        names = self.kubectl("get", kinds, "-n", self.namespace, "-o", "name").split()
        return [
            n
            for n in names
            if n.split("/", 1)[1] == self.name or n.split("/", 1)[1].startswith(f"{self.name}-")
        ]

    def event_reasons(self, type_: str | None = None) -> list[str]:
        raw = self.kubectl(
            "get",
            "events",
            "-n",
            self.namespace,
            "--field-selector",
            f"involvedObject.name={self.name}",
            "-o",
            "json",
        )
        events = json.loads(raw)["items"]
        return [e["reason"] for e in events if type_ is None or e.get("type") == type_]

    def watch_pods(self) -> PodWatch:
        return PodWatch(self.kubectl, self.namespace, self.name)


def exit_code(pod: dict[str, Any]) -> int:
    state = pod["status"]["containerStatuses"][0]["state"]
    return int(state["terminated"]["exitCode"])


@dataclass(frozen=True)
class PodSighting:
    """One watch event of one of the job's pods."""

    type: str
    name: str
    uid: str
    phase: str | None
    deleting: bool
    node: str | None
    at: float

    @property
    def alive(self) -> bool:
        """Still there and not finished: it may be running (it counts as running)."""
        return self.type != "DELETED" and self.phase not in ("Succeeded", "Failed")


class PodWatch:
    """Every change to a job's pods, in the API server's order, from a watch started before the
    test acts, so a test can say what was true at every moment (e.g. never two pods at once).
    Use as a context manager; the thread stops with it."""

    # The watch is re-opened this often, which is also how soon stop() takes effect.
    WATCH_SECONDS = 5

    def __init__(self, kubectl: Kubectl, namespace: str, job: str) -> None:
        from kubernetes import client, config

        self._core = client.CoreV1Api(config.new_client_from_config(str(kubectl.kubeconfig)))
        self.namespace = namespace
        self.selector = f"continuable.dev/job={job}"
        self.sightings: list[PodSighting] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PodWatch:
        version = self._list()
        self._thread = threading.Thread(target=self._run, args=(version,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.WATCH_SECONDS + 5)

    def _list(self) -> str:
        listed = self._core.list_namespaced_pod(
            self.namespace, label_selector=self.selector, _request_timeout=10
        )
        for pod in self._core.api_client.sanitize_for_serialization(listed.items):
            self._see("ADDED", pod)
        return str(listed.metadata.resource_version)

    def _see(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        self.sightings.append(
            PodSighting(
                type=kind,
                name=str(meta.get("name")),
                uid=str(meta.get("uid")),
                phase=(pod.get("status") or {}).get("phase"),
                deleting=bool(meta.get("deletionTimestamp")),
                node=(pod.get("spec") or {}).get("nodeName"),
                at=time.monotonic(),
            )
        )

    def _run(self, version: str) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    self._core.list_namespaced_pod,
                    self.namespace,
                    label_selector=self.selector,
                    resource_version=version,
                    timeout_seconds=self.WATCH_SECONDS,
                    _request_timeout=self.WATCH_SECONDS + 5,
                    deserialize=False,
                )
                for event in stream:
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._see(str(event["type"]), obj)
            except Exception as err:  # any end of the watch but stop(): a gap is possible
                # A gap could hide what a test asserts on: recorded, so the test can say so.
                self.errors.append(f"{type(err).__name__}: {err}")
                self._stop.wait(0.5)
                try:
                    version = self._list()
                except Exception as again:
                    self.errors.append(f"relisting: {again}")

    def nodes(self, name: str) -> list[str]:
        return sorted({s.node for s in self.sightings if s.name == name and s.node})

    def overlaps(self) -> list[str]:
        """Each moment two or more of the job's pods were alive at once (none is the rule)."""
        alive: dict[str, str] = {}
        found = []
        for sighting in self.sightings:
            if sighting.alive:
                alive[sighting.uid] = sighting.name
            else:
                alive.pop(sighting.uid, None)
            if len(alive) > 1:
                found.append(f"{sorted(alive.values())} after {sighting.type} of {sighting.name}")
        return found
