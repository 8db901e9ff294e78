"""Least privilege per job (invariant 4): a job's pod may read its own ContinuableJob, patch its
status and its results ConfigMap, and read its own pod; nothing of any other job.

The Role names every object by `resourceNames`. The pod's name carries the attempt number, so the
pod rule names a block of `POD_BLOCK` attempts' pods (1-8, 9-16, ...): the Role is rewritten
once per block, not on every relaunch (one API request fewer per relaunch). A pod may so read
the other pods of its own job in its block, never another job's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from continuable.names import (
    GROUP,
    PLURAL,
    checkpoint_service_account,
    pod_name,
    results_config_map,
)

from .launching import service_account_of
from .ownership import owned_metadata


def needs_own_service_account(job: Mapping[str, Any]) -> bool:
    return not job["spec"]["template"]["spec"].get("serviceAccountName")


def build_service_account(job: Mapping[str, Any]) -> dict[str, Any]:
    name = checkpoint_service_account(job["metadata"]["name"])
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": owned_metadata(job, name)}


# Attempts whose pods one version of the Role names.
POD_BLOCK = 8


def pod_block(attempt: int) -> range:
    """The attempts whose pods the Role of `attempt` names: the block of POD_BLOCK it is in."""
    first = attempt - (attempt - 1) % POD_BLOCK
    return range(first, first + POD_BLOCK)


def build_role(job: Mapping[str, Any], attempt: int) -> dict[str, Any]:
    name = job["metadata"]["name"]
    rules = [
        {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": [name], "verbs": ["get"]},
        {
            "apiGroups": [GROUP],
            "resources": [f"{PLURAL}/status"],
            "resourceNames": [name],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [results_config_map(name)],
            "verbs": ["get", "patch"],
        },
        # Its own pod (and its job's others of the block): the SDK reads its DisruptionTarget
        # to log why it was stopped.
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "resourceNames": [pod_name(name, n) for n in pod_block(attempt)],
            "verbs": ["get"],
        },
    ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": owned_metadata(job, checkpoint_service_account(name)),
        "rules": rules,
    }


def build_role_binding(job: Mapping[str, Any], *, bound: bool = True) -> dict[str, Any]:
    """The binding of the job's Role to its pod's account; `bound=False`: to nobody (a finished
    job whose template names an account other workloads may use)."""
    name = checkpoint_service_account(job["metadata"]["name"])
    subject = {
        "kind": "ServiceAccount",
        "name": service_account_of(job),
        "namespace": job["metadata"]["namespace"],
    }
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": owned_metadata(job, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [subject] if bound else [],
    }
