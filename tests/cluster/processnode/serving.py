"""The node's kubelet endpoint: HTTPS on loopback, serving `/containerLogs` to the apiserver.

The apiserver proxies `kubectl logs` to `https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.
Port>/containerLogs/<ns>/<pod>/<container>`. As a kubelet's port 10250 this one requires a
client certificate signed by the cluster CA (the apiserver's `--kubelet-client-certificate`),
and then asks the apiserver whether that identity may `get nodes/proxy` on this node (a
SubjectAccessReview, as the kubelet's webhook authorizer; answers cached as the kubelet does).
Its serving certificate comes from the cluster CA, for 127.0.0.1, so an apiserver started with
`--kubelet-certificate-authority` verifies it. Everything else answers 404.
"""

from __future__ import annotations

import contextlib
import logging
import select
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .logs import LogOptions, LogRequestError, check_since, choose_run, stream
from .rest import ApiClient, ApiError, path_of
from .running import PodWorker

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# A reader that stalls this long (handshake, request, or a write) is dropped.
SOCKET_TIMEOUT = 30.0
# The kubelet's webhook authorizer cache: allowed answers 5 min, denied ones 30 s.
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0


@dataclass(frozen=True)
class ServingCertificate:
    """The node's serving certificate and key (files: Python's ssl loads keys from files)."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]


def identity_of(peer: dict[str, Any]) -> Identity:
    """User from CN and groups from O, as the apiserver's (and kubelet's) x509 authenticator."""
    user, groups = "", []
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return Identity(user, (*groups, "system:authenticated"))


class Authorizer:
    """`get nodes/<node>/proxy` through a SubjectAccessReview, with the kubelet's cache times."""

    def __init__(self, api: ApiClient, node: str) -> None:
        self.api = api
        self.node = node
        self._cache: dict[Identity, tuple[bool, str, float]] = {}
        self._lock = threading.Lock()

    def check(self, who: Identity, verb: str = "get", subresource: str = "proxy") -> str | None:
        """None when allowed, else why not; raises ApiError when the apiserver cannot answer."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(who)
        if cached is not None and cached[2] > now:
            return None if cached[0] else cached[1]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": who.user,
                "groups": list(who.groups),
                "resourceAttributes": {
                    "verb": verb,
                    "resource": "nodes",
                    "subresource": subresource,
                    "name": self.node,
                },
            },
        }
        status = self.api.post(
            path_of("apis", "authorization.k8s.io", "v1", "subjectaccessreviews"), review
        ).get("status", {})
        allowed = bool(status.get("allowed"))
        # The kubelet's wording for a denial (server.go, InstallAuthFilter).
        reason = (
            f"Forbidden (user={who.user}, verb={verb}, resource=nodes, subresource={subresource})"
        )
        with self._lock:
            self._cache[who] = (allowed, reason, now + (ALLOWED_TTL if allowed else DENIED_TTL))
        return None if allowed else reason


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The kubelet endpoint is ours alone: no SO_REUSEADDR sharing with a stale listener.
    allow_reuse_address = False

    def __init__(self, endpoint: KubeletServer, port: int) -> None:
        self.endpoint = endpoint
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("node %s: kubelet endpoint request failed", self.endpoint.node, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    request: ssl.SSLSocket
    # HTTP/1.0: the body ends when the connection closes, which suits a followed log.
    protocol_version = "HTTP/1.0"
    timeout = SOCKET_TIMEOUT

    def setup(self) -> None:
        super().setup()
        # The handshake runs here, on the request's own thread, so a slow or hostile client
        # cannot hold up the accept loop.
        self.request.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("node %s: %s", self.server.endpoint.node, format % args)

    def _answer(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        endpoint = self.server.endpoint
        peer = self.request.getpeercert()
        if not peer:  # cannot happen with CERT_REQUIRED; stay safe if that ever changes
            self._answer(401, "Unauthorized")
            return
        try:
            denied = endpoint.authorizer.check(identity_of(dict(peer)))
        except ApiError as err:
            self._answer(500, f"Authorization error: {err}")
            return
        if denied is not None:
            self._answer(403, denied)
            return
        url = urlsplit(self.path)
        parts = url.path.split("/")
        if len(parts) < 2 or parts[1] != "containerLogs":
            self._answer(404, "404 page not found")
            return
        segments = [unquote(p) for p in parts[2:]]
        if len(segments) != 3:
            self._answer(404, "404 page not found")
            return
        namespace, pod, container = segments
        try:
            endpoint.container_logs(namespace, pod, container, parse_qs(url.query), self)
        except LogRequestError as err:
            self._answer(err.status, err.message)

    # ------------------------------------------------------------------ the log sink

    def write(self, data: bytes) -> None:
        self.wfile.write(data)

    def gone(self) -> bool:
        """The apiserver sends nothing after its request: readable means closed (or broken)."""
        sock = self.request
        if not select.select([sock], [], [], 0)[0]:
            return False
        try:
            sock.setblocking(False)
            sock.recv(1)
        except ssl.SSLWantReadError:
            return False  # a TLS record that was no data (e.g. a key update)
        except OSError:
            return True
        finally:
            sock.settimeout(self.timeout)
        return True


class KubeletServer:
    """One node's endpoint; `port` is known once start() has bound it."""

    def __init__(
        self,
        node: str,
        api: ApiClient,
        certificate: ServingCertificate,
        worker_for: Callable[[str, str], PodWorker | None],
        *,
        port: int = 0,
    ) -> None:
        self.node = node
        self.worker_for = worker_for
        self.authorizer = Authorizer(api, node)
        self.requested_port = port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(str(certificate.cert_file), str(certificate.key_file))
        # Only clients with a certificate from the cluster CA get as far as HTTP.
        self.context.load_verify_locations(cafile=str(api.credentials.ca_file))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = 0

    def start(self) -> KubeletServer:
        # Bound to port 0 unless told otherwise: the kernel picks a free loopback port, and
        # nobody can take it between choosing and binding (the window ports.free_ports has).
        server = _Server(self, self.requested_port)
        server.socket = self.context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"kubelet-{self.node}",
            daemon=True,
        )
        self._thread.start()
        log.info("node %s: kubelet endpoint on https://%s:%d", self.node, HOST, self.port)
        return self

    def stop(self) -> None:
        self._stopping.set()
        server = self._server
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def container_logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        query: dict[str, list[str]],
        handler: _Handler,
    ) -> None:
        """The kubelet's getContainerLogs: the same checks in the same order and wording."""
        if not pod:
            raise LogRequestError(400, "Missing podID.")
        if not container:
            raise LogRequestError(400, "Missing container name.")
        options = LogOptions.from_query(query)
        worker = self.worker_for(namespace, pod)
        if worker is None:
            raise LogRequestError(404, f'pod "{pod}" does not exist')
        record = worker.records.get(container)
        if record is None:
            raise LogRequestError(404, f'container "{container}" not found in pod "{pod}"')
        run = choose_run(record, pod, options.previous)
        check_since(options, run, container)
        path = worker.rt.log_path(worker.pod, container, run.index)
        if not path.is_file():
            # A run that never started a process (StartError): the kubelet has no log either.
            raise LogRequestError(400, f'container "{container}" in pod "{pod}" is terminated')

        def live() -> bool:
            proc = worker.procs.get(container)
            return proc is not None and proc.running and record.restart_count == run.index

        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Cache-Control", "no-cache, private")
        handler.end_headers()
        # The reader left mid-stream (ssl errors and timeouts are OSErrors too).
        with contextlib.suppress(OSError):
            stream(path, options, handler, live=live, stopping=self._stopping.is_set)
