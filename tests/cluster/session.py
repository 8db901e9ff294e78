"""One cluster for a test session: the local control plane, or an external one when asked.

Kept out of conftest.py so any conftest (tests/e2e/, a later process-node suite) can reuse it.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .controlplane import ControlPlane
from .crds import CRD_DIR, CrdInfo, apply_crds
from .kubectl import Kubectl, KubectlError
from .waiting import WaitTimeout, wait_for

EXTERNAL_KUBECONFIG_ENV = "CONTINUABLE_E2E_KUBECONFIG"
CRD_DIR_ENV = "CONTINUABLE_E2E_CRD_DIR"
E2E_LABEL = "continuable.dev/e2e"


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl: Kubectl
    # None when the tests run against an external cluster: nothing here may be restarted.
    control_plane: ControlPlane | None
    crds: list[CrdInfo] = field(default_factory=list)
    # Why crds/ could not be applied. Kept instead of raised so one bad CRD fails the tests that
    # need it (through the `crds` fixture) and not the control plane's own tests.
    crd_error: str | None = None

    @property
    def is_local(self) -> bool:
        return self.control_plane is not None


def crd_dir() -> Path:
    """crds/, or CONTINUABLE_E2E_CRD_DIR to try a candidate CRD without touching the repo's."""
    override = os.environ.get(CRD_DIR_ENV)
    return Path(override) if override else CRD_DIR


def _with_crds(cluster: Cluster, folder: Path) -> Cluster:
    try:
        cluster.crds = apply_crds(cluster.kubectl, folder)
    except (KubectlError, WaitTimeout) as err:
        cluster.crd_error = str(err)
    return cluster


@contextmanager
def open_cluster(
    crds: Path | None = None, extra_apiserver_args: Sequence[str] = ()
) -> Iterator[Cluster]:
    """Yield a cluster with the CRDs applied; stop (only) what was started here.
    `extra_apiserver_args` go to an API server started here (a benchmark's audit log)."""
    folder = crds or crd_dir()
    external = os.environ.get(EXTERNAL_KUBECONFIG_ENV)
    if external:
        kubectl = Kubectl.for_kubeconfig(Path(external))
        # Applied here too: a long-lived `cluster up` cluster may predate the working tree's CRD.
        yield _with_crds(Cluster(Path(external), kubectl, None), folder)
        return
    with ControlPlane(extra_apiserver_args=extra_apiserver_args) as cp:
        kubectl = Kubectl.for_kubeconfig(cp.kubeconfig)
        yield _with_crds(Cluster(cp.kubeconfig, kubectl, cp), folder)


def namespace_name(hint: str, prefix: str = "e2e-") -> str:
    """A DNS-1123 label from a test name, unique per call."""
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-") or "test"
    return f"{prefix}{base}-{secrets.token_hex(3)}"


@contextmanager
def temporary_namespace(
    kubectl: Kubectl, hint: str, timeout: float = 60.0, prefix: str = "e2e-"
) -> Iterator[str]:
    name = namespace_name(hint, prefix)
    kubectl.retrying("create", "namespace", name, timeout=timeout)
    try:
        kubectl("label", "namespace", name, f"{E2E_LABEL}=true")
        # Pods are refused until the controller-manager has made the `default` service account.
        wait_for(
            lambda: (
                kubectl.run(
                    "get", "serviceaccount", "default", "-n", name, "-o", "name", check=False
                ).returncode
                == 0
            ),
            timeout=timeout,
            what=f"service account default in namespace {name}",
            interval=0.1,
        )
        yield name
    finally:
        # Not waiting: finalizers may take a while and the session's cluster goes away anyway.
        kubectl.run("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
