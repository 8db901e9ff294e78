"""The job pods' processes for `make bench-scale`, played in one process: the checkpoint load is
the SDK's own.

kwok runs the pods (they exist and are Running, nothing more). For each job pod kwok runs, a
thread runs a real `continuable.Job` with the pod's environment (job, attempt, UID): its writer
saves the cursor at the job's checkpoint interval through the SDK's Kubernetes backend and its
in-cluster client, authenticated as the job's own service account (a token requested for it),
so every write has the shape, the cadence, the fence and the credentials of a pod's. When the
pod is being deleted (an eviction), the fleet interrupts the job as SIGTERM would; once the job
has saved its last checkpoint, the fleet reports the container's exit on the pod's status, as a
kubelet does, and the operator takes it from there.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, watch

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
    ) -> None:
        self.core = client.CoreV1Api(api)
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
