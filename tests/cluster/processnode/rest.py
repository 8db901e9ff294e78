"""The agent's HTTP client for the apiserver: JSON in, JSON out, watches as event iterators.

Plain urllib3 rather than the `kubernetes` client: the agent works on raw dicts (status patches
are computed as dicts anyway), needs exact control of content types and timeouts, and must not
spend CPU turning every watch event into model objects when fifty pods are running.
The connection pool is thread-safe, so one client serves every thread of an agent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
import yaml

JSON = "application/json"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"

# Long enough for a slow apiserver under a 50-pod load, short enough that a dead one is noticed
# well within the node's 50 s grace.
REQUEST_TIMEOUT = 10.0


class ApiError(RuntimeError):
    """A non-2xx answer, or no answer at all (status 0)."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        reason = body
        with contextlib.suppress(ValueError, AttributeError):
            reason = json.loads(body).get("message", body)
        super().__init__(f"{method} {path}: {status or 'no answer'}: {reason}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class Credentials:
    """Where the client's TLS material lives on disk (Python's ssl loads keys from files only)."""

    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path


def credentials_from_kubeconfig(kubeconfig: Path, folder: Path) -> Credentials:
    """Write the current context's embedded certificates into `folder` (made private)."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)

    def material(data_key: str, file_key: str, name: str, source: Mapping[str, Any]) -> Path:
        if data_key in source:
            path = folder / name
            path.touch(mode=0o600, exist_ok=True)
            path.write_bytes(base64.b64decode(source[data_key]))
            return path
        if file_key in source:
            return Path(source[file_key])
        raise ValueError(
            f"{kubeconfig}: no {data_key} or {file_key}; the agent needs a client cert"
        )

    return Credentials(
        server=cluster["server"],
        ca_file=material("certificate-authority-data", "certificate-authority", "ca.crt", cluster),
        cert_file=material("client-certificate-data", "client-certificate", "client.crt", user),
        key_file=material("client-key-data", "client-key", "client.key", user),
    )


def path_of(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def pod_path(namespace: str, name: str, sub: str = "") -> str:
    path = path_of("api", "v1", "namespaces", namespace, "pods", name)
    return f"{path}/{sub}" if sub else path


class ApiClient:
    def __init__(self, credentials: Credentials, *, pool_size: int = 32) -> None:
        self.credentials = credentials
        self.server = credentials.server.rstrip("/")
        ctx = ssl.create_default_context(cafile=str(credentials.ca_file))
        ctx.load_cert_chain(str(credentials.cert_file), str(credentials.key_file))
        # block=False with a generous size: fifty pod workers may report at the same moment and
        # none should wait for a connection.
        self._pool = urllib3.PoolManager(ssl_context=ctx, maxsize=pool_size, block=False)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, folder: Path | None = None) -> ApiClient:
        folder = folder or Path(tempfile.mkdtemp(prefix="processnode-creds-"))
        return cls(credentials_from_kubeconfig(kubeconfig, folder))

    @property
    def ca_pem(self) -> bytes:
        return self.credentials.ca_file.read_bytes()

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.server}{path}{query}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float = REQUEST_TIMEOUT,
    ) -> dict[str, Any]:
        headers = {"Accept": JSON}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            resp = self._pool.request(
                method,
                self._url(path, params),
                body=data,
                headers=headers,
                timeout=urllib3.Timeout(connect=5.0, read=timeout),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(method, path, 0, str(err)) from err
        text = resp.data.decode(errors="replace")
        if resp.status >= 300:
            raise ApiError(method, path, resp.status, text)
        return json.loads(text) if text else {}

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> dict[str, Any]:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Any) -> dict[str, Any]:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: Any, content_type: str = STRATEGIC_MERGE) -> dict[str, Any]:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, body: Any = None) -> dict[str, Any]:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, params: Mapping[str, Any], *, timeout_seconds: int = 300) -> Watch:
        return Watch(self, path, dict(params), timeout_seconds)


class Watch:
    """One watch request; iterate it for events, close() it from any thread to end it."""

    def __init__(
        self, client: ApiClient, path: str, params: dict[str, Any], timeout_seconds: int
    ) -> None:
        params = {**params, "watch": "true", "timeoutSeconds": str(timeout_seconds)}
        params.setdefault("allowWatchBookmarks", "true")
        self._path = path
        try:
            self._resp = client._pool.request(
                "GET",
                client._url(path, params),
                headers={"Accept": JSON},
                preload_content=False,
                # The server ends the watch after timeoutSeconds; a read stalled much longer
                # than that means the connection is dead without anyone having said so.
                timeout=urllib3.Timeout(connect=5.0, read=timeout_seconds + 30.0),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as err:
            raise ApiError("WATCH", path, 0, str(err)) from err
        if self._resp.status != 200:
            body = self._resp.read().decode(errors="replace")
            self._resp.release_conn()
            raise ApiError("WATCH", path, self._resp.status, body)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        try:
            for chunk in self._resp.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            raise ApiError("WATCH", self._path, 0, f"stream broke: {err}") from err
        finally:
            self._resp.release_conn()

    def close(self) -> None:
        # shutdown() unblocks a read in progress on another thread; close() alone would not.
        # Already closed or never connected: nothing to unblock.
        with contextlib.suppress(Exception):
            self._resp.shutdown()
