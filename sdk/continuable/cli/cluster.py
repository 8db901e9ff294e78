"""The one seam between the commands and the Kubernetes API.

Commands talk to a `Cluster`: six calls, plain dicts in and out, `ApiError` on refusal. The
real one wraps the kubernetes client (imported here, on first use, and nowhere else in the
SDK's CLI); the unit tests pass a small fake of their own instead of mocking HTTP.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from continuable.backends.jobapi import status_message
from continuable.names import GROUP, JOB_LABEL, PLURAL, VERSION

from .errors import ApiError, CliError

# Connect and read timeouts of ordinary calls: a dead API server fails the command quickly.
TIMEOUT = (5.0, 30.0)
MERGE_PATCH = "application/merge-patch+json"
# Pod conditions merge by `type` under a strategic merge patch, so ours joins the list.
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class ConnectOptions:
    """Where to connect: the global `--kubeconfig` and `--context` options."""

    kubeconfig: str | None = None
    context: str | None = None


class Cluster(Protocol):
    """What the commands need from the API server."""

    @property
    def default_namespace(self) -> str:
        """The namespace of the kubeconfig's context (or the pod's), else `default`."""
        ...

    def get_job(self, namespace: str, name: str) -> dict[str, Any]: ...

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the ContinuableJob (metadata, spec)."""
        ...

    def list_job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        """The pods labelled as the job's attempts."""
        ...

    def patch_pod_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A strategic merge patch of the pod's status subresource."""
        ...

    def delete_pod(
        self, namespace: str, name: str, *, uid: str | None, grace_period_seconds: int | None
    ) -> None:
        """Delete gracefully: the pod gets SIGTERM, then its grace period to stop."""
        ...

    def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None,
        follow: bool,
        tail_lines: int | None,
    ) -> Iterator[str]:
        """The pod's log, piece by piece as it arrives (until the container ends with follow)."""
        ...


Connect = Callable[[ConnectOptions], Cluster]


class KubernetesCluster:
    """`Cluster` over the kubernetes client: the kubeconfig as kubectl reads it, else the pod's
    service account."""

    def __init__(self, options: ConnectOptions) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=options.kubeconfig,
                context=options.context,
                client_configuration=configuration,
            )
            self._namespace = _context_namespace(options)
        except (config.ConfigException, OSError) as err:
            if (
                options.kubeconfig
                or options.context
                or not os.environ.get("KUBERNETES_SERVICE_HOST")
            ):
                raise CliError(
                    f"cannot load a kubeconfig ({err}); pass --kubeconfig, set KUBECONFIG or "
                    "create ~/.kube/config"
                ) from err
            config.load_incluster_config(client_configuration=configuration)
            self._namespace = _pod_namespace()
        self._host = str(configuration.host)
        self._client = client.ApiClient(configuration)
        self._custom = client.CustomObjectsApi(self._client)
        self._core = client.CoreV1Api(self._client)
        self._client_module = client

    @property
    def default_namespace(self) -> str:
        return self._namespace

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        response = self._call(
            lambda: self._custom.get_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        )
        return _json(response)

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        response = self._call(
            lambda: self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                _content_type=MERGE_PATCH,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        )
        return _json(response)

    def list_job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        response = self._call(
            lambda: self._core.list_namespaced_pod(
                namespace,
                label_selector=f"{JOB_LABEL}={job}",
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        )
        items: list[dict[str, Any]] = _json(response).get("items") or []
        return items

    def patch_pod_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._call(
            lambda: self._core.patch_namespaced_pod_status(
                name,
                namespace,
                patch,
                _content_type=STRATEGIC_MERGE_PATCH,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        )

    def delete_pod(
        self, namespace: str, name: str, *, uid: str | None, grace_period_seconds: int | None
    ) -> None:
        client = self._client_module
        options = client.V1DeleteOptions(
            grace_period_seconds=grace_period_seconds,
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
        )
        self._call(
            lambda: self._core.delete_namespaced_pod(
                name, namespace, body=options, _preload_content=False, _request_timeout=TIMEOUT
            )
        )

    def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None,
        follow: bool,
        tail_lines: int | None,
    ) -> Iterator[str]:
        response = self._call(
            lambda: self._core.read_namespaced_pod_log(
                name,
                namespace,
                container=container,
                follow=follow,
                tail_lines=tail_lines,
                _preload_content=False,
                # Following waits for lines as long as the container runs: no read timeout.
                **({} if follow else {"_request_timeout": TIMEOUT}),
            )
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            for chunk in response.stream(4096, decode_content=True):
                text = decoder.decode(chunk)
                if text:
                    yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
        except OSError as err:
            raise ApiError(0, f"the log stream from {self._host} broke: {err}") from err
        finally:
            response.release_conn()

    def _call(self, call: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call()
        except ApiException as err:
            status = int(err.status or 0)
            raise ApiError(status, status_message(err.body) or str(err.reason)) from err
        except (HTTPError, OSError) as err:
            raise ApiError(0, f"cannot reach the API server at {self._host}: {err}") from err


def connect_kubernetes(options: ConnectOptions) -> Cluster:
    return KubernetesCluster(options)


def _json(response: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.data)
    return document


def _context_namespace(options: ConnectOptions) -> str:
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(options.kubeconfig)
    chosen = active
    if options.context is not None:
        chosen = next((c for c in contexts if c.get("name") == options.context), active)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


def _pod_namespace() -> str:
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"
