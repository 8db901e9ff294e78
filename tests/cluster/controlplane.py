"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler.

    with ControlPlane() as cp:
        subprocess.run([kubectl, "--kubeconfig", cp.kubeconfig, "get", "ns"])

Every process is ours (own session, recorded pid), every port is a free loopback port, every file
is in one work folder that stop() removes. See DESIGN.md, "The local control plane".
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import binaries, probe, processes
from .certificates import (
    SERVICE_CLUSTER_IP_RANGE,
    CertificateAuthority,
    KeyPair,
    new_service_account_key,
)
from .kubeconfig import write_kubeconfig
from .ports import free_ports
from .processes import StartsAndStops
from .waiting import WaitTimeout, wait_for

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "admin"
ADMIN_GROUPS = ("system:masters",)


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class _Component:
    name: str
    argv: list[str]
    health_url: str
    tls: probe.ClientTLS | None
    proc: subprocess.Popen[bytes] | None = None
    record: processes.ProcessRecord | None = None


@dataclass
class Timings:
    """Seconds from start() to each component answering its health check."""

    etcd: float = 0.0
    apiserver: float = 0.0
    total: float = 0.0
    apiserver_restarts: list[float] = field(default_factory=list)


class ControlPlane(StartsAndStops):
    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        work_dir: Path | None = None,
        keep_work_dir: bool = False,
        die_with_parent: bool = True,
        start_timeout: float = 90.0,
        stop_grace: float = 5.0,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self.bin_dir = bin_dir or binaries.bin_dir()
        self._requested_work_dir = work_dir
        self.keep_work_dir = keep_work_dir
        self.die_with_parent = die_with_parent
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.timings = Timings()
        self._work_dir: Path | None = None
        self._components: dict[str, _Component] = {}
        self._ca: CertificateAuthority | None = None
        self._admin: KeyPair | None = None
        self.server = ""

    # ------------------------------------------------------------------ paths

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._work_dir

    @property
    def certs_dir(self) -> Path:
        return self.work_dir / "certs"

    @property
    def logs_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        """Admin (system:masters) kubeconfig with embedded certificates."""
        return self.work_dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.certs_dir / "ca.crt"

    def log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    @property
    def processes(self) -> list[processes.ProcessRecord]:
        """The running components, in start order."""
        return [c.record for c in self._components.values() if c.record and c.proc]

    @property
    def ca(self) -> CertificateAuthority:
        if self._ca is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._ca

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ControlPlane:
        if self._components:
            raise ControlPlaneError("already started")
        began = time.monotonic()
        self._make_work_dir()
        try:
            self._write_pki()
            self._plan()
            self._launch("etcd")
            self.timings.etcd = time.monotonic() - began
            self._launch("kube-apiserver")
            self.timings.apiserver = time.monotonic() - began
            self._launch("kube-controller-manager")
            self._launch("kube-scheduler")
            self.timings.total = time.monotonic() - began
        except BaseException:
            # A half-started control plane is useless and its processes would leak.
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop in reverse start order (the apiserver hangs on SIGTERM once etcd is gone)."""
        errors: list[str] = []
        for component in reversed(list(self._components.values())):
            try:
                self._stop_component(component)
            except Exception as err:  # keep stopping the others; report at the end
                errors.append(f"{component.name}: {err}")
        self._components.clear()
        if self._work_dir is not None and not self.keep_work_dir:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
        if errors:
            raise ControlPlaneError("stopping the control plane: " + "; ".join(errors))

    def stop_apiserver(self) -> None:
        self._stop_component(self._component("kube-apiserver"))

    def start_apiserver(self) -> float:
        """Start the apiserver again on the same port and data; returns seconds to /readyz."""
        began = time.monotonic()
        self._launch("kube-apiserver")
        took = time.monotonic() - began
        self.timings.apiserver_restarts.append(took)
        return took

    def restart_apiserver(self, down_for: float = 0.0) -> float:
        """Stop the apiserver alone (etcd and the controllers keep running) and start it again.

        Clients see their connections drop and watches end, as in a real apiserver rollout.
        """
        self.stop_apiserver()
        if down_for > 0:
            time.sleep(down_for)
        return self.start_apiserver()

    def is_ready(self) -> bool:
        component = self._components.get("kube-apiserver")
        return bool(
            component and component.proc and probe.is_ok(component.health_url, component.tls)
        )

    def issue_kubeconfig(self, path: Path, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for another identity, e.g. ("system:node:n1", ["system:nodes"])."""
        return write_kubeconfig(
            path,
            server=self.server,
            ca_pem=self.ca.cert_pem,
            client=self.ca.issue_client(user, tuple(groups)),
            user=user,
        )

    # ------------------------------------------------------------------ internals

    def _make_work_dir(self) -> None:
        if self._requested_work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="continuable-cp-"))
        else:
            # A fixed folder (cluster up) may hold a previous run's etcd data: start clean.
            shutil.rmtree(self._requested_work_dir, ignore_errors=True)
            self._requested_work_dir.mkdir(parents=True)
            self._work_dir = self._requested_work_dir
        self._work_dir.chmod(0o700)
        for sub in ("certs", "logs", "etcd"):
            # 0700: etcd warns about anything looser, and certs/ holds private keys.
            (self._work_dir / sub).mkdir(mode=0o700)

    def _write_pki(self) -> None:
        certs = self.certs_dir
        ca = CertificateAuthority.create()
        self._ca = ca
        ca.pair.write(certs / "ca.crt", certs / "ca.key")
        ca.issue_serving().write(certs / "apiserver.crt", certs / "apiserver.key")
        new_service_account_key().write(certs / "sa.key", certs / "sa.pub")
        admin = ca.issue_client(ADMIN_USER, ADMIN_GROUPS)
        admin.write(certs / "admin.crt", certs / "admin.key")
        self._admin = admin
        # What the apiserver presents to a kubelet (logs): the process node requires it.
        ca.issue_client("kube-apiserver-kubelet-client", ADMIN_GROUPS).write(
            certs / "kubelet-client.crt", certs / "kubelet-client.key"
        )

    def _client_kubeconfig(self, name: str, pair: KeyPair, user: str) -> Path:
        return write_kubeconfig(
            self.work_dir / f"{name}.kubeconfig",
            server=self.server,
            ca_pem=self.ca.cert_pem,
            client=pair,
            user=user,
        )

    def _plan(self) -> None:
        """Choose ports and build every component's command line."""
        etcd_client, etcd_peer, api_port, kcm_port, sched_port = free_ports(5)
        self.server = f"https://127.0.0.1:{api_port}"
        certs = self.certs_dir
        bin_ = self.bin_dir
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        peer_url = f"http://127.0.0.1:{etcd_peer}"
        admin_tls = probe.ClientTLS(certs / "ca.crt", certs / "admin.crt", certs / "admin.key")
        insecure = probe.ClientTLS(None)

        if self._admin is None:
            raise ControlPlaneError("_write_pki() must run before _plan()")
        self._client_kubeconfig("admin", self._admin, ADMIN_USER)
        # The bootstrap RBAC policy already binds these two user names to their roles.
        kcm_cfg = self._client_kubeconfig(
            "kube-controller-manager",
            self.ca.issue_client("system:kube-controller-manager"),
            "system:kube-controller-manager",
        )
        sched_cfg = self._client_kubeconfig(
            "kube-scheduler",
            self.ca.issue_client("system:kube-scheduler"),
            "system:kube-scheduler",
        )

        def add(name: str, argv: list[str], url: str, tls: probe.ClientTLS | None) -> None:
            self._components[name] = _Component(name, argv, url, tls)

        add(
            "etcd",
            [
                str(bin_ / "etcd"),
                "--name=continuable",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=continuable={peer_url}",
                "--initial-cluster-state=new",
                # Throwaway data: fsync on every write makes a VM disk the bottleneck.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            f"{etcd_url}/health",
            None,
        )
        add(
            "kube-apiserver",
            [
                str(bin_ / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.work_dir / 'apiserver-certs'}",
                f"--tls-cert-file={certs / 'apiserver.crt'}",
                f"--tls-private-key-file={certs / 'apiserver.key'}",
                f"--client-ca-file={certs / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                # Not on by default; the process node's system:node identity relies on it.
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={certs / 'sa.pub'}",
                f"--service-account-signing-key-file={certs / 'sa.key'}",
                f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                "--profiling=false",
                # Without it SIGTERM waits for open watches (the controllers' own) until the
                # 60 s request timeout; with it they are closed and the apiserver exits in ~1 s.
                "--shutdown-watch-termination-grace-period=2s",
                # The `kubernetes` Endpoints may not hold a loopback address: the default
                # reconciler would log that error every 10 s. Nothing here routes to the
                # Service IP anyway (no kube-proxy); pods get the loopback address directly.
                "--endpoint-reconciler-type=none",
                # `kubectl logs` goes through the node's kubelet endpoint: reach it on its
                # InternalIP (a process node's Hostname is only its name), prove who we are
                # with our client certificate, and verify its serving certificate.
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={certs / 'kubelet-client.crt'}",
                f"--kubelet-client-key={certs / 'kubelet-client.key'}",
                f"--kubelet-certificate-authority={certs / 'ca.crt'}",
                *self.extra_apiserver_args,
            ],
            f"{self.server}/readyz",
            admin_tls,
        )
        add(
            "kube-controller-manager",
            [
                str(bin_ / "kube-controller-manager"),
                f"--kubeconfig={kcm_cfg}",
                f"--authentication-kubeconfig={kcm_cfg}",
                f"--authorization-kubeconfig={kcm_cfg}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.work_dir / 'kcm-certs'}",
                f"--service-account-private-key-file={certs / 'sa.key'}",
                f"--root-ca-file={certs / 'ca.crt'}",
                # One identity per controller, so RBAC is exercised as on a real cluster.
                "--use-service-account-credentials=true",
                # Lets CSRs (e.g. a node's serving cert) be signed by our CA.
                f"--cluster-signing-cert-file={certs / 'ca.crt'}",
                f"--cluster-signing-key-file={certs / 'ca.key'}",
                "--profiling=false",
            ],
            f"https://127.0.0.1:{kcm_port}/healthz",
            insecure,
        )
        add(
            "kube-scheduler",
            [
                str(bin_ / "kube-scheduler"),
                f"--kubeconfig={sched_cfg}",
                f"--authentication-kubeconfig={sched_cfg}",
                f"--authorization-kubeconfig={sched_cfg}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={self.work_dir / 'scheduler-certs'}",
                "--profiling=false",
            ],
            f"https://127.0.0.1:{sched_port}/healthz",
            insecure,
        )

    def _component(self, name: str) -> _Component:
        try:
            return self._components[name]
        except KeyError:
            raise ControlPlaneError(f"{name} is not part of a started control plane") from None

    def _launch(self, name: str) -> None:
        component = self._component(name)
        if component.proc is not None and component.proc.poll() is None:
            raise ControlPlaneError(f"{name} is already running")
        log = self.log_path(name)
        component.proc, component.record = processes.spawn(
            name, component.argv, log, die_with_parent=self.die_with_parent
        )
        proc = component.proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode} while starting; "
                    f"last lines of {log}:\n{processes.tail(log)}"
                )
            return probe.is_ok(component.health_url, component.tls, timeout=2.0)

        try:
            wait_for(
                healthy,
                timeout=self.start_timeout,
                what=f"{name} to answer {component.health_url}",
                detail=lambda: f"last lines of {log}:\n{processes.tail(log)}",
            )
        except WaitTimeout as err:
            raise ControlPlaneError(str(err)) from None

    def _stop_component(self, component: _Component) -> None:
        if component.proc is None or component.record is None:
            return
        try:
            processes.stop(component.record, component.proc, grace=self.stop_grace)
        finally:
            component.proc = None
