"""When each pod of a namespace was first seen created, Running and terminal, from a watch."""

from __future__ import annotations

import threading
import time

from kubernetes import client, watch


class PodClock:
    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.running: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.created: dict[str, float] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(core, namespace), daemon=True)
        self._thread.start()

    def _watch(self, core: client.CoreV1Api, namespace: str) -> None:
        while not self._stop.is_set():
            for event in watch.Watch().stream(
                core.list_namespaced_pod, namespace, timeout_seconds=5
            ):
                pod = event["object"]
                name, phase, now = pod.metadata.name, pod.status.phase, time.monotonic()
                self.created.setdefault(name, now)
                self.labels.setdefault(name, dict(pod.metadata.labels or {}))
                if phase == "Running":
                    self.running.setdefault(name, now)
                if phase in ("Succeeded", "Failed"):
                    self.ended.setdefault(name, now)

    def pods(self, label: str, value: str) -> list[str]:
        """The pods seen with `label=value`, in the order they were created."""
        named = [n for n, labels in list(self.labels.items()) if labels.get(label) == value]
        return sorted(named, key=lambda n: self.created[n])

    def stop(self) -> None:
        self._stop.set()
