"""Kueue's manager on the host, against the local control plane (issue 25).

The manager is one Go binary (build_kueue.sh, `make kueue-bin`), with Kueue's CRDs beside it.
It runs as Kueue's own deployment would, with what a host lacks filled in:
- no internal certificate management (it waits for a Secret mounted into a pod): the webhook
  server, which always starts although no webhook is registered with the API server, gets a
  serving pair of the cluster's CA in its certDir;
- the metrics certificates, whose path Kueue hard-codes (/etc/kueue/metrics/certs) and reads at
  start even with metrics off: written there for the run and removed after (with the folders
  this run made);
- no leader election, no visibility API server (it would want /visibility certificates);
- the ContinuableJob registered in `integrations.externalFrameworks`: our operator owns the
  Workload of each job, Kueue queues, admits and preempts it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from . import processes
from .binaries import BinarySet
from .certificates import CertificateAuthority
from .crds import CrdInfo, apply_crds
from .kubectl import Kubectl
from .ports import free_ports
from .probe import get
from .processes import StartsAndStops

# Must match KUEUE_VERSION in build_kueue.sh.
KUEUE_VERSION = "v0.19.2"
BUILD_SCRIPT = Path(__file__).resolve().parent / "build_kueue.sh"
EXTERNAL_FRAMEWORK = "ContinuableJob.v1alpha1.continuable.dev"
NAMESPACE = "kueue-system"
# Where Kueue reads its metrics certificates, always (cmd/kueue/main.go).
METRICS_CERTS = Path("/etc/kueue/metrics/certs")
READY_SECONDS = 60.0

KUEUE = BinarySet(
    names=("kueue",),
    env="CONTINUABLE_KUEUE_BIN",
    folder_name=f"kueue-{KUEUE_VERSION}",
    description=f"Kueue ({KUEUE_VERSION})",
    make_target="kueue-bin",
    build_script=BUILD_SCRIPT,
    minutes=20,
)


def crd_dir() -> Path:
    return KUEUE.binary("kueue").parent / "crds"


def configuration(
    *, cert_dir: Path, webhook_port: int, health_port: int, pods_ready_timeout: float
) -> dict[str, Any]:
    """Kueue's Configuration for a manager on the host (strictly decoded: no unknown field)."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "manageJobsWithoutQueueName": False,
        "internalCertManagement": {"enable": False},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "leaderElection": {"leaderElect": False},
        "waitForPodsReady": {
            "timeout": f"{pods_ready_timeout:g}s",
            "recoveryTimeout": f"{pods_ready_timeout:g}s",
            "blockAdmission": False,
            "requeuingStrategy": {
                "timestamp": "Eviction",
                "backoffBaseSeconds": 1,
                "backoffMaxSeconds": 5,
            },
        },
        "integrations": {
            "frameworks": ["batch/job"],
            "externalFrameworks": [EXTERNAL_FRAMEWORK],
        },
    }


class KueueProcess(StartsAndStops):
    """Kueue's CRDs applied and its manager running until `stop()`."""

    def __init__(
        self,
        kubeconfig: Path,
        folder: Path,
        *,
        ca: CertificateAuthority,
        pods_ready_timeout: float = 600.0,
        priority_boost: bool = False,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.folder = folder
        self.ca = ca
        self.pods_ready_timeout = pods_ready_timeout
        self.priority_boost = priority_boost
        self.kubectl = Kubectl.for_kubeconfig(kubeconfig)
        self.crds: list[CrdInfo] = []
        self.record: processes.ProcessRecord | None = None
        self._proc: Any = None
        self._made: list[Path] = []  # what this run created under /etc, removed at stop
        self.health_port = 0

    def start(self) -> KueueProcess:
        binary = KUEUE.binary("kueue")
        self.crds = apply_crds(self.kubectl, crd_dir())
        self.kubectl.retrying("apply", "-f", "-", input=_namespace_yaml())
        cert_dir = self.folder / "webhook-certs"
        cert_dir.mkdir(parents=True, exist_ok=True)
        pair = self.ca.issue_serving("kueue-webhook", dns_names=("localhost",), ips=("127.0.0.1",))
        pair.write(cert_dir / "tls.crt", cert_dir / "tls.key")
        self._install_metrics_certs(cert_dir)
        webhook_port, self.health_port = free_ports(2)
        config = self.folder / "kueue-config.yaml"
        config.write_text(
            yaml.safe_dump(
                configuration(
                    cert_dir=cert_dir,
                    webhook_port=webhook_port,
                    health_port=self.health_port,
                    pods_ready_timeout=self.pods_ready_timeout,
                )
            )
        )
        gates = f"VisibilityOnDemand=false,PriorityBoost={str(self.priority_boost).lower()}"
        argv = [
            str(binary),
            f"--config={config}",
            f"--kubeconfig={self.kubeconfig}",
            f"--feature-gates={gates}",
            "--zap-log-level=2",
        ]
        self._proc, self.record = processes.spawn("kueue", argv, self.folder / "kueue.log")
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _install_metrics_certs(self, cert_dir: Path) -> None:
        """Kueue's hard-coded metrics certificate path, made for this run (refused if another
        run's files are there: they are not ours to replace or remove)."""
        if (METRICS_CERTS / "tls.crt").exists():
            raise RuntimeError(f"{METRICS_CERTS} holds certificates already (another Kueue run?)")
        missing = [p for p in (METRICS_CERTS, *METRICS_CERTS.parents) if not p.exists()]
        METRICS_CERTS.mkdir(parents=True, exist_ok=True)
        self._made = sorted(missing, key=lambda p: len(p.parts), reverse=True)
        for name in ("tls.crt", "tls.key"):
            shutil.copyfile(cert_dir / name, METRICS_CERTS / name)
            self._made.insert(0, METRICS_CERTS / name)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                log = processes.tail(self.folder / "kueue.log")
                raise RuntimeError(f"kueue exited with {self._proc.returncode}:\n{log}")
            status, _ = get(url, timeout=2.0)
            if status == 200:
                return
            time.sleep(0.5)
        log = processes.tail(self.folder / "kueue.log")
        raise RuntimeError(f"kueue not ready within {READY_SECONDS:.0f} s:\n{log}")

    def stop(self) -> None:
        if self.record is not None:
            processes.stop(self.record, self._proc, grace=5.0)
            self.record = None
        for path in self._made:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        self._made = []


def _namespace_yaml() -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
