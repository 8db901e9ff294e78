"""The in-pod API client against a real HTTPS server on loopback, with a certificate from a
test CA: the requests it sends, the token it reads, how failures come back, and a kept-alive
connection the server closed."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from continuable.backends import jobapi
from continuable.backends.incluster import InClusterJobApi
from continuable.backends.jobapi import JSON_PATCH, ApiFailure
from tests.cluster.certificates import CertificateAuthority
from tests.cluster.ports import free_ports

JOB_PATH = "/apis/continuable.dev/v1alpha1/namespaces/team-a/continuablejobs/report"


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Close the connection after answering without saying so, as a server's idle timeout does.
    drop_after: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeApiServer:
    def __init__(self, cert: Path, key: Path) -> None:
        self.answers: list[Answer] = []
        self.seen: list[Seen] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        dict(self.headers),
                        json.loads(raw) if raw else None,
                    )
                )
                answer = server.answers.pop(0) if server.answers else Answer()
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = answer.drop_after

            do_GET = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture
def server(tmp_path: Path, ca: CertificateAuthority) -> Iterator[FakeApiServer]:
    cert, key = ca.issue_serving().write(tmp_path / "server.crt", tmp_path / "server.key")
    fake = FakeApiServer(cert, key)
    yield fake
    fake.stop()


def client(tmp_path: Path, ca: CertificateAuthority, port: int) -> InClusterJobApi:
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    if not (tmp_path / "token").exists():
        (tmp_path / "token").write_text("token-1\n")
    return InClusterJobApi(
        host="127.0.0.1",
        port=port,
        token_file=tmp_path / "token",
        ca_file=tmp_path / "ca.crt",
        job="report",
        namespace="team-a",
    )


def test_it_reads_the_job_with_the_current_token(
    tmp_path: Path, ca: CertificateAuthority, server: FakeApiServer
) -> None:
    api = client(tmp_path, ca, server.port)
    server.answers = [Answer(body={"metadata": {"name": "report"}}), Answer()]
    assert api.get_job() == {"metadata": {"name": "report"}}
    (tmp_path / "token").write_text("token-2")  # the kubelet rotated it
    api.get_job()

    assert [s.method for s in server.seen] == ["GET", "GET"]
    assert server.seen[0].path == JOB_PATH
    assert server.seen[0].headers["Authorization"] == "Bearer token-1"
    assert server.seen[1].headers["Authorization"] == "Bearer token-2"
    assert server.seen[0].headers["Accept"] == "application/json"
    assert server.connections == 1  # kept alive


def test_writes_are_json_patches_to_the_status_and_the_results(
    tmp_path: Path, ca: CertificateAuthority, server: FakeApiServer
) -> None:
    api = client(tmp_path, ca, server.port)
    ops = [{"op": "test", "path": "/status/attempt", "value": 3}]
    api.patch_status(ops)
    api.patch_results(ops)
    server.answers = [Answer(body={"data": {"attempt": "3", "fetch.json": "[1]"}})]
    assert api.get_results() == {"attempt": "3", "fetch.json": "[1]"}
    api.get_pod("report-3")

    status, results, read, pod = server.seen
    assert (status.method, status.path, status.body) == ("PATCH", f"{JOB_PATH}/status", ops)
    assert status.headers["Content-Type"] == JSON_PATCH
    assert (results.method, results.body) == ("PATCH", ops)
    assert results.path == "/api/v1/namespaces/team-a/configmaps/report-results"
    assert read.path == results.path
    assert pod.path == "/api/v1/namespaces/team-a/pods/report-3"


@pytest.mark.parametrize(
    ("answer", "status", "message", "retry_after"),
    [
        (Answer(422, {"kind": "Status", "message": "testing value /status/attempt failed"}),
         422, "testing value /status/attempt failed", None),
        (Answer(429, {"kind": "Status", "message": "too many requests"}, {"Retry-After": "3"}),
         429, "too many requests", 3.0),
        (Answer(503, "not a Status"), 503, "not a Status", None),
    ],
)  # fmt: skip
def test_a_refusal_says_the_servers_words(
    tmp_path: Path,
    ca: CertificateAuthority,
    server: FakeApiServer,
    answer: Answer,
    status: int,
    message: str,
    retry_after: float | None,
) -> None:
    api = client(tmp_path, ca, server.port)
    server.answers = [answer]
    with pytest.raises(ApiFailure) as failure:
        api.patch_status([])
    assert (failure.value.status, failure.value.retry_after) == (status, retry_after)
    assert message in failure.value.message


def test_a_connection_the_server_closed_is_replaced(
    tmp_path: Path, ca: CertificateAuthority, server: FakeApiServer
) -> None:
    api = client(tmp_path, ca, server.port)
    server.answers = [Answer(drop_after=True), Answer(body={"ok": 1})]
    api.get_job()
    assert api.get_job() == {"ok": 1}
    assert server.connections == 2
    assert len(server.seen) == 2  # sent once on the new connection, never lost nor doubled


def test_no_answer_is_status_0(tmp_path: Path, ca: CertificateAuthority) -> None:
    api = client(tmp_path, ca, free_ports(1)[0])
    with pytest.raises(ApiFailure) as failure:
        api.get_job()
    assert failure.value.status == 0
    assert "no answer from the API server" in failure.value.message


def test_a_server_the_ca_did_not_sign_is_not_trusted(tmp_path: Path, server: FakeApiServer) -> None:
    api = client(tmp_path, CertificateAuthority.create("another-ca"), server.port)
    with pytest.raises(ApiFailure) as failure:
        api.get_job()
    assert failure.value.status == 0
    assert "CERTIFICATE_VERIFY_FAILED" in failure.value.message
    assert server.seen == []


def test_a_missing_token_says_so(
    tmp_path: Path, ca: CertificateAuthority, server: FakeApiServer
) -> None:
    api = client(tmp_path, ca, server.port)
    (tmp_path / "token").unlink()
    with pytest.raises(ApiFailure, match="reading the service-account token"):
        api.get_job()


@pytest.mark.parametrize(
    ("host", "port", "token", "expected"),
    [
        ("10.96.0.1", "443", True, True),
        ("", "443", True, False),
        ("10.96.0.1", "", True, False),
        ("10.96.0.1", "443", False, False),
    ],
)
def test_in_cluster_needs_the_service_env_and_a_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    port: str,
    token: bool,
    expected: bool,
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setattr(jobapi, "SERVICE_ACCOUNT_DIR", tmp_path)
    if token:
        (tmp_path / "token").write_text("t")
    assert jobapi.in_cluster() is expected


def test_a_pods_backend_loads_no_kubernetes_client(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_bytes(CertificateAuthority.create().cert_pem)
    code = (
        "import sys, pathlib\n"
        "from continuable.backends import jobapi\n"
        "jobapi.SERVICE_ACCOUNT_DIR = pathlib.Path(sys.argv[1])\n"
        "from continuable.backends.kubernetes import KubernetesBackend\n"
        "api = KubernetesBackend.from_environment()._api\n"
        "print(type(api).__name__, 'kubernetes' in sys.modules, 'pydantic' in sys.modules)"
    )
    env = {
        **os.environ,
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "CONTINUABLE_JOB": "report",
        "CONTINUABLE_NAMESPACE": "team-a",
        "CONTINUABLE_ATTEMPT": "1",
        "CONTINUABLE_JOB_UID": "uid-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.split() == ["InClusterJobApi", "False", "False"]
