"""`make bench-scale` (issue 24): the operator at 100, 300 and 1,000 running ContinuableJobs.

One local control plane (etcd, kube-apiserver with an audit log, the scheduler and the
controller-manager, whose Job controller is the baseline), kwok's fake nodes for the pods, the
operator as a process, and the fleet (fleet.py): every job pod's process is a real SDK job that
checkpoints at the default 10 s interval with its own service account's token. At each size:

- quiet: 30 s of checkpoints only; the operator's API requests in it (the target: none);
- relaunch: 10% of the jobs evicted per minute for 2 minutes; per relaunch, from the API
  server's answer to the old pod's exit report to its answer to the replacement's creation (the
  audit log's times: the operator's receipt of the event comes a little after the first, so
  this is an upper bound of the issue's measure), and the operator's requests per relaunch;
- new jobs: ContinuableJobs and batch/v1 Jobs created alternately, each from its creation to
  its first pod seen by one watch (the same clock for both);
- the operator's CPU (cores, averaged over the relaunch window) and peak RSS.

Then, at the largest size, the operator is stopped, finished jobs are added (5,000 by default)
and it is started again: the first relaunch after the start, the reconciles done over time, and
the relaunches of pods evicted during the first minute.

The tables go to stdout and bench/results/scale.md, the figures to scale.json, the plots to
scale.png. SCALE_SIZES (e.g. "50,100") and SCALE_FINISHED make a shorter run; SCALE_RUN_DIR
keeps the run's folder there (the audit log, the operator's and kwok's logs)
instead of a temporary one removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import auditing
from fleet import Fleets, Where
from kubernetes import client, config, watch
from sampling import cpu_seconds, percentile, rss_mib
from tabulating import markdown_table, print_table

from tests.cluster.kwok import NODE_LABEL, KwokProcess, fake_node
from tests.cluster.operating import OperatorProcess
from tests.cluster.session import open_cluster
from tests.cluster.waiting import wait_for

SIZES = tuple(int(s) for s in os.environ.get("SCALE_SIZES", "100,300,1000").split(","))
FINISHED = int(os.environ.get("SCALE_FINISHED", "5000"))
RUN_DIR = os.environ.get("SCALE_RUN_DIR")
NAMESPACE = "scale-bench"
NODES, PODS_PER_NODE = 4, 400
QUIET_SECONDS = 30.0
RELAUNCH_SECONDS = 120.0
INTERRUPTED_PER_MINUTE = 0.10
NEW_JOBS = 20  # of each kind, per size
GROW_STEP = 100
FLEET_PROCESSES = 4
SETTLED_CORES, SETTLE_SAMPLE_SECONDS, SETTLE_MAX_SECONDS = 0.3, 5.0, 120.0
NEW_JOB_GAP_SECONDS = 1.5
RESTART_EVICTIONS = 60  # one a second over the first minute after the restart
DOWN_EVICTIONS = 5  # while the operator is stopped
BENCH_AGENT = "continuable-bench"
FLEET_AGENT = f"{BENCH_AGENT}-fleet"
STAGES = Path(__file__).parent / "kwok" / "stages.yaml"
RESULTS = Path(__file__).parent / "results"
POD_SPEC: dict[str, Any] = {
    "nodeSelector": {NODE_LABEL: "true"},
    "containers": [{"name": "job", "image": "python", "command": ["python", "job.py"]}],
}


def continuable_job(name: str) -> dict[str, Any]:
    """A job with the defaults a user gets (10 s checkpoint interval)."""
    return {
        "apiVersion": "continuable.dev/v1alpha1",
        "kind": "ContinuableJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"template": {"spec": POD_SPEC}},
    }


def batch_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}},
    }


# Measuring.


@dataclass
class Window:
    """A stretch of the run: its wall-clock bounds and the operator's CPU and peak RSS."""

    began: float = 0.0
    ended: float = 0.0
    cores: float = 0.0
    rss: float = 0.0


def measured(pid: int, seconds: float, work: Any = None) -> Window:
    """Run `work()` (if any) on a thread for `seconds`, sampling the operator meanwhile."""
    window = Window(began=time.time())
    cpu, began = cpu_seconds(pid), time.monotonic()
    thread = threading.Thread(target=work, daemon=True) if work else None
    if thread:
        thread.start()
    while time.monotonic() - began < seconds:
        window.rss = max(window.rss, rss_mib(pid))
        time.sleep(1.0)
    window.cores = (cpu_seconds(pid) - cpu) / (time.monotonic() - began)
    window.ended = time.time()
    if thread:
        thread.join(timeout=60)
    return window


class PodWatch:
    """When each pod of the namespace was first seen, and its owner's name (one watch, so both
    kinds of job are timed by the same clock)."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.first_seen: dict[str, float] = {}  # owner name -> first pod seen
        self._core = core
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(
                    self._core.list_namespaced_pod, NAMESPACE, timeout_seconds=30
                ):
                    now, pod = time.time(), event["object"]
                    for owner in pod.metadata.owner_references or []:
                        self.first_seen.setdefault(owner.name, now)
            except Exception:
                time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()


# The load.


@dataclass
class Bench:
    kubectl: Any
    custom: client.CustomObjectsApi
    core: client.CoreV1Api
    batch: client.BatchV1Api
    operator: OperatorProcess
    fleet: Fleets
    pods: PodWatch
    created: int = 0
    evicted: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.operator.record is not None
        return self.operator.record.pid

    def create_jobs(self, names: list[str]) -> None:
        def create(name: str) -> None:
            self.custom.create_namespaced_custom_object(
                "continuable.dev", "v1alpha1", NAMESPACE, "continuablejobs", continuable_job(name)
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))

    def grow(self, size: int) -> None:
        """Add jobs up to `size`, a step of `GROW_STEP` at a time, each step's pods running and
        checkpointing before the next: a thousand jobs created at once start a thousand SDK
        clients at once, and on two cores that stampede pushed the API server's latency past
        the clients' timeouts, whose reconnections kept it there (measured: 8,000 requests a
        minute fell to 500 and stayed)."""
        while self.created < size:
            step = min(self.created + GROW_STEP, size)
            self.create_jobs([f"job-{n:05d}" for n in range(self.created, step)])
            self.created = step
            wait_for(
                lambda step=step: self.fleet.running() >= step,  # type: ignore[misc]
                timeout=60 + GROW_STEP * 1.0,
                what=f"{step} job pods running and checkpointing",
                interval=1,
                detail=lambda: (
                    f"{self.fleet.running()} running; fleet errors: {self.fleet.errors[-3:]}"
                ),
            )

    def evict_one(self) -> None:
        running = [n for n in self.fleet.names() if n not in self.evicted]
        if not running:
            return
        name = random.choice(running)
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=NAMESPACE))
        try:
            self.core.create_namespaced_pod_eviction(name, NAMESPACE, body)
            self.evicted.append(name)
        except client.ApiException as err:
            # Gone or being deleted already, a budget, or the API server too busy to answer in
            # time (a 504 under the load): the next tick evicts another.
            if err.status not in (404, 409, 429) and err.status < 500:
                raise

    def evict_steadily(self, per_second: float, seconds: float) -> None:
        began = time.monotonic()
        count = 0
        while time.monotonic() - began < seconds:
            due = began + count / per_second
            time.sleep(max(0.0, due - time.monotonic()))
            self.evict_one()
            count += 1

    def new_jobs(self, size: int) -> tuple[dict[str, float], dict[str, float]]:
        """Creation times of the new ContinuableJobs and of the batch/v1 Jobs, by name."""
        ours: dict[str, float] = {}
        theirs: dict[str, float] = {}
        for index in range(NEW_JOBS):
            name = f"new-{size}-{index}"
            self.custom.create_namespaced_custom_object(
                "continuable.dev", "v1alpha1", NAMESPACE, "continuablejobs", continuable_job(name)
            )
            ours[name] = time.time()
            time.sleep(NEW_JOB_GAP_SECONDS)
            name = f"batch-{size}-{index}"
            self.batch.create_namespaced_job(NAMESPACE, batch_job(name))
            theirs[name] = time.time()
            time.sleep(NEW_JOB_GAP_SECONDS)
        return ours, theirs

    def remove(self, ours: list[str], theirs: list[str]) -> None:
        for name in ours:
            self.custom.delete_namespaced_custom_object(
                "continuable.dev", "v1alpha1", NAMESPACE, "continuablejobs", name
            )
        for name in theirs:
            self.batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")


@dataclass
class Size:
    jobs: int
    quiet: Window
    relaunch: Window
    ours_new: dict[str, float]
    theirs_new: dict[str, float]
    new_seen: dict[str, float]
    evicted: int


def settle(pid: int) -> None:
    """Wait until the operator is done with the launches' tail (its Running writes and Events
    come after the pods): its CPU under `SETTLED_CORES` over a few seconds, or a time limit."""
    deadline = time.monotonic() + SETTLE_MAX_SECONDS
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(SETTLE_SAMPLE_SECONDS)
        if (cpu_seconds(pid) - before) / SETTLE_SAMPLE_SECONDS < SETTLED_CORES:
            return


def run_size(bench: Bench, size: int) -> Size:
    bench.grow(size)
    print(f"{size} jobs running", flush=True)
    settle(bench.pid)
    time.sleep(10)  # every job checkpoints once more
    quiet = measured(bench.pid, QUIET_SECONDS)
    bench.evicted.clear()
    rate = size * INTERRUPTED_PER_MINUTE / 60
    print(f"{size} jobs: the relaunch window", flush=True)
    relaunch = measured(
        bench.pid, RELAUNCH_SECONDS, lambda: bench.evict_steadily(rate, RELAUNCH_SECONDS)
    )
    evicted = len(bench.evicted)
    time.sleep(10)  # the last relaunches land
    print(f"{size} jobs: new jobs", flush=True)
    ours, theirs = bench.new_jobs(size)
    time.sleep(10)
    seen = dict(bench.pods.first_seen)
    bench.remove(list(ours), list(theirs))
    return Size(size, quiet, relaunch, ours, theirs, seen, evicted)


@dataclass
class Restart:
    started: float
    ready: float
    evictions_began: float
    reconciles: list[tuple[float, float]]  # (seconds since the start, reconciles done)
    window: Window


def _reconciles(metrics_url: str) -> float | None:
    try:
        with urllib.request.urlopen(metrics_url, timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("continuable_reconcile_duration_seconds_count"):
            return float(line.split()[-1])
    return None


def finish_jobs(bench: Bench, count: int) -> None:
    """Add `count` jobs that ended before the operator's restart (created and marked Succeeded
    while it is stopped: their pods are long gone)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "status": {
            "phase": "Succeeded",
            "attempt": 1,
            "startTime": now,
            "completionTime": now,
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "Completed",
                    "message": "finished before the restart",
                    "lastTransitionTime": now,
                }
            ],
        }
    }

    def create(index: int) -> None:
        name = f"done-{index:05d}"
        bench.custom.create_namespaced_custom_object(
            "continuable.dev", "v1alpha1", NAMESPACE, "continuablejobs", continuable_job(name)
        )
        bench.custom.patch_namespaced_custom_object_status(
            "continuable.dev", "v1alpha1", NAMESPACE, "continuablejobs", name, status
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def run_restart(bench: Bench) -> Restart:
    bench.operator.stop()
    finish_jobs(bench, FINISHED)
    bench.evicted.clear()
    # Pods that ended while the operator was down: their relaunch is the first it owes.
    exits = bench.fleet.exits
    for _ in range(DOWN_EVICTIONS):
        bench.evict_one()
    wait_for(
        lambda: bench.fleet.exits >= exits + len(bench.evicted),
        timeout=60,
        what="the pods evicted while the operator is down to end",
    )
    started = time.time()
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            found = _reconciles(bench.operator.metrics_url)
            if found is not None:
                samples.append((time.time() - started, found))
            time.sleep(0.5)

    bench.operator.start(timeout=120)
    ready = time.time()
    threading.Thread(target=sample, daemon=True).start()
    evictions_began = time.time()
    window = measured(
        bench.pid, RESTART_EVICTIONS, lambda: bench.evict_steadily(1.0, RESTART_EVICTIONS)
    )
    time.sleep(10)
    done.set()
    return Restart(started, ready, evictions_began, samples, window)


# Reading the audit log.


def _attempt(pod: str) -> tuple[str, int] | None:
    job, _, number = pod.rpartition("-")
    return (job, int(number)) if number.isdigit() else None


def is_operator(request: auditing.Request) -> bool:
    """The operator's requests: of the admin user (which kubectl, the bench, the fleet's exit
    reports and kwok use too, each with its own user agent), never a control plane
    component's or a job's service account (system:...)."""
    return not request.user.startswith("system:") and not request.agent.startswith(
        ("kubectl", BENCH_AGENT, "kwok")
    )


def reactions(requests: list[auditing.Request], since: float, until: float) -> list[float]:
    """Per relaunch in the window: the operator's creation of attempt n's pod, after the fleet's
    exit report of attempt n-1's (both as the API server answered them)."""
    return [pod - began for _, began, pod in relaunch_times(requests, since, until)]


def relaunch_times(
    requests: list[auditing.Request], since: float, until: float
) -> list[tuple[str, float, float]]:
    """Per relaunch in the window: (its job, the old pod's exit report, the new pod's
    creation)."""
    reported: dict[str, float] = {}
    found: list[tuple[str, float, float]] = []
    for request in requests:
        if request.agent.startswith(FLEET_AGENT) and request.resource == "pods/status":
            reported[request.name] = request.at
        elif (
            request.verb == "create"
            and request.resource == "pods"
            and is_operator(request)
            and since <= request.at <= until
        ):
            attempt = _attempt(request.name)
            if attempt and attempt[1] > 1:
                previous = f"{attempt[0]}-{attempt[1] - 1}"
                if previous in reported:
                    found.append((attempt[0], reported[previous], request.at))
    return found


def first_writes(
    requests: list[auditing.Request], starts: list[tuple[str, float, float]]
) -> list[tuple[float, float]]:
    """Per (job, began, pod created): how long the operator took to make its first write for
    the job after `began` (learning of it: the watch and the operator's queues), and from that
    write to the pod (its own writes). The operator's writes for a job name the job or start
    with its name (pods, results, RBAC objects)."""
    found = []
    writes = [r for r in requests if is_operator(r) and r.verb not in ("get", "list", "watch")]
    for job, began, pod in starts:
        first = next(
            (
                r.at
                for r in writes
                if began <= r.at <= pod and (r.name == job or r.name.startswith(job + "-"))
            ),
            None,
        )
        if first is not None:
            found.append((first - began, pod - first))
    return found


def first_pods(requests: list[auditing.Request], jobs: dict[str, float]) -> list[float]:
    """Per new ContinuableJob: from the API server's answer to its creation to its answer to the
    operator's creation of the first pod."""
    return [pod - created for _, created, pod in first_pod_times(requests, jobs)]


def first_pod_times(
    requests: list[auditing.Request], jobs: dict[str, float]
) -> list[tuple[str, float, float]]:
    """Per new ContinuableJob: (its name, its creation, its first pod's creation)."""
    created = {
        r.name: r.at
        for r in requests
        if r.verb == "create" and r.resource == "continuablejobs" and r.name in jobs
    }
    pods = {
        r.name: r.at
        for r in requests
        if r.verb == "create" and r.resource == "pods" and is_operator(r)
    }
    return [(n, created[n], pods[f"{n}-1"]) for n in jobs if n in created and f"{n}-1" in pods]


# Reporting.


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _p50_p99(seconds: list[float]) -> str:
    if not seconds:
        return "none"
    return f"{_ms(statistics.median(seconds))} / {_ms(percentile(seconds, 0.99))}"


def size_rows(sizes: list[Size], requests: list[auditing.Request]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("figure", *(f"{s.jobs} jobs" for s in sizes), "target")]

    def add(what: str, values: list[str], target: str) -> None:
        rows.append((what, *values, target))

    per_size = []
    splits = []
    for s in sizes:
        reacted = reactions(requests, s.relaunch.began, s.relaunch.ended + 10)
        calls = auditing.count(requests, s.relaunch.began, s.relaunch.ended, client=is_operator)
        quiet = auditing.count(requests, s.quiet.began, s.quiet.ended, client=is_operator)
        checkpoints = sum(
            1
            for r in requests
            if s.quiet.began <= r.at <= s.quiet.ended
            and r.resource == "continuablejobs/status"
            and r.user.startswith("system:serviceaccount:")
        )
        ours_watch = [s.new_seen[n] - t for n, t in s.ours_new.items() if n in s.new_seen]
        theirs_watch = [s.new_seen[n] - t for n, t in s.theirs_new.items() if n in s.new_seen]
        ours_audit = first_pods(requests, s.ours_new)
        relaunch_split = first_writes(
            requests, relaunch_times(requests, s.relaunch.began, s.relaunch.ended + 10)
        )
        new_split = first_writes(requests, first_pod_times(requests, s.ours_new))
        per_size.append(
            (s, reacted, calls, quiet, checkpoints, ours_watch, theirs_watch, ours_audit)
        )
        splits.append((relaunch_split, new_split))
    add("relaunches measured", [str(len(p[1])) for p in per_size], "10%/min of the jobs")
    add(
        "reaction p50 (exit report -> new pod)",
        [_ms(statistics.median(p[1])) for p in per_size],
        "<= 100 ms",
    )
    add("reaction p99", [_ms(percentile(p[1], 0.99)) for p in per_size], "<= 500 ms")
    for what, index in (("relaunch", 0), ("new job", 1)):
        for part, label in ((0, "learning (-> first write)"), (1, "writing (first write -> pod)")):
            add(
                f"  {what}: {label} p50 / p99",
                [_p50_p99([pair[part] for pair in split[index]]) for split in splits],
                "",
            )
    add(
        "API requests per relaunch (audit log)",
        [f"{sum(p[2].values()) / max(len(p[1]), 1):.1f}" for p in per_size],
        "<= 4",
    )
    add(
        f"operator requests in {QUIET_SECONDS:.0f} s of checkpoints only",
        [f"{sum(p[3].values())} (for {p[4]} checkpoint writes)" for p in per_size],
        "0",
    )
    add(
        "operator CPU (cores, relaunch window)",
        [f"{p[0].relaunch.cores:.2f}" for p in per_size],
        "<= 0.5",
    )
    add("operator RSS (peak)", [f"{p[0].relaunch.rss:.0f} MiB" for p in per_size], "<= 300 MiB")
    add(
        "new job -> first pod, batch/v1 Job p50 (watch)",
        [_ms(statistics.median(p[6])) for p in per_size],
        "baseline",
    )
    add(
        "new job -> first pod, ContinuableJob p50 (watch)",
        [_ms(statistics.median(p[5])) for p in per_size],
        "<= 2x baseline",
    )
    add(
        "  ratio",
        [f"{statistics.median(p[5]) / statistics.median(p[6]):.2f}x" for p in per_size],
        "<= 2.00x",
    )
    add(
        "new ContinuableJob -> first pod p50 (audit log)",
        [_ms(statistics.median(p[7])) for p in per_size],
        "",
    )
    add(
        "relaunch p50 / batch/v1 Job first pod p50",
        [f"{statistics.median(p[1]) / statistics.median(p[6]):.2f}x" for p in per_size],
        "<= 2.00x",
    )
    return rows


def restart_rows(
    restart: Restart, requests: list[auditing.Request], running: int
) -> list[tuple[str, ...]]:
    reacted = reactions(requests, restart.started, restart.window.ended + 10)
    creates = sorted(
        r.at
        for r in requests
        if r.verb == "create"
        and r.resource == "pods"
        and is_operator(r)
        and r.at >= restart.started
        and (_attempt(r.name) or ("", 0))[1] > 1
    )
    first = creates[0] - restart.started if creates else float("nan")

    def reached(count: float) -> str:
        when = next((t for t, done in restart.reconciles if done >= count), None)
        return f"{when:.1f} s" if when is not None else "not reached"

    return [
        ("after a restart with", f"{running} running + {FINISHED} finished jobs", "target"),
        ("operator start -> ready (/readyz)", f"{restart.ready - restart.started:.1f} s", ""),
        (
            f"operator start -> first relaunch ({DOWN_EVICTIONS} pods ended while it was down)",
            f"{first:.1f} s",
            "<= 5 s",
        ),
        (
            f"start -> {running} reconciles done",
            reached(running),
            "<= 30 s (every running job adopted)",
        ),
        (f"start -> {running + FINISHED} reconciles done", reached(running + FINISHED), ""),
        (
            f"reaction p50 / p99, {len(reacted)} evictions in the first minute",
            f"{_ms(statistics.median(reacted))} / {_ms(percentile(reacted, 0.99))}"
            if reacted
            else "none",
            "finished jobs never delay a relaunch",
        ),
        (
            "operator CPU / peak RSS over that minute",
            f"{restart.window.cores:.2f} cores / {restart.window.rss:.0f} MiB",
            "",
        ),
    ]


def plot(sizes: list[Size], requests: list[auditing.Request], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    jobs = [s.jobs for s in sizes]
    reacted = [reactions(requests, s.relaunch.began, s.relaunch.ended + 10) for s in sizes]
    figure, (cpu, rss, reaction) = plt.subplots(1, 3, figsize=(15, 4.5))
    cpu.plot(jobs, [s.relaunch.cores for s in sizes], "o-")
    cpu.axhline(0.5, color="grey", linestyle="--", label="target 0.5 core")
    cpu.set_title("operator CPU")
    cpu.set_ylabel("cores")
    rss.plot(jobs, [s.relaunch.rss for s in sizes], "o-")
    rss.axhline(300, color="grey", linestyle="--", label="target 300 MiB")
    rss.set_title("operator peak RSS")
    rss.set_ylabel("MiB")
    reaction.plot(jobs, [statistics.median(r) * 1000 for r in reacted], "o-", label="p50")
    reaction.plot(jobs, [percentile(r, 0.99) * 1000 for r in reacted], "s-", label="p99")
    reaction.axhline(100, color="C0", linestyle=":", label="target p50 100 ms")
    reaction.axhline(500, color="C1", linestyle=":", label="target p99 500 ms")
    reaction.set_title("relaunch: exit report -> new pod")
    reaction.set_ylabel("ms")
    for axes in (cpu, rss, reaction):
        axes.set_xlabel("running ContinuableJobs (10%/min interrupted)")
        axes.set_xticks(jobs)
        axes.set_ylim(bottom=0)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


@contextlib.contextmanager
def run_folder() -> Iterator[str]:
    """SCALE_RUN_DIR (made afresh, kept), else a temporary folder."""
    if not RUN_DIR:
        with tempfile.TemporaryDirectory() as folder:
            yield folder
        return
    kept = Path(RUN_DIR)
    kept.mkdir(parents=True, exist_ok=False)
    print(f"keeping the run's folder: {kept}", flush=True)
    yield str(kept)


def main() -> None:
    with (
        run_folder() as folder,
        open_cluster(extra_apiserver_args=auditing.apiserver_args(Path(folder))) as cluster,
    ):
        assert cluster.control_plane is not None, "the benchmark starts its own cluster"
        with KwokProcess(cluster.kubeconfig, Path(folder) / "kwok.log", STAGES):
            for index in range(NODES):
                cluster.kubectl(
                    "apply",
                    "-f",
                    "-",
                    input=json.dumps(fake_node(f"kwok-{index}", pods=PODS_PER_NODE)),
                )
            cluster.kubectl("create", "namespace", NAMESPACE)
            wait_for(
                lambda: "default" in cluster.kubectl("get", "sa", "-n", NAMESPACE, "-o", "name"),
                timeout=60,
                what="the namespace's default service account",
            )
            api = config.new_client_from_config(str(cluster.kubeconfig))
            api.user_agent = BENCH_AGENT
            server = urlparse(cluster.control_plane.server)
            where = Where(
                kubeconfig=cluster.kubeconfig,
                agent=FLEET_AGENT,
                namespace=NAMESPACE,
                folder=Path(folder) / "fleet",
                host=str(server.hostname),
                port=int(server.port or 443),
                ca_file=cluster.control_plane.ca_file,
            )
            fleet = Fleets(where, FLEET_PROCESSES)
            operator = OperatorProcess(
                cluster.kubeconfig, Path(folder) / "operator.log", namespaces=["scale-*"]
            )
            with operator, fleet:
                bench = Bench(
                    cluster.kubectl,
                    client.CustomObjectsApi(api),
                    client.CoreV1Api(api),
                    client.BatchV1Api(api),
                    operator,
                    fleet,
                    PodWatch(client.CoreV1Api(api)),
                )
                sizes = []
                for size in SIZES:
                    sizes.append(run_size(bench, size))
                    print(f"{size} jobs measured", flush=True)
                restart = run_restart(bench) if FINISHED else None
                fleet.stop()
                errors = list(fleet.errors)
        requests = auditing.read(Path(folder) / "audit.log")
    rows = size_rows(sizes, requests)
    print_table(rows)
    text = markdown_table(rows)
    if restart is not None:
        print()
        more = restart_rows(restart, requests, SIZES[-1])
        print_table(more)
        text += "\n" + markdown_table(more)
    last = sizes[-1]
    for title, window, per in (
        (f"{QUIET_SECONDS:.0f} s of checkpoints only", last.quiet, 1),
        ("the relaunch window, per relaunch", last.relaunch, 0),
    ):
        calls = Counter(
            f"{r.verb} {r.resource}"
            for r in requests
            if window.began <= r.at <= window.ended and r.verb != "watch" and is_operator(r)
        )
        relaunches = len(reactions(requests, window.began, window.ended))
        divisor = per or max(relaunches, 1)
        breakdown = [("request", "count")] + (
            [(k, f"{v / divisor:.2f}") for k, v in calls.most_common()] or [("none", "0")]
        )
        print(f"\nthe operator's requests at {last.jobs} jobs, {title} (audit log):")
        print_table(breakdown)
        text += f"\nThe operator's requests at {last.jobs} jobs, {title}:\n\n"
        text += markdown_table(breakdown)
    if errors:
        print(f"\nthe fleet's errors ({len(errors)}), first: {errors[:3]}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.md").write_text(text)
    figures = {
        "sizes": [
            {
                "jobs": s.jobs,
                "cores": s.relaunch.cores,
                "rss_mib": s.relaunch.rss,
                "reactions": reactions(requests, s.relaunch.began, s.relaunch.ended + 10),
            }
            for s in sizes
        ]
    }
    (RESULTS / "scale.json").write_text(json.dumps(figures, indent=1) + "\n")
    plot(sizes, requests, RESULTS / "scale.png")
    print(f"wrote {RESULTS / 'scale.md'} and {RESULTS / 'scale.png'}")


if __name__ == "__main__":
    main()
