"""Builds what an attempt runs with: its pod, and the results ConfigMap it writes to.

Pure functions of the ContinuableJob (as the API server returns it, defaults applied) and the
attempt number. The pod's name is deterministic (`<job>-<attempt>`), so creating it again after
an operator crash is a harmless AlreadyExists.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from continuable.names import (
    ATTEMPT_LABEL,
    ENV_ATTEMPT,
    ENV_CHECKPOINT_INTERVAL,
    ENV_JOB,
    ENV_JOB_UID,
    ENV_NAMESPACE,
    JOB_LABEL,
    RESULTS_ATTEMPT_KEY,
    TEMPLATE_HASH_ANNOTATION,
    TRACKING_FINALIZER,
    checkpoint_service_account,
    pod_name,
    results_config_map,
)

from .drafting import checkpoint_interval
from .ownership import owned_metadata


def template_hash(template: Mapping[str, Any]) -> str:
    """A short, stable digest of the pod template: a changed hash is a rollout."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def service_account_of(job: Mapping[str, Any]) -> str:
    """The template's ServiceAccount, or the one the operator creates for the job."""
    named = job["spec"]["template"]["spec"].get("serviceAccountName")
    return str(named) if named else checkpoint_service_account(job["metadata"]["name"])


def build_pod(job: Mapping[str, Any], attempt: int) -> dict[str, Any]:
    name = job["metadata"]["name"]
    template = job["spec"]["template"]
    template_metadata = template.get("metadata") or {}
    spec = copy.deepcopy(template["spec"])
    spec["restartPolicy"] = "Never"
    spec["serviceAccountName"] = service_account_of(job)
    interval = checkpoint_interval(job["spec"])
    ours = {
        ENV_JOB: name,
        ENV_JOB_UID: str(job["metadata"]["uid"]),
        ENV_NAMESPACE: job["metadata"]["namespace"],
        ENV_ATTEMPT: str(attempt),
        ENV_CHECKPOINT_INTERVAL: f"{interval:g}",
    }
    for container in spec["containers"]:
        kept = [e for e in container.get("env") or [] if e.get("name") not in ours]
        container["env"] = [*kept, *({"name": k, "value": v} for k, v in ours.items())]
    metadata = owned_metadata(
        job,
        pod_name(name, attempt),
        annotations={
            **(template_metadata.get("annotations") or {}),
            TEMPLATE_HASH_ANNOTATION: template_hash(template),
        },
        finalizers=[TRACKING_FINALIZER],
    )
    metadata["labels"] = {
        **(template_metadata.get("labels") or {}),
        JOB_LABEL: name,
        ATTEMPT_LABEL: str(attempt),
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def build_results_config_map(job: Mapping[str, Any], attempt: int) -> dict[str, Any]:
    """The results ConfigMap, created once; its `attempt` key fences the pods' writes."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned_metadata(job, results_config_map(job["metadata"]["name"])),
        "data": {RESULTS_ATTEMPT_KEY: str(attempt)},
    }
