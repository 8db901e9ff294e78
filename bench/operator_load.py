"""Operator benchmarks on the local control plane, printed as a table; run by `make bench`.

- relaunch latency: from an interrupted pod observed terminal to its replacement observed
  Running, over 20 interruptions of one job (side by side: the pod's own start latency);
- the operator's API requests per relaunch over those 20, counted by the API server (its audit
  log), against issue 24's target of 4;
- the operator's CPU and memory while 100 jobs each checkpoint every second, against the
  operator idle.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import auditing
from kubernetes import client, config
from podclock import PodClock
from sampling import cpu_seconds, percentile, rss_mib
from tabulating import print_table

from tests.cluster.operating import OperatorProcess
from tests.cluster.processnode import NodeConfig, ProcessNodes
from tests.cluster.session import open_cluster, temporary_namespace
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import job_manifest

INTERRUPTIONS = 20
SETTLE_SECONDS = 3.0
BENCH_AGENT = "continuable-bench"
JOBS = 100
TICKS = "bench/jobs/ticker.py"


def _usage(pid: int, seconds: float) -> tuple[float, float]:
    began, cpu = time.monotonic(), cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.monotonic() - began) * 100, rss_mib(pid)


def bench_relaunch(
    kubectl: Any, core: client.CoreV1Api, namespace: str, folder: Path
) -> tuple[list[float], list[float], tuple[float, float]]:
    """Relaunch and pod start latencies, and the wall-clock window of the relaunches."""
    manifest = job_manifest(
        "relaunch",
        namespace,
        [sys.executable, TICKS],
        {"TICK_SECONDS": "600", "EVENTS": str(folder / "events")},
    )
    clock = PodClock(core, namespace)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    relaunch, start = [], []
    since = 0.0
    for attempt in range(1, INTERRUPTIONS + 1):
        pod, nxt = f"relaunch-{attempt}", f"relaunch-{attempt + 1}"
        wait_for(lambda p=pod: p in clock.running, timeout=60, what=f"{pod} running")
        since = since or time.time()
        kubectl("delete", "pod", pod, "-n", namespace, "--wait=false")
        wait_for(lambda p=nxt: p in clock.running, timeout=60, what=f"{nxt} running")
        relaunch.append(clock.running[nxt] - clock.ended[pod])
        start.append(clock.running[nxt] - clock.created[nxt])
    # What the operator does once the last pod runs (its status says Running) is part of it.
    time.sleep(SETTLE_SECONDS)
    clock.stop()
    window = (since, time.time())
    kubectl("delete", "cjob", "relaunch", "-n", namespace, "--wait=false")
    return relaunch, start, window


def bench_load(
    kubectl: Any, operator: OperatorProcess, namespace: str
) -> tuple[tuple[float, float], tuple[float, float]]:
    assert operator.record is not None
    idle = _usage(operator.record.pid, 10)
    for index in range(JOBS):
        manifest = job_manifest(
            f"tick-{index}", namespace, [sys.executable, TICKS], {"TICK_SECONDS": "120"}
        )
        kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_for(
        lambda: (
            kubectl(
                "get",
                "pods",
                "-n",
                namespace,
                "--field-selector=status.phase=Running",
                "-o",
                "name",
            ).count("pod/")
            >= JOBS
        ),
        timeout=240,
        what=f"{JOBS} job pods running",
        interval=2,
    )
    loaded = _usage(operator.record.pid, 30)
    return idle, loaded


def is_operator(request: auditing.Request) -> bool:
    """The operator's requests: the bench's own user, but neither kubectl nor the bench's
    watch; never a node's, a pod's or a control plane component's (system:...)."""
    return not request.user.startswith("system:") and not request.agent.startswith(
        ("kubectl", BENCH_AGENT)
    )


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        open_cluster(extra_apiserver_args=auditing.apiserver_args(Path(folder))) as cluster,
    ):
        assert cluster.control_plane is not None, "the benchmark starts its own cluster"
        nodes = ProcessNodes(
            cluster.control_plane, [NodeConfig(name="bench-node", cpu="200", pods="250")]
        )
        with (
            nodes,
            OperatorProcess(
                cluster.kubeconfig, Path(folder) / "operator.log", namespaces=["op-*"]
            ) as operator,
        ):
            api = config.new_client_from_config(str(cluster.kubeconfig))
            api.user_agent = BENCH_AGENT
            core = client.CoreV1Api(api)
            with temporary_namespace(cluster.kubectl, "relaunch", prefix="op-") as namespace:
                relaunch, start, window = bench_relaunch(
                    cluster.kubectl, core, namespace, Path(folder)
                )
            calls = auditing.count(
                auditing.read(Path(folder) / "audit.log"), *window, client=is_operator
            )
            with temporary_namespace(cluster.kubectl, "load", prefix="op-") as namespace:
                (idle_cpu, idle_rss), (cpu, rss) = bench_load(cluster.kubectl, operator, namespace)
                cluster.kubectl("delete", "cjob", "--all", "-n", namespace, "--wait=false")
    p50, p99 = statistics.median(relaunch), percentile(relaunch, 0.99)
    s50, s99 = statistics.median(start), percentile(start, 0.99)
    rows = [
        ("benchmark", "measured", "baseline", "ratio"),
        (
            f"relaunch latency p50 ({INTERRUPTIONS} interruptions)",
            f"{p50:.2f} s",
            f"{s50:.2f} s (pod created -> Running)",
            f"{p50 / s50:.2f}x",
        ),
        ("relaunch latency p99", f"{p99:.2f} s", f"{s99:.2f} s", f"{p99 / s99:.2f}x"),
        (
            f"operator CPU, {JOBS} jobs checkpointing every 1 s",
            f"{cpu:.1f} %",
            f"{idle_cpu:.1f} % (idle)",
            f"{cpu / max(idle_cpu, 0.1):.1f}x",
        ),
        (
            f"operator RSS, {JOBS} jobs",
            f"{rss:.0f} MiB",
            f"{idle_rss:.0f} MiB (idle)",
            f"{rss / idle_rss:.2f}x",
        ),
    ]
    per_relaunch = sum(calls.values()) / INTERRUPTIONS
    rows.append(
        (
            "operator API requests per relaunch (audit log)",
            f"{per_relaunch:.1f}",
            "4 (issue 24's target)",
            f"{per_relaunch / 4:.2f}x",
        )
    )
    print_table(rows)
    print(f"\nthe operator's requests over {INTERRUPTIONS} relaunches, from the audit log:")
    print_table([("request", "count")] + [(k, str(v)) for k, v in calls.most_common()])


if __name__ == "__main__":
    main()
