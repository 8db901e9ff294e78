"""`JobApi` over the kubernetes client, for a job run outside a cluster against the cluster of
the kubeconfig (contexts, exec plugins and all); imported only then (see `jobapi.py`)."""

from __future__ import annotations

import os
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from continuable.names import GROUP, PLURAL, VERSION, results_config_map

from .jobapi import (
    CONNECT_TIMEOUT_SECONDS,
    JSON_PATCH,
    READ_TIMEOUT_SECONDS,
    ApiFailure,
    retry_after,
    status_message,
)


class KubeconfigJobApi:
    """`JobApi` over the kubernetes client, with the credentials of KUBECONFIG or ~/.kube/config."""

    TIMEOUT = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)

    def __init__(self, job: str, namespace: str) -> None:
        # Named here: the package's own default is KUBECONFIG as it was when it was imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
        self._client = client.ApiClient()
        self._custom = client.CustomObjectsApi(self._client)
        self._core = client.CoreV1Api(self._client)
        self._job = job
        self._namespace = namespace

    def get_job(self) -> dict[str, Any]:
        job: dict[str, Any] = self._guarded(
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self._namespace, PLURAL, self._job, _request_timeout=self.TIMEOUT
            )
        )
        return job

    def patch_status(self, ops: list[dict[str, Any]]) -> None:
        self._guarded(
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                self._namespace,
                PLURAL,
                self._job,
                ops,
                _content_type=JSON_PATCH,
                _request_timeout=self.TIMEOUT,
            )
        )

    def get_results(self) -> dict[str, str]:
        config_map = self._guarded(
            lambda: self._core.read_namespaced_config_map(
                results_config_map(self._job), self._namespace, _request_timeout=self.TIMEOUT
            )
        )
        return dict(config_map.data or {})

    def patch_results(self, ops: list[dict[str, Any]]) -> None:
        self._guarded(
            lambda: self._core.patch_namespaced_config_map(
                results_config_map(self._job),
                self._namespace,
                ops,
                _content_type=JSON_PATCH,
                _request_timeout=self.TIMEOUT,
            )
        )

    def get_pod(self, name: str) -> dict[str, Any]:
        pod = self._guarded(
            lambda: self._core.read_namespaced_pod(
                name, self._namespace, _request_timeout=self.TIMEOUT
            )
        )
        serialised: dict[str, Any] = self._client.sanitize_for_serialization(pod)
        return serialised

    @staticmethod
    def _guarded(call: Any) -> Any:
        try:
            return call()
        except ApiException as err:
            headers = err.headers or {}
            raise ApiFailure(
                status=int(err.status or 0),
                message=status_message(err.body) or str(err.reason),
                retry_after=retry_after(headers.get("Retry-After")),
            ) from err
        except (HTTPError, OSError) as err:
            raise ApiFailure(status=0, message=f"no answer from the API server: {err}") from err
