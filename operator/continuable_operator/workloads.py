"""The executor's writes to a queued job's Kueue Workload: created once (one that exists is
kept: Kueue writes parts of its spec), patched, its status patched on the version it was read
at, or, finished, deleted for a restarted job. Each answer goes into the store at once, so the
next plan sees it without waiting for the watch.
"""

from __future__ import annotations

from typing import Any

from .actions import CreateWorkload, DeleteWorkload, PatchWorkload, PatchWorkloadStatus
from .caching import WORKLOAD, Store
from .cluster import ApiError, ClusterApi

Object = dict[str, Any]


def write_workload(
    api: ClusterApi,
    store: Store,
    namespace: str,
    action: CreateWorkload | PatchWorkload | PatchWorkloadStatus,
) -> bool:
    """Carry out the write; whether the plan must stop and be made again: Kueue wrote
    meanwhile (a conflict: at once), or the Workload is gone (its watch brings the news)."""
    try:
        if isinstance(action, CreateWorkload):
            written = api.create_workload(action.manifest)
        elif isinstance(action, PatchWorkload):
            written = api.patch_workload(namespace, action.name, action.patch)
        else:
            body: Object = {"status": action.status}
            if action.resource_version is not None:
                body["metadata"] = {"resourceVersion": action.resource_version}
            written = api.patch_workload(namespace, action.name, body, status=True)
    except ApiError as err:
        if isinstance(action, CreateWorkload) and err.status == 409:
            return False  # made by an earlier reconcile; its watch brings it
        if err.status in (404, 409):
            return True
        raise
    store.apply(WORKLOAD, None, {**written, "kind": WORKLOAD})
    return False


def delete_workload(api: ClusterApi, store: Store, namespace: str, action: DeleteWorkload) -> None:
    """Delete the finished Workload of this uid; one gone or replaced meanwhile is fine. The
    store forgets it at once, so the next plan makes the new one."""
    try:
        api.delete_workload(namespace, action.name, action.uid)
    except ApiError as err:
        if err.status not in (404, 409):
            raise
    current = store.get(WORKLOAD, namespace, action.name)
    if current is not None and current["metadata"].get("uid") == action.uid:
        store.apply(WORKLOAD, "DELETED", current)
