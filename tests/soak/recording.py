"""Records the judges read, written by the soak and never by the operator:

- `pods.jsonl`: every change of every job pod seen by a watch (list + watch, relisted after an
  API server restart or a 410; a pod that vanished while the watch was down is written as
  DELETED at the relist, a pod found by a relist as SYNC):
  `{"t","type","name","uid","job","attempt","job_uid","phase","node","deleting","finalizers"}`;
- `nodes.jsonl`: `{"t","node","ready","status"}` whenever a node's Ready condition changes
  (`ready` is status == "True"; `status` is True, False or Unknown);
- at the end `jobs.json` (see jobs.py), `objects.json` (what is left in the namespace),
  `metrics.txt` (the leading operator's /metrics; `metrics-<replica>.txt` for each replica).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.watch.watch import iter_resp_lines

from continuable.names import ATTEMPT_LABEL, JOB_LABEL

from .jobs import owner_uid
from .kube import Api, node_ready

log = logging.getLogger("soak")
WATCH_SECONDS = 60


class JsonLines:
    """An append-only JSON-lines file, written from any thread, flushed per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, sort_keys=False) + "\n"
        with self._lock:
            if self._file.closed:  # a late event from a watch being stopped
                return
            self._file.write(line)
            self._file.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _Watcher:
    """List, then watch from the list's resourceVersion; on any error list again. Calls
    `on_event(type, object)`; objects gone between two lists come as DELETED."""

    def __init__(
        self,
        name: str,
        list_fn: Callable[..., Any],
        on_event: Callable[[str, dict[str, Any]], None],
        params: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.list_fn = list_fn
        self.on_event = on_event
        self.params = params or {}
        self.known: dict[str, dict[str, Any]] = {}
        self.relists = 0
        self._stop = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._loop, name=f"watch-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                # shutdown() wakes a read blocked on the socket; close() alone would not.
                response.shutdown()
                response.close()
            except Exception:
                log.debug("closing the %s watch", self.name, exc_info=True)
        self._thread.join(5)

    def _request(self, query: dict[str, Any], timeout: tuple[float, float]) -> Any:
        """The raw (urllib3) response, streamed for a watch."""
        return self.list_fn(**query, _preload_content=False, _request_timeout=timeout)

    def _loop(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                version = self._list()
                delay = 0.5
                while not self._stop.is_set():
                    version = self._watch(version)
            except Exception as err:
                if self._stop.is_set():
                    return
                log.debug("%s watch: %s; listing again", self.name, err)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _list(self) -> str:
        answer = self._request(dict(self.params), (5.0, 30.0))
        data = json.loads(answer.data)
        self.relists += 1
        seen = {}
        for item in data.get("items", []):
            seen[item["metadata"]["uid"]] = item
            self.on_event("SYNC", item)
        for uid, item in list(self.known.items()):
            if uid not in seen:
                self.on_event("DELETED", item)
        self.known = seen
        return str(data["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        query = {
            **self.params,
            "watch": True,
            "resource_version": version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
        }
        response = self._request(query, (5.0, WATCH_SECONDS + 15.0))
        self._response = response
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    break
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind == "BOOKMARK":
                    continue
                uid = obj["metadata"]["uid"]
                if kind == "DELETED":
                    self.known.pop(uid, None)
                else:
                    self.known[uid] = obj
                self.on_event(str(kind), obj)
        finally:
            self._response = None
            response.release_conn()
        return version


class Recorders:
    """The pod and node watches, writing pods.jsonl and nodes.jsonl."""

    def __init__(self, api: Api, namespace: str, run_dir: Path) -> None:
        self.pods_out = JsonLines(run_dir / "pods.jsonl")
        self.nodes_out = JsonLines(run_dir / "nodes.jsonl")
        self._ready: dict[str, str] = {}
        self.pods = _Watcher(
            "pods",
            functools.partial(api.core.list_namespaced_pod, namespace),
            self._pod,
            {"label_selector": JOB_LABEL},
        )
        self.nodes = _Watcher("nodes", api.core.list_node, self._node)

    def start(self) -> Recorders:
        self.pods.start()
        self.nodes.start()
        return self

    def stop(self) -> None:
        self.pods.stop()
        self.nodes.stop()
        self.pods_out.close()
        self.nodes_out.close()

    def _pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        try:
            attempt: int | None = int(labels.get(ATTEMPT_LABEL, ""))
        except ValueError:
            attempt = None
        self.pods_out.write(
            {
                "t": time.time(),
                "type": kind,
                "name": meta["name"],
                "uid": meta["uid"],
                "job": labels.get(JOB_LABEL),
                "attempt": attempt,
                "job_uid": owner_uid(pod),
                "phase": (pod.get("status") or {}).get("phase"),
                "node": (pod.get("spec") or {}).get("nodeName"),
                "deleting": bool(meta.get("deletionTimestamp")),
                "finalizers": list(meta.get("finalizers") or []),
            }
        )

    def _node(self, kind: str, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        status = "Gone" if kind == "DELETED" else node_ready(node)
        if self._ready.get(name) == status:
            return
        self._ready[name] = status
        self.nodes_out.write(
            {"t": time.time(), "node": name, "ready": status == "True", "status": status}
        )


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def leftovers(api: Api, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """What is in the namespace at the end (pods, results ConfigMaps, service accounts, RBAC),
    with what tells whether it should be: owners, finalizers, deletion."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(api.client)
    kinds: dict[str, Callable[..., Any]] = {
        "pods": api.core.list_namespaced_pod,
        "configmaps": api.core.list_namespaced_config_map,
        "serviceaccounts": api.core.list_namespaced_service_account,
        "roles": rbac.list_namespaced_role,
        "rolebindings": rbac.list_namespaced_role_binding,
    }
    found: dict[str, list[dict[str, Any]]] = {}
    for kind, list_fn in kinds.items():
        answer = list_fn(namespace, _preload_content=False, _request_timeout=(5.0, 30.0))
        found[kind] = [
            {
                "name": item["metadata"]["name"],
                "uid": item["metadata"]["uid"],
                "labels": item["metadata"].get("labels") or {},
                "ownerReferences": item["metadata"].get("ownerReferences") or [],
                "finalizers": item["metadata"].get("finalizers") or [],
                "deletionTimestamp": item["metadata"].get("deletionTimestamp"),
                "phase": (item.get("status") or {}).get("phase") if kind == "pods" else None,
            }
            for item in json.loads(answer.data).get("items", [])
        ]
    return found
