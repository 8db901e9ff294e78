"""A ContinuableJob next to batch/v1 Jobs doing the same work, each evicted INTERRUPTIONS times,
on one local control plane in one run; run by `make bench`.

The work (bench/jobs/items.py): ITEMS items of ITEM_SECONDS each, every item appended to a
ledger. Three runs side by side, each evicted (the Eviction API, as a node drain does) after its
pod has run RUN_SECONDS, INTERRUPTIONS times:

- ContinuableJob: the loop as a step with a cursor, the checkpoint every 10 s (the default);
- Job, podFailurePolicy: the best a user can write: `podFailurePolicy` Ignore on
  DisruptionTarget (an eviction is not a failure) and `podReplacementPolicy: Failed`;
- Job, backoffLimit: as most users write it: an eviction counts as a failure, and the Job
  controller backs off (10 s, doubling) before the next pod.

For each: the time from each eviction to the replacement Running, the items redone after each
interruption (done by the evicted pod and again by a later one), and the wall time to finish.
The table goes to stdout and to bench/results/versus-job.md, the figures to versus-job.json, the
plot to versus-job.png.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from podclock import PodClock
from tabulating import markdown_table, print_table

from tests.cluster.operating import OperatorProcess
from tests.cluster.processnode import NodeConfig, ProcessNodes
from tests.cluster.session import open_cluster, temporary_namespace
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import job_manifest

ITEMS = 400
ITEM_SECONDS = 0.1  # 40 s of work
INTERRUPTIONS = 5
RUN_SECONDS = 6.0
WORKER = Path(__file__).resolve().parent / "jobs" / "items.py"
RESULTS = Path(__file__).resolve().parent / "results"
VARIANT_LABEL = "bench.continuable.dev/variant"
# The backoffLimit Job backs off 10 + 20 + 40 + 80 + 160 s across five evictions.
FINISH_TIMEOUT = 900.0


@dataclass
class Variant:
    key: str
    title: str
    manifest: Callable[[str, Path], dict[str, Any]]
    finished: Callable[[Any, str], bool]
    delays: list[float] = field(default_factory=list)
    redone: list[int] = field(default_factory=list)
    wall: float = 0.0


def _environment(ledger: Path, resumable: bool) -> dict[str, str]:
    return {
        "ITEMS": str(ITEMS),
        "ITEM_SECONDS": str(ITEM_SECONDS),
        "LEDGER": str(ledger),
        "RESUMABLE": "1" if resumable else "0",
    }


def _continuable(key: str) -> Callable[[str, Path], dict[str, Any]]:
    def manifest(namespace: str, ledger: Path) -> dict[str, Any]:
        job = job_manifest(
            key,
            namespace,
            [sys.executable, str(WORKER)],
            _environment(ledger, resumable=True),
            checkpoint={"intervalSeconds": 10},
            maxResumptions=INTERRUPTIONS + 5,
        )
        job["spec"]["template"]["metadata"] = {"labels": {VARIANT_LABEL: key}}
        return job

    return manifest


def _batch_job(key: str, **policy: Any) -> Callable[[str, Path], dict[str, Any]]:
    def manifest(namespace: str, ledger: Path) -> dict[str, Any]:
        env = _environment(ledger, resumable=False)
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": key, "namespace": namespace},
            "spec": {
                "backoffLimit": INTERRUPTIONS + 1,
                **policy,
                "template": {
                    "metadata": {"labels": {VARIANT_LABEL: key}},
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 10,
                        "containers": [
                            {
                                "name": "work",
                                "image": "python",
                                "command": [sys.executable, str(WORKER)],
                                "env": [{"name": k, "value": v} for k, v in env.items()],
                            }
                        ],
                    },
                },
            },
        }

    return manifest


def _cjob_done(kubectl: Any, ref: str) -> bool:
    namespace, name = ref.split("/")
    phase = kubectl("get", "cjob", name, "-n", namespace, "-o", "jsonpath={.status.phase}")
    return str(phase).strip() == "Succeeded"


def _job_done(kubectl: Any, ref: str) -> bool:
    namespace, name = ref.split("/")
    succeeded = kubectl("get", "job", name, "-n", namespace, "-o", "jsonpath={.status.succeeded}")
    return succeeded.strip() == "1"


VARIANTS = [
    Variant("continuable", "ContinuableJob", _continuable("continuable"), _cjob_done),
    Variant(
        "job-policy",
        "Job, podFailurePolicy",
        _batch_job(
            "job-policy",
            podReplacementPolicy="Failed",
            podFailurePolicy={
                "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
            },
        ),
        _job_done,
    ),
    Variant("job-backoff", "Job, backoffLimit", _batch_job("job-backoff"), _job_done),
]


def evict(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
    core.create_namespaced_pod_eviction(pod, namespace, body)


def redone_per_attempt(ledger: Path) -> list[int]:
    """Items each attempt (a pid, in order of first line) did that a later attempt did again."""
    attempts: dict[str, list[int]] = {}
    for line in ledger.read_text().splitlines():
        item, pid = line.split()
        attempts.setdefault(pid, []).append(int(item))
    ordered = list(attempts.values())
    return [
        len(set(items) & {i for later in ordered[k + 1 :] for i in later})
        for k, items in enumerate(ordered)
    ]


def run_variant(
    variant: Variant,
    kubectl: Any,
    core: client.CoreV1Api,
    clock: PodClock,
    namespace: str,
    folder: Path,
) -> None:
    ledger = folder / f"{variant.key}.ledger"
    ledger.touch()
    began = time.monotonic()
    kubectl("apply", "-f", "-", input=json.dumps(variant.manifest(namespace, ledger)))
    evicted: set[str] = set()

    def live_pod() -> str | None:
        pods = clock.pods(VARIANT_LABEL, variant.key)
        return next(
            (p for p in pods if p in clock.running and p not in evicted and p not in clock.ended),
            None,
        )

    for number in range(1, INTERRUPTIONS + 1):
        pod = wait_for(
            live_pod, timeout=FINISH_TIMEOUT, what=f"{variant.key}: a pod Running", interval=0.05
        )
        time.sleep(max(0.0, clock.running[pod] + RUN_SECONDS - time.monotonic()))
        at = time.monotonic()
        evict(core, namespace, pod)
        evicted.add(pod)
        replacement = wait_for(
            live_pod,
            timeout=FINISH_TIMEOUT,
            what=f"{variant.key}: the pod after eviction {number} Running",
            interval=0.05,
        )
        variant.delays.append(clock.running[replacement] - at)
    wait_for(
        lambda: variant.finished(kubectl, f"{namespace}/{variant.key}"),
        timeout=FINISH_TIMEOUT,
        what=f"{variant.key} finished",
        interval=0.5,
    )
    variant.wall = time.monotonic() - began
    variant.redone = redone_per_attempt(ledger)[:INTERRUPTIONS]


def table(variants: list[Variant]) -> list[tuple[str, ...]]:
    ours = variants[0]
    rows: list[tuple[str, ...]] = [
        ("", *(v.title for v in variants), *(f"{v.title} / ours" for v in variants[1:]))
    ]

    def row(what: str, value: Callable[[Variant], float], form: str) -> None:
        mine = value(ours)
        ratios = [f"{value(v) / mine:.1f}x" if mine else "-" for v in variants[1:]]
        rows.append((what, *(form.format(value(v)) for v in variants), *ratios))

    row(
        "eviction -> replacement Running, median", lambda v: statistics.median(v.delays), "{:.1f} s"
    )
    row("eviction -> replacement Running, total", lambda v: sum(v.delays), "{:.1f} s")
    row(f"items redone ({INTERRUPTIONS} evictions)", lambda v: float(sum(v.redone)), "{:.0f}")
    wall = f"wall time ({ITEMS} items, {ITEMS * ITEM_SECONDS:.0f} s of work)"
    row(wall, lambda v: v.wall, "{:.1f} s")
    return rows


def plot(variants: list[Variant], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (delays, redone, wall) = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / len(variants)
    numbers = range(1, INTERRUPTIONS + 1)
    for index, variant in enumerate(variants):
        offsets = [n + (index - 1) * width for n in numbers]
        delays.bar(offsets, variant.delays, width, label=variant.title)
        redone.bar(offsets, variant.redone, width, label=variant.title)
    # The backoffLimit Job's delays double from 10 s: on a linear axis the others would vanish.
    delays.set_yscale("log")
    for axes, title, unit in (
        (delays, "eviction -> replacement Running", "seconds (log scale)"),
        (redone, "items redone after the eviction", f"items (of {ITEMS})"),
    ):
        axes.set_title(title)
        axes.set_xlabel("eviction")
        axes.set_ylabel(unit)
        axes.set_xticks(list(numbers))
    wall.bar(
        [v.title for v in variants],
        [v.wall for v in variants],
        color=["C0", "C1", "C2"][: len(variants)],
    )
    wall.axhline(ITEMS * ITEM_SECONDS, color="grey", linestyle="--", label="the work alone")
    wall.set_title(f"wall time to finish ({INTERRUPTIONS} evictions)")
    wall.set_ylabel("seconds")
    wall.legend()
    handles, labels = delays.get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=len(variants))
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    figure.savefig(path, dpi=100)


def main() -> None:
    with open_cluster() as cluster, tempfile.TemporaryDirectory() as folder:
        assert cluster.control_plane is not None, "the benchmark starts its own cluster"
        nodes = ProcessNodes(
            cluster.control_plane, [NodeConfig(name="bench-node", cpu="200", pods="250")]
        )
        with (
            nodes,
            OperatorProcess(cluster.kubeconfig, Path(folder) / "operator.log", namespaces=["op-*"]),
            temporary_namespace(cluster.kubectl, "versus", prefix="op-") as namespace,
        ):
            core = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
            clock = PodClock(core, namespace)
            errors: list[BaseException] = []

            def run(variant: Variant) -> None:
                try:
                    run_variant(variant, cluster.kubectl, core, clock, namespace, Path(folder))
                except BaseException as err:  # reported after the others finish
                    errors.append(err)

            # Daemons: a Ctrl-C ends the run (and the cluster) instead of waiting for them.
            threads = [threading.Thread(target=run, args=(v,), daemon=True) for v in VARIANTS]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            clock.stop()
            if errors:
                raise errors[0]
    rows = table(VARIANTS)
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "versus-job.md").write_text(markdown_table(rows))
    figures = {v.key: {"delays": v.delays, "redone": v.redone, "wall": v.wall} for v in VARIANTS}
    (RESULTS / "versus-job.json").write_text(json.dumps(figures, indent=1) + "\n")
    plot(VARIANTS, RESULTS / "versus-job.png")
    print(f"wrote {RESULTS / 'versus-job.md'} and {RESULTS / 'versus-job.png'}")


if __name__ == "__main__":
    main()
