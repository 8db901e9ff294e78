"""SDK benchmarks, printed as a table; `make bench` runs them. Not a test: nothing here fails.

Each figure is compared side by side, in the same run, with a baseline that does the least the
same work could do, and the ratio is printed.
"""

from __future__ import annotations

import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tabulating import print_table

import continuable
from continuable.backends import Settings
from continuable.backends.localfile import LocalFileBackend
from continuable.backends.memory import MemoryBackend

CALLS = 1_000_000


class _Plain:
    __slots__ = ("cursor",)

    def __init__(self) -> None:
        self.cursor = 0


def _per_call_ns(loop: Callable[[], None], calls: int, repeats: int = 5) -> float:
    timings = []
    for _ in range(repeats):
        began = time.perf_counter_ns()
        loop()
        timings.append((time.perf_counter_ns() - began) / calls)
    return statistics.median(timings)


def bench_set() -> tuple[float, float]:
    """step.set(i) in a tight loop, against storing the same int on a plain object."""
    plain = _Plain()

    def baseline() -> None:
        for i in range(CALLS):
            plain.cursor = i

    measured: list[float] = []
    with continuable.Job(
        backend=MemoryBackend(Settings(interval_seconds=3600)),
        exit_process=False,
        handle_signals=False,
    ) as job:

        @job.step
        def hot(step: continuable.Step) -> None:
            def loop() -> None:
                for i in range(CALLS):
                    step.set(i)

            measured.append(_per_call_ns(loop, CALLS))

    return measured[0], _per_call_ns(baseline, CALLS)


def bench_writes(seconds: float = 5.0, interval: float = 1.0) -> tuple[int, int, float]:
    """1,000,000 set() calls spread over `seconds`, on the local file backend."""
    with tempfile.TemporaryDirectory() as folder:
        backend = LocalFileBackend(Path(folder) / "state.json", Settings(interval_seconds=interval))
        writes: list[int] = []
        with continuable.Job(backend=backend, exit_process=False, handle_signals=False) as job:

            @job.step
            def spread(step: continuable.Step) -> None:
                began = time.monotonic()
                batch = CALLS // 100
                for chunk in range(100):
                    for i in range(chunk * batch, (chunk + 1) * batch):
                        step.set(i)
                    pause = began + seconds * (chunk + 1) / 100 - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)

            writes.append(job._checkpointer.writes)
        steps = 1
        allowed = int(seconds / interval) + steps
        return writes[0], allowed, seconds


def bench_import(runs: int = 15) -> tuple[float, float]:
    """Wall time of `python -c "import continuable"` against `python -c "pass"`."""

    def median_ms(code: str) -> float:
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=os.environ)
            timings.append((time.perf_counter() - began) * 1000)
        return statistics.median(timings)

    return median_ms("import continuable"), median_ms("pass")


# A pod's client made ready, as the SDK makes it at a pod's start (no request is sent).
_IN_CLUSTER = (
    "import sys, pathlib\n"
    "from continuable.backends.incluster import InClusterJobApi\n"
    "InClusterJobApi.from_environment('job', 'ns', pathlib.Path(sys.argv[1]))\n"
)
_KUBECONFIG = (
    "from continuable.backends.kubeconfig import KubeconfigJobApi\nKubeconfigJobApi('job', 'ns')\n"
)
_KUBECONFIG_FILE = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def bench_client_start(runs: int = 5) -> tuple[float, float]:
    """CPU time (user + system) of a process that makes the in-pod client ready, against one
    that makes the kubernetes client ready from a kubeconfig; medians, in ms."""
    from tests.cluster.certificates import CertificateAuthority

    with tempfile.TemporaryDirectory() as folder:
        secrets = Path(folder)
        (secrets / "token").write_text("t")
        (secrets / "ca.crt").write_bytes(CertificateAuthority.create().cert_pem)
        (secrets / "kubeconfig").write_text(_KUBECONFIG_FILE)
        env = {
            **os.environ,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": "6443",
            "KUBECONFIG": str(secrets / "kubeconfig"),
        }

        def median_cpu_ms(code: str) -> float:
            timings = []
            for _ in range(runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run([sys.executable, "-c", code, folder], check=True, env=env)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                timings.append(cpu * 1000)
            return statistics.median(timings)

        return median_cpu_ms(_IN_CLUSTER), median_cpu_ms(_KUBECONFIG)


def main() -> None:
    logging.getLogger("continuable").setLevel(logging.WARNING)
    set_ns, plain_ns = bench_set()
    writes, allowed, seconds = bench_writes()
    import_ms, python_ms = bench_import()
    in_cluster_ms, kubernetes_ms = bench_client_start()
    rows = [
        ("benchmark", "measured", "baseline", "ratio", "note"),
        (
            "step.set(i), per call",
            f"{set_ns:.0f} ns",
            f"{plain_ns:.0f} ns (attribute store)",
            f"{set_ns / plain_ns:.2f}x",
            "target < 2000 ns",
        ),
        (
            f"backend writes, 1e6 set() over {seconds:.0f} s, interval 1 s",
            str(writes),
            f"{allowed} allowed",
            f"{writes / allowed:.2f}x",
            "target: 1 per interval + 1 per step",
        ),
        (
            "import continuable (process wall time)",
            f"{import_ms:.1f} ms",
            f"{python_ms:.1f} ms (python -c pass)",
            f"{import_ms / python_ms:.2f}x",
            f"import alone {import_ms - python_ms:.1f} ms, target < 100 ms",
        ),
        (
            "a pod's API client made ready (process CPU)",
            f"{in_cluster_ms:.0f} ms",
            f"{kubernetes_ms:.0f} ms (kubernetes client)",
            f"{in_cluster_ms / kubernetes_ms:.2f}x",
            "paid by every pod start",
        ),
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
