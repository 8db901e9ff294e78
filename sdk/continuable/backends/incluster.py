"""`JobApi` in a pod, over the standard library: HTTPS to the API server with the pod's
service-account token, as a Kubernetes client's in-cluster config does.

The token file is read again for every request: the kubelet rotates it (a projected token lives
about an hour), and a read costs microseconds. Connections are kept alive and reused; a reused
one the server has closed meanwhile is replaced and the request sent once more (what urllib3
does too), so an idle pod's next write does not fail for it. Calls may come from two threads
(the checkpoint writer and the job's own), so each takes an idle connection or opens one.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from continuable.names import GROUP, PLURAL, VERSION, results_config_map

from .jobapi import (
    CONNECT_TIMEOUT_SECONDS,
    JSON_PATCH,
    READ_TIMEOUT_SECONDS,
    ApiFailure,
    retry_after,
    status_message,
)

# Idle connections kept: one per thread that calls.
IDLE_CONNECTIONS: Final = 2
# What a server that closed a kept-alive connection makes the next request on it raise.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class InClusterJobApi:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        token_file: Path,
        ca_file: Path,
        job: str,
        namespace: str,
    ) -> None:
        self._host = host
        self._port = port
        self._token_file = token_file
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._idle: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()
        ns = quote(namespace, safe="")
        self._job_path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{quote(job, safe='')}"
        self._core_path = f"/api/v1/namespaces/{ns}"
        self._results_path = f"{self._core_path}/configmaps/{quote(results_config_map(job))}"

    @classmethod
    def from_environment(
        cls, job: str, namespace: str, service_account_dir: Path
    ) -> InClusterJobApi:
        return cls(
            host=os.environ["KUBERNETES_SERVICE_HOST"],
            port=int(os.environ["KUBERNETES_SERVICE_PORT"]),
            token_file=service_account_dir / "token",
            ca_file=service_account_dir / "ca.crt",
            job=job,
            namespace=namespace,
        )

    def get_job(self) -> dict[str, Any]:
        return self._request("GET", self._job_path)

    def patch_status(self, ops: list[dict[str, Any]]) -> None:
        self._request("PATCH", f"{self._job_path}/status", ops)

    def get_results(self) -> dict[str, str]:
        config_map = self._request("GET", self._results_path)
        return {str(k): str(v) for k, v in (config_map.get("data") or {}).items()}

    def patch_results(self, ops: list[dict[str, Any]]) -> None:
        self._request("PATCH", self._results_path, ops)

    def get_pod(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"{self._core_path}/pods/{quote(name, safe='')}")

    def _request(self, method: str, path: str, patch: Any = None) -> dict[str, Any]:
        body = json.dumps(patch).encode() if patch is not None else None
        headers = {"Accept": "application/json", "User-Agent": "continuable-sdk"}
        if body is not None:
            headers["Content-Type"] = JSON_PATCH
        try:
            headers["Authorization"] = f"Bearer {self._token_file.read_text().strip()}"
        except OSError as err:
            raise ApiFailure(0, f"reading the service-account token: {err}") from err
        connection, reused = self._connection()
        try:
            try:
                status, reason, header, data = _exchange(connection, method, path, body, headers)
            except _STALE:
                if not reused:
                    raise
                connection.close()
                connection = self._new_connection()
                status, reason, header, data = _exchange(connection, method, path, body, headers)
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            raise ApiFailure(0, f"no answer from the API server: {err!r}") from err
        self._release(connection)
        if not 200 <= status < 300:
            raise ApiFailure(status, status_message(data) or reason, retry_after(header))
        try:
            answer = json.loads(data) if data else {}
        except ValueError as err:
            raise ApiFailure(status, f"an answer that is not JSON: {data[:200]!r}") from err
        if not isinstance(answer, dict):
            raise ApiFailure(status, f"an answer that is not an object: {data[:200]!r}")
        return answer

    def _connection(self) -> tuple[http.client.HTTPSConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new_connection(), False

    def _new_connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self._host, self._port, timeout=CONNECT_TIMEOUT_SECONDS, context=self._context
        )

    def _release(self, connection: http.client.HTTPSConnection) -> None:
        with self._lock:
            if len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()


def _exchange(
    connection: http.client.HTTPSConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, str, str | None, bytes]:
    """One request and its whole answer: status, reason, Retry-After and body."""
    if connection.sock is None:
        connection.connect()
    assert connection.sock is not None
    # Connected within the connect timeout; the answer may take longer.
    connection.sock.settimeout(READ_TIMEOUT_SECONDS)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    return response.status, response.reason, response.getheader("Retry-After"), data
