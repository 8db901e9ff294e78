"""The operator from the working tree, run as a process against a cluster (e2e tests, `make
cluster-up`): started on free loopback ports, ready once its /readyz answers."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from . import processes
from .ports import free_ports
from .processes import StartsAndStops
from .waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


class OperatorProcess(StartsAndStops):
    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        namespaces: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        die_with_parent: bool = True,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.namespaces = list(namespaces)
        self.extra_args = list(extra_args)
        self.die_with_parent = die_with_parent
        self.health_port, self.metrics_port = free_ports(2)
        self.record: processes.ProcessRecord | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "continuable_operator",
            "--bind-address",
            "127.0.0.1",
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            *self.extra_args,
        ]
        for namespace in self.namespaces:
            argv += ["--namespace", namespace]
        return argv

    def start(self, timeout: float = 60) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        _, self.record = processes.spawn(
            "continuable-operator",
            self.argv(),
            self.log_path,
            env=env,
            die_with_parent=self.die_with_parent,
        )
        wait_for(
            self.is_ready,
            timeout=timeout,
            what="the operator's /readyz",
            detail=lambda: processes.tail(self.log_path, 20),
        )
        return self

    def is_ready(self) -> bool:
        if self.record is None or not processes.is_running(self.record):
            raise RuntimeError(f"the operator exited:\n{processes.tail(self.log_path, 40)}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/readyz", timeout=2
            ) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.record is not None:
            processes.stop(self.record, grace=10.0)
            self.record = None

    def kill(self) -> None:
        """SIGKILL, as a node loss or an OOM kill would: no cleanup of any kind."""
        if self.record is not None:
            processes.signal_group(self.record, signal.SIGKILL)
            record = self.record
            wait_for(
                lambda: not processes.is_running(record),
                timeout=10,
                what="the killed operator to be gone",
            )
            self.record = None
