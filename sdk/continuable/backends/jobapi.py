"""The five API calls the in-pod backend makes (`JobApi`), how a failed one is reported
(`ApiFailure`), and which client makes them.

In a pod (the service-account token mounted, `KUBERNETES_SERVICE_HOST` set) the calls go through
`incluster.py`, a small client over the standard library: the kubernetes client (v37 builds
pydantic models for every API type on import) costs about 3 s of CPU before a pod's first write,
which every relaunch paid. Elsewhere (a job run against a cluster from a laptop), the kubernetes
client reads the kubeconfig, with everything it supports (exec plugins, contexts).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

# Where the kubelet mounts a pod's service-account token, CA bundle and namespace.
SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Connect and read timeouts of either client: a hung call must not hold a write past the grace
# period.
CONNECT_TIMEOUT_SECONDS: Final = 3.05
READ_TIMEOUT_SECONDS: Final = 10.0
# Every write is a JSON patch: its first ops are the fence's tests.
JSON_PATCH: Final = "application/json-patch+json"


@dataclass
class ApiFailure(Exception):
    """An API call that failed; status 0 when the server did not answer at all."""

    status: int
    message: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status else self.message


class JobApi(Protocol):
    def get_job(self) -> dict[str, Any]: ...

    def patch_status(self, ops: list[dict[str, Any]]) -> None: ...

    def get_results(self) -> dict[str, str]: ...

    def patch_results(self, ops: list[dict[str, Any]]) -> None: ...

    def get_pod(self, name: str) -> dict[str, Any]: ...


def status_message(body: Any) -> str | None:
    """The `message` of a Kubernetes Status body, which says what was wrong."""
    if not body:
        return None
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return str(body)[:500]
    return str(message) if message else None


def retry_after(header: str | None) -> float | None:
    """A `Retry-After` header in seconds (the API server sends whole seconds)."""
    return float(header) if header and header.isdigit() else None


def in_cluster() -> bool:
    """Whether this process runs in a pod with a mounted service-account token."""
    return bool(
        os.environ.get("KUBERNETES_SERVICE_HOST")
        and os.environ.get("KUBERNETES_SERVICE_PORT")
        and (SERVICE_ACCOUNT_DIR / "token").is_file()
    )


def job_api(job: str, namespace: str) -> JobApi:
    """The client for this process: in-cluster when it can be, else from the kubeconfig."""
    if in_cluster():
        from .incluster import InClusterJobApi

        return InClusterJobApi.from_environment(job, namespace, SERVICE_ACCOUNT_DIR)
    from .kubeconfig import KubeconfigJobApi

    return KubeconfigJobApi(job, namespace)
