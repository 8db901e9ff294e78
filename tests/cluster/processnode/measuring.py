"""`python -m tests.cluster.processnode.measuring`: the process node's timings and footprint.

Starts a control plane and one node in this process, then measures (printed as JSON):
pod created -> Running (status seen through the API), DELETE -> SIGTERM seen by the process,
and the agent's CPU and RSS while 50 pods run. A script, not a test: numbers, not verdicts.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster import ControlPlane
from tests.cluster.waiting import wait_for

from .nodes import ProcessNodes
from .registering import NodeConfig
from .rest import ApiClient, ApiError, path_of, pod_path

NODE = "measured-node"
TERM_SCRIPT = """
import signal, sys, time
path = sys.argv[1]
def on_term(signum, frame):
    open(path, 'w').write(repr(time.time()))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(path + '.started', 'w').write('1')
time.sleep(600)
"""


def _pod(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "containers": [{"name": "main", "image": "none", "command": command}],
        },
    }


def _phase(api: ApiClient, name: str) -> str:
    try:
        return str(api.get(pod_path("default", name)).get("status", {}).get("phase", ""))
    except ApiError:
        return ""


def _exists(api: ApiClient, path: str) -> bool:
    try:
        api.get(path)
        return True
    except ApiError:
        return False


def _cpu_seconds() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    results: dict[str, Any] = {}
    with ControlPlane() as cp, tempfile.TemporaryDirectory() as tmp:
        admin = ApiClient.from_kubeconfig(cp.kubeconfig, Path(tmp) / "admin")
        pods_path = path_of("api", "v1", "namespaces", "default", "pods")
        account = path_of("api", "v1", "namespaces", "default", "serviceaccounts", "default")
        wait_for(lambda: _exists(admin, account), timeout=30, what="the default service account")
        with ProcessNodes(cp, [NodeConfig(name=NODE, pods="200", cpu="64")]):
            results["rss_mib_idle"] = round(_rss_mib(), 1)
            to_running, to_signal = [], []
            for i in range(10):
                name = f"timed-{i}"
                record = Path(tmp) / name
                began = time.monotonic()
                admin.post(pods_path, _pod(name, ["python", "-c", TERM_SCRIPT, str(record)]))
                wait_for(
                    lambda: _phase(admin, name) == "Running",  # noqa: B023 (called at once)
                    timeout=30,
                    what=name,
                    interval=0.01,
                    max_interval=0.01,
                )
                to_running.append(time.monotonic() - began)
                wait_for(
                    Path(f"{record}.started").exists,
                    timeout=30,
                    what="start",
                    interval=0.01,
                    max_interval=0.01,
                )
                deleted_at = time.time()
                admin.delete(pod_path("default", name))
                wait_for(
                    record.exists, timeout=30, what="SIGTERM", interval=0.01, max_interval=0.01
                )
                to_signal.append(float(record.read_text() or "0") - deleted_at)
            results["created_to_running_s"] = {
                "median": round(statistics.median(to_running), 3),
                "max": round(max(to_running), 3),
            }
            results["delete_to_sigterm_s"] = {
                "median": round(statistics.median(to_signal), 3),
                "max": round(max(to_signal), 3),
            }
            began = time.monotonic()
            for i in range(50):
                admin.post(pods_path, _pod(f"sleeper-{i}", ["sleep", "600"]))
            wait_for(
                lambda: (
                    sum(
                        p.get("status", {}).get("phase") == "Running"
                        for p in admin.get(pods_path)["items"]
                    )
                    >= 50
                ),
                timeout=120,
                what="50 running pods",
                interval=0.5,
            )
            results["fifty_pods_running_after_s"] = round(time.monotonic() - began, 2)
            window = 30.0
            cpu_before = _cpu_seconds()
            time.sleep(window)
            results["agent_cpu_percent_50_pods_idle"] = round(
                100 * (_cpu_seconds() - cpu_before) / window, 2
            )
            results["agent_rss_mib_50_pods"] = round(_rss_mib(), 1)
            results["agent_threads_50_pods"] = len(os.listdir("/proc/self/task"))
            began = time.monotonic()
            admin.delete(pods_path)
            wait_for(
                lambda: not admin.get(pods_path)["items"],
                timeout=120,
                what="all pods gone",
                interval=0.5,
            )
            results["delete_50_pods_gone_after_s"] = round(time.monotonic() - began, 2)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
