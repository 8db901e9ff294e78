"""The node agent: the kubelet's outer loop for one process node.

It registers the Node (registering.py), then lists and watches the pods bound to it (field
selector `spec.nodeName=<node>`, as the kubelet's apiserver source) and hands each pod to its
PodWorker (running.py). A broken watch (apiserver restart, 410 Gone) is followed by a fresh
list, which also reconciles: pods that vanished meanwhile are stopped, pods already bound when
the agent starts are adopted (and reported as lost if a previous agent had started them).
Given a serving certificate, it also runs the node's kubelet endpoint (serving.py), whose port
goes into the Node's `daemonEndpoints`, so `kubectl logs` reaches the pods' output.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .environment import ServiceEndpoint
from .registering import HOST_IP, NodeConfig, NodeRegistration
from .reporting import TERMINAL, EventRecorder, StatusReporter
from .rest import ApiClient, ApiError, path_of
from .running import REPO_ROOT, PodWorker, Runtime, kill_recorded
from .serving import KubeletServer, ServingCertificate

log = logging.getLogger(__name__)

# The server ends a watch after this; a fresh one resumes from the last resourceVersion.
WATCH_SECONDS = 240
MAX_BACKOFF = 5.0


class NodeAgent:
    def __init__(
        self,
        config: NodeConfig,
        api: ApiClient,
        *,
        state_dir: Path,
        cwd: Path = REPO_ROOT,
        path_prefix: Sequence[str] = (str(REPO_ROOT / ".venv" / "bin"),),
        extra_env: Mapping[str, str] | None = None,
        serving: ServingCertificate | None = None,
        kubelet_port: int = 0,
    ) -> None:
        """With `serving`, the kubelet endpoint listens on `kubelet_port` (0: a free one);
        without, nothing listens and the Node only advertises `kubelet_port`."""
        self.config = config
        self.api = api
        self.name = config.name
        url = urlparse(api.server)
        self.registration = NodeRegistration(api, config, kubelet_port=kubelet_port)
        self.kubelet: KubeletServer | None = None
        if serving is not None:
            self.kubelet = KubeletServer(
                config.name, api, serving, self.worker_for, port=kubelet_port
            )
        self.runtime = Runtime(
            node_name=config.name,
            api=api,
            events=EventRecorder(api, config.name),
            endpoint=ServiceEndpoint(url.hostname or HOST_IP, url.port or 443),
            allocatable=config.allocatable_resources,
            state_dir=state_dir,
            cwd=cwd,
            path_prefix=tuple(path_prefix),
            extra_env=dict(extra_env or {}),
        )
        self.workers: dict[str, PodWorker] = {}
        self._retired: list[PodWorker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._watch: Any = None
        self._thread: threading.Thread | None = None
        self.relists = 0
        self.watch_errors = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> NodeAgent:
        """Register the node and return once the pods already bound to it are adopted."""
        self.runtime.state_dir.mkdir(parents=True, exist_ok=True)
        if self.kubelet is not None:
            # Bound before registering, so the first Node status already carries the port.
            self.registration.status.kubelet_port = self.kubelet.start().port
        try:
            self.registration.register(timeout=timeout)
        except BaseException:
            if self.kubelet is not None:
                self.kubelet.stop()
            raise
        self.registration.start()
        self._thread = threading.Thread(target=self._watch_loop, name=f"agent-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        if not self._synced.wait(timeout):
            self.stop()
            raise TimeoutError(f"node {self.name}: the first pod list took over {timeout:.0f}s")
        return self

    def stop(self, *, terminate_pods: bool = True, timeout: float = 30.0) -> None:
        """Stop heartbeats and the watch. terminate_pods=False leaves the processes running, as
        a crashed kubelet would; the next agent on the same state_dir kills them."""
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()
        self.registration.stop()
        if self.kubelet is not None:
            # Ends followed logs too, so no reader keeps a stopped node's thread alive.
            self.kubelet.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            workers = [*self.workers.values(), *self._retired]
        for worker in workers:
            worker.stop(terminate=terminate_pods)
        deadline = time.monotonic() + timeout
        for worker in workers:
            if not worker.join(max(0.1, deadline - time.monotonic())):
                log.error("node %s: worker of %s did not stop", self.name, worker.key)

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def worker_for(self, namespace: str, name: str) -> PodWorker | None:
        with self._lock:
            for worker in [*self.workers.values(), *self._retired]:
                if worker.namespace == namespace and worker.name == name:
                    return worker
        return None

    # ------------------------------------------------------------------ watching

    def _pods_path(self) -> str:
        return path_of("api", "v1", "pods")

    def _selector(self) -> dict[str, str]:
        return {"fieldSelector": f"spec.nodeName={self.name}"}

    def _watch_loop(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                version = self._relist()
                delay = 0.2
                while not self._stop.is_set():
                    version = self._watch_once(version)
            except ApiError as err:
                if self._stop.is_set():
                    return
                self.watch_errors += 1
                log.info("node %s: watch ended (%s); listing again in %.1fs", self.name, err, delay)
            except Exception:
                log.exception("node %s: watch loop crashed; listing again", self.name)
            self._stop.wait(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    def _relist(self) -> str:
        answer = self.api.get(self._pods_path(), self._selector())
        self.relists += 1
        pods = answer.get("items", [])
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self._handle("SYNC", pod)
        with self._lock:
            vanished = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in vanished:
            self._handle("DELETED", worker.pod)
        if not self._synced.is_set():
            self._clean_stale_state(seen)
            self._synced.set()
        return str(answer["metadata"]["resourceVersion"])

    def _watch_once(self, version: str) -> str:
        params = {**self._selector(), "resourceVersion": version}
        watch = self.api.watch(self._pods_path(), params, timeout_seconds=WATCH_SECONDS)
        self._watch = watch
        if self._stop.is_set():
            watch.close()
        try:
            for event in watch:
                kind, obj = event.get("type"), event.get("object", {})
                if kind == "ERROR":
                    # 410 Gone: our resourceVersion is too old; anything else: start over too.
                    raise ApiError("WATCH", self._pods_path(), int(obj.get("code", 0)), str(obj))
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind != "BOOKMARK":
                    self._handle(str(kind), obj)
        finally:
            self._watch = None
        return version

    def _handle(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            self._retired = [w for w in self._retired if not w.done.is_set()]
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    del self.workers[uid]
                    self._retired.append(worker)
            elif worker is None and pod.get("status", {}).get("phase") not in TERMINAL:
                worker = PodWorker(self.runtime, pod)
                self.workers[uid] = worker
                worker.start()
                return
        if kind == "DELETED":
            if worker is not None:
                worker.removed()
            return
        if worker is not None:
            worker.update(pod)
            worker.delete_if_terminal()
        elif pod["metadata"].get("deletionTimestamp"):
            # A pod that finished before this agent knew it, now being deleted: the kubelet
            # still sends the final DELETE (with finalizers the object waits for them).
            meta = pod["metadata"]
            try:
                StatusReporter(self.api, meta["namespace"], meta["name"], uid).delete()
            except ApiError as err:
                log.warning("node %s: final delete of %s failed: %s", self.name, meta["name"], err)

    def _clean_stale_state(self, live: set[str]) -> None:
        """Pod folders of an earlier agent whose pods no worker took over: kill, then remove."""
        pods_dir = self.runtime.state_dir / "pods"
        if not pods_dir.is_dir():
            return
        with self._lock:
            owned = set(self.workers)
        for folder in pods_dir.iterdir():
            if folder.name in owned:
                continue
            killed = kill_recorded(folder)
            if killed:
                log.warning(
                    "node %s: killed %d leftover process(es) of pod uid %s (live: %s)",
                    self.name,
                    len(killed),
                    folder.name,
                    folder.name in live,
                )
            shutil.rmtree(folder, ignore_errors=True)
