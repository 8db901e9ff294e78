"""The service-account files of a pod, made as the kubelet's projected volume makes them.

The ServiceAccount admission plugin gives every pod a projected volume (a TokenRequest token,
`ca.crt` from the `kube-root-ca.crt` ConfigMap, `namespace` from the downward API) mounted at
SA_MOUNT_PATH. We write those files into a per-pod folder, and launching.py bind-mounts the
folder onto SA_MOUNT_PATH inside the process's own mount namespace, so the unmodified
`load_incluster_config()` finds them. The token is bound to the pod (the apiserver refuses it
once the pod is gone) and refreshed at 80 % of its life, as the kubelet's token manager does.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import clock
from .environment import ConfigError, field_value
from .rest import ApiClient, ApiError, path_of

SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# The kubelet refreshes when 80 % of the TTL has passed (token_manager.go requiresRefresh).
REFRESH_FRACTION = 0.8
# The ServiceAccount admission plugin's default (a sentinel the apiserver extends to a year).
DEFAULT_EXPIRATION_SECONDS = 3607


def sa_volume(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any] | None:
    """The projected volume this container mounts at SA_MOUNT_PATH, if any."""
    mounted = {
        m["name"]
        for m in container.get("volumeMounts", [])
        if m.get("mountPath", "").rstrip("/") == SA_MOUNT_PATH
    }
    for volume in pod.get("spec", {}).get("volumes", []):
        if volume.get("name") in mounted and "projected" in volume:
            return dict(volume)
    return None


def _write(folder: Path, relative: str, data: bytes, mode: int = 0o644) -> None:
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    # Replace atomically: a client reading the token mid-refresh must see old or new, never half.
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, target)


class PodCredentials:
    """The files of one pod's service-account volume and when its token needs refreshing."""

    def __init__(
        self, api: ApiClient, pod: Mapping[str, Any], volume: Mapping[str, Any], folder: Path
    ) -> None:
        self.api = api
        self.pod = pod
        self.volume = volume
        self.folder = folder
        # monotonic deadline of the next token refresh; None while no token is written
        self.refresh_at: float | None = None
        self.refreshes = 0

    def _token_sources(self) -> list[Mapping[str, Any]]:
        sources = self.volume["projected"].get("sources", [])
        return [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]

    def write_all(self) -> None:
        """Write every source of the projected volume; raises ConfigError when one is missing."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        meta = self.pod["metadata"]
        namespace = meta["namespace"]
        for source in self.volume["projected"].get("sources", []):
            if "configMap" in source or "secret" in source:
                kind = "configMap" if "configMap" in source else "secret"
                self._write_object(kind, source[kind], namespace)
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items", []):
                    if "fieldRef" in item:
                        value = field_value(self.pod, item["fieldRef"]["fieldPath"], "127.0.0.1")
                        _write(self.folder, item["path"], value.encode())
        self.refresh_tokens()

    def _write_object(self, kind: str, ref: Mapping[str, Any], namespace: str) -> None:
        resource = "configmaps" if kind == "configMap" else "secrets"
        name = ref.get("name", "")
        try:
            obj = self.api.get(path_of("api", "v1", "namespaces", namespace, resource, name))
        except ApiError as err:
            if err.not_found and ref.get("optional"):
                return
            # kube-root-ca.crt appears a moment after its namespace: the kubelet waits too.
            raise ConfigError(f'{kind} "{name}" not found' if err.not_found else str(err)) from err
        if kind == "secret":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        else:
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {item['key']} in {kind} {namespace}/{name}")
            _write(self.folder, item["path"], data[item["key"]])

    def refresh_tokens(self) -> None:
        """Request a fresh token for every token source; schedules the next refresh."""
        meta = self.pod["metadata"]
        spec = self.pod["spec"]
        account = spec.get("serviceAccountName") or "default"
        next_refresh: float | None = None
        for source in self._token_sources():
            seconds = int(source.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS)
            body: dict[str, Any] = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": seconds,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            }
            if source.get("audience"):
                body["spec"]["audiences"] = [source["audience"]]
            path = path_of(
                "api", "v1", "namespaces", meta["namespace"], "serviceaccounts", account, "token"
            )
            try:
                answer = self.api.post(path, body)
            except ApiError as err:
                raise ConfigError(f"requesting a token for {account}: {err}") from err
            _write(self.folder, source.get("path", "token"), answer["status"]["token"].encode())
            # Status says when the requested TTL ends, even when the apiserver extended the
            # token itself (the 3607 s sentinel): refresh on the requested TTL, as the kubelet.
            expires = clock.parse(answer["status"]["expirationTimestamp"])
            life = (expires - clock.now()).total_seconds()
            due = time.monotonic() + max(1.0, life - seconds * (1 - REFRESH_FRACTION))
            next_refresh = due if next_refresh is None else min(next_refresh, due)
        self.refresh_at = next_refresh
        self.refreshes += 1

    def due(self) -> bool:
        return self.refresh_at is not None and time.monotonic() >= self.refresh_at
