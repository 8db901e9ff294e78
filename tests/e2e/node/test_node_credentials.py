"""A pod's process uses its own service-account token with the unmodified kubernetes client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster.processnode import ApiClient
from tests.cluster.processnode.rest import path_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PROBE = """
import json
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
api = client.CoreV1Api()
ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()
result = {'namespace': ns}
result['configmaps'] = sorted(c.metadata.name for c in api.list_namespaced_config_map(ns).items)
try:
    api.list_namespaced_secret(ns)
    result['secrets'] = 'allowed'
except ApiException as err:
    result['secrets'] = err.status
print(json.dumps(result))
"""


def test_pod_token_works_through_load_incluster_config(
    pods: Any, node: str, admin: ApiClient, namespace: str
) -> None:
    def create(resource: str, body: dict[str, Any], group: str = "") -> None:
        base = ("apis", group, "v1") if group else ("api", "v1")
        admin.post(path_of(*base, "namespaces", namespace, resource), body)

    create(
        "serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
    )
    create(
        "roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "read-configmaps"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
        "rbac.authorization.k8s.io",
    )
    create(
        "rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-configmaps",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
        "rbac.authorization.k8s.io",
    )
    manifest = pods.manifest(
        "token-user", ["python", "-c", PROBE], node=node, serviceAccountName="reader"
    )
    pods.create(manifest)
    pod = pods.wait_phase("token-user", "Succeeded", "Failed", timeout=60)
    output = pods.log_path("token-user").read_text()
    assert pod["status"]["phase"] == "Succeeded", output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["namespace"] == namespace
    assert "kube-root-ca.crt" in result["configmaps"]
    assert result["secrets"] == 403
