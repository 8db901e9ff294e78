"""Pod status and events, in the shapes a kubelet writes them (KUBELET.md section 2).

`pod_status` turns what the node knows (phase, one ContainerRecord per container) into the
status fields the kubelet owns; `StatusReporter` sends them as a strategic-merge PATCH of
`pods/<name>/status` carrying `metadata.uid`. Only the conditions the kubelet owns are ever
sent, and conditions merge by type, so DisruptionTarget or readiness-gate conditions written by
others survive every patch.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import clock
from .rest import ApiClient, ApiError, path_of, pod_path

log = logging.getLogger(__name__)

OWNED_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
TERMINAL = ("Succeeded", "Failed")


@dataclass
class ContainerRecord:
    """What the node knows about one container, in the terms of a ContainerStatus."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    container_id: str = ""
    restart_count: int = 0
    last_state: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        # No readiness probes here: a running container is ready, as without a probe.
        return self.state == "running"

    def to_api(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            terminated: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason}
            if self.message:
                terminated["message"] = self.message
            if self.started_at:
                terminated["startedAt"] = self.started_at
            if self.finished_at:
                terminated["finishedAt"] = self.finished_at
            if self.container_id:
                terminated["containerID"] = self.container_id
            state = {"terminated": terminated}
        else:
            waiting: dict[str, Any] = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status

    def terminated_state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.to_api()["state"]
        return state


def _condition(
    kind: str,
    status: bool,
    previous: Mapping[str, Mapping[str, Any]],
    now: str,
    reason: str = "",
    message: str = "",
    generation: int | None = None,
) -> dict[str, Any]:
    value = "True" if status else "False"
    old = previous.get(kind)
    unchanged = old is not None and old.get("status") == value and old.get("lastTransitionTime")
    cond: dict[str, Any] = {
        "type": kind,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": old["lastTransitionTime"] if unchanged and old else now,
        # Explicit nulls: a strategic merge keeps fields left out, and a stale reason such as
        # ContainersNotReady must go when Ready turns True.
        "reason": reason or None,
        "message": message or None,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def _readiness_gates(pod: Mapping[str, Any]) -> str:
    """Why the pod's readiness gates keep it unready ("" when they do not)."""
    found = {c.get("type"): c.get("status") for c in pod.get("status", {}).get("conditions", [])}
    for gate in pod.get("spec", {}).get("readinessGates", []):
        kind = gate.get("conditionType")
        if kind not in found:
            return f'corresponding condition of pod readiness gate "{kind}" does not exist.'
        if found[kind] != "True":
            return f'the status of pod readiness gate "{kind}" is not "True", but {found[kind]}'
    return ""


def pod_status(
    pod: Mapping[str, Any],
    *,
    phase: str,
    containers: Sequence[ContainerRecord],
    host_ip: str,
    start_time: str,
    sandbox_ready: bool,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    """The status fields the kubelet owns, for a pod without init containers."""
    now = clock.rfc3339()
    previous = {c["type"]: c for c in pod.get("status", {}).get("conditions", []) if "type" in c}
    generation = pod.get("metadata", {}).get("generation")
    unready = [c.name for c in containers if not c.ready]
    containers_ready = not unready and phase not in TERMINAL
    if phase == "Succeeded":
        not_ready_reason, not_ready_message = "PodCompleted", ""
    else:
        names = " ".join(unready)
        not_ready_reason, not_ready_message = (
            "ContainersNotReady",
            f"containers with unready status: [{names}]",
        )
    gate_message = _readiness_gates(pod) if containers_ready else ""
    ready = containers_ready and not gate_message

    def cond(kind: str, ok: bool, why: str = "", text: str = "") -> dict[str, Any]:
        return _condition(
            kind, ok, previous, now, "" if ok else why, "" if ok else text, generation
        )

    conditions = [
        cond("PodReadyToStartContainers", sandbox_ready),
        cond("Initialized", True),
        cond(
            "Ready",
            ready,
            "ReadinessGatesNotReady" if gate_message else not_ready_reason,
            gate_message or not_ready_message,
        ),
        cond("ContainersReady", containers_ready, not_ready_reason, not_ready_message),
        cond("PodScheduled", True),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [c.to_api() for c in containers],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "reason": reason or None,
        "message": message or None,
    }
    if generation is not None:
        status["observedGeneration"] = generation
    if phase != "Pending" or sandbox_ready:
        status["podIP"] = host_ip
        status["podIPs"] = [{"ip": host_ip}]
    return status


def fingerprint(status: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must match between the API copy and our desired status; the rest (times, fields a
    feature gate may drop) is not worth a patch of its own."""
    conditions = tuple(
        sorted(
            (c.get("type"), c.get("status"))
            for c in status.get("conditions", [])
            if c.get("type") in (*OWNED_CONDITIONS, "PodScheduled")
        )
    )
    containers = tuple(
        (
            c.get("name"),
            tuple(sorted(c.get("state", {}))),
            c.get("state", {}).get("terminated", {}).get("exitCode"),
            c.get("ready"),
            c.get("restartCount"),
        )
        for c in status.get("containerStatuses", [])
    )
    return (status.get("phase"), conditions, containers, status.get("podIP"))


class StatusReporter:
    """Sends a pod's status when it changed, or when the API copy drifted from it."""

    def __init__(self, api: ApiClient, namespace: str, name: str, uid: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.patches = 0
        self._sent: dict[str, Any] | None = None

    def needs_sync(self, desired: Mapping[str, Any], api_status: Mapping[str, Any]) -> bool:
        return self._sent != desired or fingerprint(api_status) != fingerprint(desired)

    def send(self, desired: dict[str, Any]) -> dict[str, Any]:
        """PATCH the status; raises ApiError (404 once the pod is gone, 409 if it was replaced)."""
        body = {"metadata": {"uid": self.uid}, "status": desired}
        answer = self.api.patch(pod_path(self.namespace, self.name, "status"), body)
        self._sent = desired
        self.patches += 1
        return answer

    def delete(self) -> None:
        """The kubelet's final DELETE: grace 0, and only the pod we ran (UID precondition)."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.api.delete(pod_path(self.namespace, self.name), body)
        except ApiError as err:
            if not (err.not_found or err.conflict):
                raise


class EventRecorder:
    """core/v1 Events with the kubelet as source, as `kubectl describe pod` shows them."""

    def __init__(self, api: ApiClient, node_name: str) -> None:
        self.api = api
        self.node_name = node_name

    def pod_event(
        self,
        pod: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        container: str = "",
        kind: str = "Normal",
    ) -> None:
        meta = pod["metadata"]
        now = clock.rfc3339()
        involved: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.post(path_of("api", "v1", "namespaces", meta["namespace"], "events"), event)
        except ApiError as err:
            # Events are best effort for a kubelet too; a lost one must not stop the pod.
            log.info(
                "event %s for %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], err
            )
