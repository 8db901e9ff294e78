"""Owner references: everything the operator creates for a job is owned by it, so deleting the
job garbage-collects its pods, results, ServiceAccount and RBAC."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from continuable.names import API_VERSION, JOB_LABEL, KIND


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    metadata = job["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_metadata(job: Mapping[str, Any], name: str, **extra: Any) -> dict[str, Any]:
    """Metadata of an object owned by `job`, in its namespace, labelled with its name."""
    metadata = job["metadata"]
    return {
        "name": name,
        "namespace": metadata["namespace"],
        "labels": {JOB_LABEL: metadata["name"]},
        "ownerReferences": [owner_reference(job)],
        **extra,
    }
