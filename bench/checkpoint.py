"""Checkpoint writes against the local control plane, printed as a table; run by `make bench`.

- latency of one fenced checkpoint write (JSON patch with the `test` op on /status/attempt),
  side by side with the same checkpoint sent as an unfenced merge patch;
- API writes per job per minute with a tight set() loop, at intervals 1 s and 10 s;
- size of the ContinuableJob after 10 steps.

It starts its own control plane (or uses CONTINUABLE_E2E_KUBECONFIG's cluster).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from typing import Any

from tabulating import print_table

import continuable
from continuable.backends.kubeconfig import KubeconfigJobApi
from continuable.backends.kubernetes import KubernetesBackend
from continuable_operator.launching import build_results_config_map
from tests.cluster.kubectl import Kubectl
from tests.cluster.session import open_cluster, temporary_namespace

WRITES = 200
JOB = "bench"


def _job(name: str, interval: int) -> dict[str, Any]:
    return {
        "apiVersion": "continuable.dev/v1alpha1",
        "kind": "ContinuableJob",
        "metadata": {"name": name},
        "spec": {
            "checkpoint": {"intervalSeconds": interval},
            "template": {"spec": {"containers": [{"name": "job", "image": "x"}]}},
        },
    }


def _prepare(kubectl: Kubectl, namespace: str, name: str, interval: int = 10) -> str:
    """What the operator does before a launch: the job, status.attempt and the results map
    (owned by the job, with the operator's own builder: the SDK's result writes test the owner's
    UID). Returns the job's UID, which the SDK's writes test too."""
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_job(name, interval)))
    kubectl(
        "patch",
        "cjob",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"attempt": 1}}),
    )
    job = json.loads(kubectl("get", "cjob", name, "-n", namespace, "-o", "json"))
    config_map = build_results_config_map(job, 1)
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(config_map))
    return str(job["metadata"]["uid"])


def _backend(namespace: str, name: str, uid: str) -> KubernetesBackend:
    return KubernetesBackend(
        KubeconfigJobApi(name, namespace), job=name, namespace=namespace, attempt=1, uid=uid
    )


def _checkpoint(index: int) -> dict[str, Any]:
    return {
        "steps": [
            {"name": "fetch", "state": "Completed", "attempt": 1, "durationSeconds": 1.0},
            {"name": "process", "state": "Started", "attempt": 1, "cursor": index},
        ],
        "currentStep": "process",
        "progress": {"done": index, "total": 100000, "summary": f"{index}/100000"},
        "attempt": 1,
    }


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def bench_latency(
    namespace: str, kubectl: Kubectl
) -> tuple[tuple[float, float], tuple[float, float]]:
    uid = _prepare(kubectl, namespace, JOB)
    backend = _backend(namespace, JOB, uid)
    api = backend._api
    assert isinstance(api, KubeconfigJobApi)
    fenced, merged = [], []
    for index in range(WRITES):
        began = time.perf_counter()
        backend.save_checkpoint(_checkpoint(index))
        fenced.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        api._custom.patch_namespaced_custom_object_status(
            "continuable.dev",
            "v1alpha1",
            namespace,
            "continuablejobs",
            JOB,
            {"status": {"checkpoint": _checkpoint(index)}},
            _content_type="application/merge-patch+json",
        )
        merged.append((time.perf_counter() - began) * 1000)
    return _percentiles(fenced), _percentiles(merged)


def bench_writes_per_minute(
    namespace: str, kubectl: Kubectl, interval: int, seconds: float
) -> float:
    name = f"rate-{interval}"
    uid = _prepare(kubectl, namespace, name, interval)
    with continuable.Job(
        backend=_backend(namespace, name, uid), exit_process=False, handle_signals=False
    ) as job:

        @job.step
        def tight(step: continuable.Step) -> None:
            deadline = time.monotonic() + seconds
            i = 0
            while time.monotonic() < deadline:
                step.set(i)
                i += 1

        writes = job._checkpointer.writes
    # The step's start and completion each add a write on top of the timer's.
    return (writes - 1) * 60 / seconds


def bench_size(namespace: str, kubectl: Kubectl) -> tuple[int, int]:
    name = "ten-steps"
    uid = _prepare(kubectl, namespace, name)
    with continuable.Job(
        backend=_backend(namespace, name, uid), exit_process=False, handle_signals=False
    ) as job:
        for index in range(10):

            @job.step(f"step-{index}")
            def work(step: continuable.Step) -> str:
                for _ in step.range(1000):
                    pass
                return f"s3://bucket/output/{step.name}.parquet"

    obj = json.loads(kubectl("get", "cjob", name, "-n", namespace, "-o", "json"))
    return len(json.dumps(obj)), len(json.dumps(obj["status"]["checkpoint"]))


def main() -> None:
    logging.getLogger("continuable").setLevel(logging.WARNING)
    with open_cluster() as cluster, temporary_namespace(cluster.kubectl, "bench") as namespace:
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        kubectl = cluster.kubectl
        (fenced_p50, fenced_p99), (merged_p50, merged_p99) = bench_latency(namespace, kubectl)
        per_minute = {i: bench_writes_per_minute(namespace, kubectl, i, 30.0) for i in (1, 10)}
        object_size, checkpoint_size = bench_size(namespace, kubectl)
    rows = [
        ("benchmark", "measured", "baseline", "ratio"),
        (
            f"fenced checkpoint write p50 ({WRITES} writes)",
            f"{fenced_p50:.2f} ms",
            f"{merged_p50:.2f} ms (merge patch, unfenced)",
            f"{fenced_p50 / merged_p50:.2f}x",
        ),
        (
            "fenced checkpoint write p99",
            f"{fenced_p99:.2f} ms",
            f"{merged_p99:.2f} ms",
            f"{fenced_p99 / merged_p99:.2f}x",
        ),
        (
            "API writes per job per minute, interval 1 s",
            f"{per_minute[1]:.1f}",
            "60 (one per interval)",
            f"{per_minute[1] / 60:.2f}x",
        ),
        (
            "API writes per job per minute, interval 10 s",
            f"{per_minute[10]:.1f}",
            "6 (one per interval)",
            f"{per_minute[10] / 6:.2f}x",
        ),
        (
            "ContinuableJob after 10 steps (JSON bytes)",
            str(object_size),
            f"{checkpoint_size} of it status.checkpoint; budget 16384",
            f"{checkpoint_size / 16384:.2f}x of budget",
        ),
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
