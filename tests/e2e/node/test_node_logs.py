"""`kubectl logs` on a process node: the apiserver proxies it to the node's kubelet endpoint.

That endpoint is HTTPS on loopback with a serving certificate from the cluster CA (the apiserver
verifies it), and it only talks to clients with a certificate from that CA that may `get
nodes/proxy`: the apiserver's kubelet client identity, not a node or anyone else on the host.
"""

from __future__ import annotations

import http.client
import os
import selectors
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import ControlPlane, Kubectl
from tests.cluster.certificates import CertificateAuthority
from tests.cluster.processnode import ApiClient
from tests.cluster.processnode.rest import path_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[3]
PRINT_FIVE = "for i in range(5): print(f'line {i}')"


def _kubelet_port(admin: ApiClient, node: str) -> int:
    status = admin.get(path_of("api", "v1", "nodes", node))["status"]
    port = int(status["daemonEndpoints"]["kubeletEndpoint"]["Port"])
    assert port > 0
    return port


def _finished_printer(pods: Any, node: str, name: str = "printer") -> str:
    pods.create(pods.manifest(name, ["python", "-c", PRINT_FIVE], node=node))
    assert pods.wait_phase(name, "Succeeded", "Failed")["status"]["phase"] == "Succeeded"
    return name


def test_logs_tail_and_limit(kubectl: Kubectl, pods: Any, node: str, namespace: str) -> None:
    name = _finished_printer(pods, node)
    began = time.monotonic()
    assert kubectl("logs", name, "-n", namespace) == "".join(f"line {i}\n" for i in range(5))
    took = time.monotonic() - began
    assert kubectl("logs", name, "-n", namespace, "--tail=2") == "line 3\nline 4\n"
    assert kubectl("logs", name, "-n", namespace, "--tail=0") == ""
    assert kubectl("logs", name, "-n", namespace, "--tail=99") == kubectl(
        "logs", name, "-n", namespace
    )
    assert kubectl("logs", name, "-n", namespace, "--limit-bytes=9") == "line 0\nli"
    assert kubectl("logs", name, "-n", namespace, "-c", "main", "--since=1h").startswith("line 0")
    assert took < 5, f"kubectl logs took {took:.1f}s"


def test_logs_errors_are_clear(kubectl: Kubectl, pods: Any, node: str, namespace: str) -> None:
    name = _finished_printer(pods, node)

    def error(*args: str) -> str:
        result = kubectl.run("logs", name, "-n", namespace, *args, check=False)
        assert result.returncode != 0, result.stdout
        return result.stderr

    # The apiserver refuses a container the pod does not have before asking the node.
    assert "nope" in error("-c", "nope")
    assert 'previous terminated container "main" in pod "printer" not found' in error("--previous")
    assert "timestamps are not available" in error("--timestamps")


def test_logs_of_the_previous_run(
    kubectl: Kubectl, pods: Any, node: str, namespace: str, scratch: Path
) -> None:
    marker = scratch / "ran-once"
    script = f"""
import os, sys, time
marker = {str(marker)!r}
if not os.path.exists(marker):
    open(marker, 'w').close()
    print('first run', flush=True)
    sys.exit(3)
print('second run', flush=True)
time.sleep(60)
"""
    pod = pods.manifest("restarter", ["python", "-c", script], node=node, grace=2)
    pod["spec"]["restartPolicy"] = "OnFailure"
    pods.create(pod)
    pods.wait(
        "restarter",
        lambda p: any(
            c.get("restartCount", 0) >= 1 and "running" in c.get("state", {})
            for c in p.get("status", {}).get("containerStatuses", [])
        ),
        timeout=30,
        what="restarted and running",
    )
    assert kubectl("logs", "restarter", "-n", namespace, "--previous") == "first run\n"

    def current() -> str:
        return kubectl("logs", "restarter", "-n", namespace)

    deadline = time.monotonic() + 10
    while current() != "second run\n" and time.monotonic() < deadline:
        time.sleep(0.2)  # the second run may not have printed yet
    assert current() == "second run\n"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """kubectl processes a test starts in sessions of their own; killed by recorded pid."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None and proc.pid > 1:
            # Still our unreaped child, so its pid (= its process group) is still ours.
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _read_until(proc: subprocess.Popen[bytes], wanted: bytes, timeout: float) -> bytes:
    """Output of `proc` until it contains `wanted` (or it ends, or `timeout` passes)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while wanted not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    return seen


def test_follow_streams_new_lines_and_ends_with_the_container(
    kubectl: Kubectl,
    pods: Any,
    node: str,
    namespace: str,
    scratch: Path,
    started: list[subprocess.Popen[bytes]],
) -> None:
    stop = scratch / "stop"
    script = f"""
import os, time
i = 0
while not os.path.exists({str(stop)!r}) and i < 600:
    print(f'tick {{i}}', flush=True)
    i += 1
    time.sleep(0.3)
print('bye', flush=True)
"""
    pods.create(pods.manifest("ticker", ["python", "-c", script], node=node))
    pods.wait_phase("ticker", "Running")
    proc = subprocess.Popen(
        [
            str(kubectl.executable),
            f"--kubeconfig={kubectl.kubeconfig}",
            *("logs", "-f", "ticker", "-n", namespace),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started.append(proc)
    first = _read_until(proc, b"tick 0\n", timeout=10)
    assert b"tick 0\n" in first, first
    # A line written after the stream began arrives within a few seconds.
    last = int(first.strip().splitlines()[-1].split()[-1])
    wanted = f"tick {last + 3}\n".encode()
    began = time.monotonic()
    more = _read_until(proc, wanted, timeout=5)
    assert wanted in more, more
    streamed_in = time.monotonic() - began
    # When the container ends, so does the followed log (after its last line).
    stop.touch()
    rest = _read_until(proc, b"bye\n", timeout=10)
    assert rest.endswith(b"bye\n"), rest
    assert proc.wait(10) == 0
    assert streamed_in < 3, f"three new lines took {streamed_in:.1f}s"


def test_follow_with_tail(kubectl: Kubectl, pods: Any, node: str, namespace: str) -> None:
    name = _finished_printer(pods, node, "done-printer")
    # A finished container: -f prints the tail and ends at once.
    result = kubectl.run("logs", "-f", "--tail=1", name, "-n", namespace, timeout=10)
    assert result.stdout == "line 4\n"


def _context(control_plane: ControlPlane, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


def _get(port: int, context: ssl.SSLContext, path: str) -> tuple[int, str]:
    # Verifies the serving certificate (CA and 127.0.0.1) as well.
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_the_endpoint_needs_an_allowed_client_certificate(
    control_plane: ControlPlane,
    admin: ApiClient,
    pods: Any,
    node: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = _finished_printer(pods, node)
    port = _kubelet_port(admin, node)
    path = f"/containerLogs/{namespace}/{name}/main"

    # No client certificate: the TLS handshake fails.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(port, _context(control_plane, None), path)

    # A certificate from another CA: refused as well.
    stranger = CertificateAuthority.create("stranger").issue_client("admin", ("system:masters",))
    stranger_files = stranger.write(tmp_path / "stranger.crt", tmp_path / "stranger.key")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(port, _context(control_plane, stranger_files), path)

    # The cluster's CA, but an identity without `get nodes/proxy` (a node, not the apiserver).
    node_identity = control_plane.ca.issue_client(f"system:node:{node}", ("system:nodes",))
    node_files = node_identity.write(tmp_path / "node.crt", tmp_path / "node.key")
    status, body = _get(port, _context(control_plane, node_files), path)
    assert status == 403, body
    assert "subresource=proxy" in body

    # The apiserver's kubelet client identity reads the log, with the kubelet's 404s.
    certs = control_plane.certs_dir
    apiserver = (certs / "kubelet-client.crt", certs / "kubelet-client.key")
    context = _context(control_plane, apiserver)
    assert _get(port, context, path + "?tailLines=1") == (200, "line 4\n")
    assert _get(port, context, f"/containerLogs/{namespace}/no-such-pod/main") == (
        404,
        'pod "no-such-pod" does not exist\n',
    )
    assert _get(port, context, f"/containerLogs/{namespace}/{name}/nope") == (
        404,
        f'container "nope" not found in pod "{name}"\n',
    )
    assert _get(port, context, "/pods")[0] == 404


def test_continuable_logs(
    kubectl: Kubectl, control_plane: ControlPlane, pods: Any, node: str, namespace: str
) -> None:
    """The CLI's `logs` reads the job's pod log through the same path (no operator needed:
    a ContinuableJob and a pod labelled as its attempt are enough)."""
    from continuable.names import ATTEMPT_LABEL, JOB_LABEL

    cli = REPO_ROOT / ".venv" / "bin" / "continuable"
    if not cli.exists():
        pytest.skip(f"{cli} is not installed")
    job = f"""
apiVersion: continuable.dev/v1alpha1
kind: ContinuableJob
metadata:
  name: logged
  namespace: {namespace}
spec:
  template:
    spec:
      containers:
        - name: job
          image: ignored.invalid/image
          command: ["python", "-c", "pass"]
"""
    result = kubectl.run("apply", "-f", "-", input=job, check=False)
    if result.returncode != 0:
        pytest.skip(f"no ContinuableJob CRD on this cluster: {result.stderr.strip()}")
    labels = {JOB_LABEL: "logged", ATTEMPT_LABEL: "1"}
    pod = pods.manifest(
        "logged-1", ["python", "-c", PRINT_FIVE], node=node, metadata={"labels": labels}
    )
    pods.create(pod)
    pods.wait_phase("logged-1", "Succeeded")
    argv = [str(cli), "logs", "logged", "-n", namespace, "--kubeconfig", str(kubectl.kubeconfig)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "".join(f"line {i}\n" for i in range(5))
    tail = subprocess.run(
        [*argv, "--tail", "2"], capture_output=True, text=True, timeout=60, check=False
    )
    assert tail.stdout == "line 3\nline 4\n", tail.stderr
