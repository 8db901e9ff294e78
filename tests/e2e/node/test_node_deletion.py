"""Deleting a pod stops its process as a kubelet stops a container: SIGTERM, grace, SIGKILL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Kubectl
from tests.cluster.processnode import ApiClient
from tests.cluster.processnode.rest import MERGE, path_of, pod_path
from tests.cluster.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEEP = "test.continuable.dev/keep"


def _started(record: Path) -> None:
    wait_for(
        lambda: record.exists() and "started" in record.read_text(),
        timeout=30,
        what=f"the process to write {record}",
    )


def test_delete_delivers_sigterm_within_the_grace_period(
    pods: Any, node: str, scratch: Path, signal_recorder: Callable[..., list[str]]
) -> None:
    record = scratch / "signals"
    pods.create(pods.manifest("graceful", signal_recorder(record), node=node, grace=20))
    pods.wait_phase("graceful", "Running")
    _started(record)
    pods.delete("graceful")
    took = pods.wait_gone("graceful", timeout=20)
    assert "SIGTERM" in record.read_text()
    # The process exits on SIGTERM: the pod goes long before the 20 s grace.
    assert took < 10, f"pod took {took:.1f}s to go"


def test_sigterm_ignored_means_sigkill_at_the_deadline(
    pods: Any,
    node: str,
    scratch: Path,
    admin: ApiClient,
    namespace: str,
    signal_recorder: Callable[..., list[str]],
) -> None:
    record = scratch / "signals"
    manifest = pods.manifest(
        "stubborn",
        signal_recorder(record, ignore_term=True),
        node=node,
        grace=3,
        # A finalizer keeps the object after the node's final DELETE, so its last status shows.
        metadata={"finalizers": [KEEP]},
    )
    pods.create(manifest)
    pods.wait_phase("stubborn", "Running")
    _started(record)
    pods.delete("stubborn")
    pod = pods.wait_phase("stubborn", "Failed", timeout=20)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")
    assert "SIGTERM ignored" in record.read_text()
    # The node's final DELETE (grace 0) has happened; only our finalizer holds the object.
    wait_for(
        lambda: pods.get("stubborn")["metadata"].get("deletionGracePeriodSeconds") == 0,
        timeout=10,
        what="the node's final DELETE",
    )
    admin.patch(pod_path(namespace, "stubborn"), {"metadata": {"finalizers": None}}, MERGE)
    pods.wait_gone("stubborn", timeout=10)


def test_deleting_the_owner_garbage_collects_the_pod(
    pods: Any,
    node: str,
    scratch: Path,
    admin: ApiClient,
    namespace: str,
    signal_recorder: Callable[..., list[str]],
) -> None:
    owner = admin.post(
        path_of("api", "v1", "namespaces", namespace, "configmaps"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
    )
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    record = scratch / "signals"
    manifest = pods.manifest(
        "owned", signal_recorder(record), node=node, metadata={"ownerReferences": [reference]}
    )
    pods.create(manifest)
    pods.wait_phase("owned", "Running")
    _started(record)
    admin.delete(path_of("api", "v1", "namespaces", namespace, "configmaps", "owner"))
    pods.wait_gone("owned", timeout=60)
    assert "SIGTERM" in record.read_text()


def test_force_deletion_still_kills_the_process(
    pods: Any,
    node: str,
    scratch: Path,
    kubectl: Kubectl,
    namespace: str,
    signal_recorder: Callable[..., list[str]],
) -> None:
    record = scratch / "signals"
    pods.create(pods.manifest("forced", signal_recorder(record), node=node))
    pods.wait_phase("forced", "Running")
    _started(record)
    kubectl("delete", "pod", "forced", "-n", namespace, "--grace-period=0", "--force")
    wait_for(lambda: "SIGTERM" in record.read_text(), timeout=10, what="the process to get SIGTERM")
