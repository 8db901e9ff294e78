"""Owner references: everything the operator creates for a job is owned by it, so deleting the
job garbage-collects its pods, results, ServiceAccount and RBAC; and identity: an object belongs
to a job only when that job's UID controls it, never because of its name or labels (a job deleted
and created again under the same name is another job)."""

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


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The UID of the object's controller (the owner reference with `controller: true`)."""
    for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return str(reference.get("uid"))
    return None


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether the job with this UID controls the object: only then may the job adopt it."""
    return controller_uid(obj) == uid


def describe_owner(obj: Mapping[str, Any]) -> str:
    """Who holds an object, for a message: its controller's kind and name, or nobody."""
    for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return f"{reference.get('kind')} {reference.get('name')} (uid {reference.get('uid')})"
    return "no controller"
