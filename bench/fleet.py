"""The job pods' processes for `make bench-scale`, played by a few processes (`Fleets`): the
checkpoint load is the SDK's own.

kwok runs the pods (they exist and are Running, nothing more). For each job pod kwok runs, a
thread runs a real `continuable.Job` with the pod's environment (job, attempt, UID): its writer
saves the cursor at the job's checkpoint interval through the SDK's Kubernetes backend and its
in-cluster client, authenticated as the job's own service account (a token requested for it),
so every write has the shape, the cadence, the fence and the credentials of a pod's. When the
pod is being deleted (an eviction), the fleet interrupts the job as SIGTERM would; once the job
has saved its last checkpoint, the fleet reports the container's exit on the pod's status, as a
kubelet does, and the operator takes it from there.

Each of `Fleets`' processes plays the jobs whose name hashes to it (a job's every attempt in the
same one). In one process, a thousand jobs' two thousand threads spent the cores on taking the
GIL from each other (92% of the CPU in the kernel, measured), which starved the API server.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

import continuable
from continuable.backends.incluster import InClusterJobApi
from continuable.backends.kubernetes import KubernetesBackend
from continuable.names import (
    ATTEMPT_LABEL,
    ENV_JOB_UID,
    JOB_LABEL,
    checkpoint_service_account,
)
from tests.cluster.processes import StartsAndStops

# How long one item of a job's loop takes: an interrupted job stops within one item.
ITEM_SECONDS = 1.0
TOKEN_SECONDS = 3600


class Fleet(StartsAndStops):
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        folder: Path,
        *,
        host: str,
        port: int,
        ca_file: Path,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        """`shard` (index, count): play only the jobs whose name hashes to `index`."""
        self.core = client.CoreV1Api(api)
        self.shard = shard
        self.namespace = namespace
        self.folder = folder
        self.host, self.port, self.ca_file = host, port, ca_file
        self.jobs: dict[str, continuable.Job] = {}  # by pod name, while its process runs
        self.errors: list[str] = []
        self.exits = 0
        self._tokens: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        folder.mkdir(parents=True, exist_ok=True)
        # The SDK logs a line per step event on stderr; a thousand jobs' go to a file.
        handler = logging.FileHandler(folder / "fleet.log")
        logger = logging.getLogger("continuable")
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._watch, name="fleet-watch", daemon=True)

    def start(self) -> Fleet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            running = list(self.jobs.values())
        for job in running:
            job.interrupt("the benchmark ends")

    def running(self) -> int:
        with self._lock:
            return len(self.jobs)

    def names(self) -> list[str]:
        """The pods whose process runs."""
        with self._lock:
            return list(self.jobs)

    # The pods.

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=JOB_LABEL,
                    timeout_seconds=60,
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    self._seen(event["object"])
            except Exception as err:  # the API server busy: watch again
                self.errors.append(f"watch: {err}")
                time.sleep(1)

    def _seen(self, pod: client.V1Pod) -> None:
        index, count = self.shard
        if zlib.crc32(pod.metadata.labels[JOB_LABEL].encode()) % count != index:
            return
        name, deleting = pod.metadata.name, pod.metadata.deletion_timestamp is not None
        with self._lock:
            job = self.jobs.get(name)
            start = job is None and not deleting and pod.status.phase == "Running"
            if start:
                job = self.jobs[name] = self._job(pod)
        if start:
            threading.Thread(target=self._run, args=(pod,), name=f"pod-{name}", daemon=True).start()
        elif deleting and job is not None:
            job.interrupt("the pod is being deleted")  # SIGTERM's way in

    # One pod's process.

    def _job(self, pod: client.V1Pod) -> continuable.Job:
        """The pod's job, with the backend its environment makes (as `from_environment` does
        in a pod), authenticated as the job's service account."""
        job_name = pod.metadata.labels[JOB_LABEL]
        env = {e.name: e.value for e in pod.spec.containers[0].env or []}
        api = InClusterJobApi(
            host=self.host,
            port=self.port,
            token_file=self._token_path(job_name),
            ca_file=self.ca_file,
            job=job_name,
            namespace=self.namespace,
        )
        backend = KubernetesBackend(
            api,
            job=job_name,
            namespace=self.namespace,
            attempt=int(pod.metadata.labels[ATTEMPT_LABEL]),
            uid=env[ENV_JOB_UID],
        )
        return continuable.Job(backend=backend, handle_signals=False, exit_process=False)

    def _run(self, pod: client.V1Pod) -> None:
        name = pod.metadata.name
        with self._lock:
            job = self.jobs[name]
        try:
            self._request_token(pod.metadata.labels[JOB_LABEL])
            with job:

                @job.step
                def work(step: continuable.Step) -> None:
                    for _ in step.range(10**9):
                        time.sleep(ITEM_SECONDS)

            exit_code = job.outcome.exit_code if job.outcome else 1
        except Exception as err:
            self.errors.append(f"{name}: {type(err).__name__}: {err}")
            exit_code = 1
        finally:
            with self._lock:
                self.jobs.pop(name, None)
        self._report_exit(pod, exit_code)

    def _token_path(self, job_name: str) -> Path:
        return self.folder / f"{job_name}.token"

    def _request_token(self, job_name: str) -> None:
        """A token of the job's own service account (made by the operator), once per job (the
        SDK's client reads the file at each request)."""
        with self._lock:
            if job_name in self._tokens:
                return
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
        )
        answer = self.core.create_namespaced_service_account_token(
            checkpoint_service_account(job_name), self.namespace, request
        )
        path = self._token_path(job_name)
        path.write_text(answer.status.token)
        with self._lock:
            self._tokens[job_name] = path

    def _report_exit(self, pod: client.V1Pod, exit_code: int) -> None:
        """The container's exit on the pod's status, as a kubelet reports it."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        container = pod.spec.containers[0]
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": now,
            "finishedAt": now,
        }
        body = {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": container.name,
                        "image": container.image,
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": terminated},
                    }
                ],
            }
        }
        try:
            self.core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, body)
            self.exits += 1
        except Exception as err:
            self.errors.append(f"{pod.metadata.name} exit: {err}")


@dataclass(frozen=True)
class Where:
    """What a fleet's process needs to reach the API server (sent to it: plain values)."""

    kubeconfig: Path
    agent: str
    namespace: str
    folder: Path
    host: str
    port: int
    ca_file: Path


class Fleets(StartsAndStops):
    """The fleet over `processes` processes, asked over a pipe each."""

    def __init__(self, where: Where, processes: int) -> None:
        self.where = where
        self.count = processes
        self._workers: list[tuple[Any, Connection]] = []
        self._lock = threading.Lock()
        self._errors_at_stop: list[str] = []

    def start(self) -> Fleets:
        spawning = multiprocessing.get_context("spawn")  # no fork of a process with threads
        for index in range(self.count):
            mine, theirs = spawning.Pipe()
            process = spawning.Process(
                target=_play, args=(self.where, (index, self.count), theirs), daemon=True
            )
            process.start()
            self._workers.append((process, mine))
        return self

    def _ask(self, what: str) -> list[Any]:
        with self._lock:
            for _, pipe in self._workers:
                pipe.send(what)
            return [pipe.recv() for _, pipe in self._workers]

    def running(self) -> int:
        return sum(self._ask("running"))

    def names(self) -> list[str]:
        return [name for names in self._ask("names") for name in names]

    @property
    def errors(self) -> list[str]:
        """The processes' errors (once stopped: those they had when told to stop)."""
        if not self._workers:
            return list(self._errors_at_stop)
        return [error for errors in self._ask("errors") for error in errors]

    @property
    def exits(self) -> int:
        return sum(self._ask("exits"))

    def stop(self) -> None:
        if not self._workers:
            return
        self._errors_at_stop = self.errors
        self._ask("stop")
        for process, _ in self._workers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        self._workers.clear()


def _play(where: Where, shard: tuple[int, int], pipe: Connection) -> None:
    """One fleet process: plays its shard and answers the parent until told to stop (or the
    parent is gone: the pipe ends)."""
    api = config.new_client_from_config(str(where.kubeconfig))
    api.user_agent = where.agent
    fleet = Fleet(
        api,
        where.namespace,
        where.folder / f"shard-{shard[0]}",
        host=where.host,
        port=where.port,
        ca_file=where.ca_file,
        shard=shard,
    )
    answers = {
        "running": fleet.running,
        "names": fleet.names,
        "errors": lambda: list(fleet.errors),
        "exits": lambda: fleet.exits,
    }
    with fleet:
        while True:
            try:
                what = pipe.recv()
            except EOFError:
                return
            if what == "stop":
                break
            pipe.send(answers[what]())
    pipe.send(None)
