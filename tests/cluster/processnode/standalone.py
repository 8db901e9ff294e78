"""One process node in a process of its own (`python -m tests.cluster.processnode`), for the
tests that must freeze a node: SIGSTOP to the agent stops its heartbeats, its watch and its
status reports, while its pods' processes (each in a session of its own) keep running and
writing, as on a node cut off from the API server. SIGCONT lets it catch up.

The agent runs in a session of its own too, so its recorded pid is its process group and the
signals reach the agent alone, never a pod. stop() always continues it first: a stopped process
would hold a SIGTERM pending forever.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.cluster import processes
from tests.cluster.processes import StartsAndStops
from tests.cluster.waiting import wait_for

from .nodes import IssuesKubeconfigs, node_kubeconfig
from .running import REPO_ROOT, kill_recorded

# The agent stops its pods on SIGTERM (SIGTERM, their grace period, SIGKILL): give it that long.
STOP_GRACE_SECONDS = 40.0


class StandaloneNode(StartsAndStops):
    def __init__(
        self,
        cluster: IssuesKubeconfigs,
        name: str,
        *,
        cpu: str = "4",
        work_dir: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.cpu = cpu
        self._requested_dir = work_dir
        self._work_dir: Path | None = None
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.record: processes.ProcessRecord | None = None
        self.paused = False

    @property
    def work_dir(self) -> Path:
        """Its identity, state and logs; made by start(), removed by stop()."""
        if self._work_dir is None:
            raise RuntimeError(f"the standalone node {self.name} has not been started")
        return self._work_dir

    @property
    def log_path(self) -> Path:
        """The agent's own log (its stderr): registration, watch, pod workers."""
        return self.work_dir / "agent.log"

    def pod_log(
        self, namespace: str, pod: str, uid: str, container: str = "job", restart: int = 0
    ) -> Path:
        """Where the node keeps a container's output (the kubelet's /var/log/pods layout)."""
        folder = self.work_dir / self.name / "state" / "logs" / f"{namespace}_{pod}_{uid}"
        return folder / container / f"{restart}.log"

    def start(self) -> StandaloneNode:
        if self._requested_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="continuable-standalone-"))
        else:
            self._work_dir = self._requested_dir
            self._work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.chmod(0o700)
        kubeconfig = node_kubeconfig(self.cluster, self.name, self.work_dir / "identity")
        argv = [
            sys.executable,
            "-m",
            "tests.cluster.processnode",
            "--kubeconfig",
            str(kubeconfig),
            "--name",
            self.name,
            "--cpu",
            self.cpu,
            "--state-dir",
            str(self.work_dir),
            "--cwd",
            str(REPO_ROOT),
        ]
        # The module must import from the repository wherever pytest was started.
        path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}
        self.proc, self.record = processes.spawn(
            f"processnode-{self.name}", argv, self.log_path, env=env
        )
        try:
            wait_for(
                self._registered,
                timeout=self.start_timeout,
                what=f"the standalone node {self.name} to register",
                detail=lambda: processes.tail(self.log_path, 30),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _registered(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"node {self.name} exited:\n{processes.tail(self.log_path, 30)}")
        return f"node {self.name} ready" in self.log_path.read_text(errors="replace")

    def state(self) -> str | None:
        """The agent's scheduling state as /proc shows it ('T' when stopped); None when gone."""
        if self.record is None or not processes.is_running(self.record):
            return None
        raw = Path(f"/proc/{self.record.pid}/stat").read_text()
        return raw[raw.rindex(")") + 2 :].split()[0]

    def pause(self) -> None:
        """SIGSTOP the agent (never its pods), and return once the kernel shows it stopped."""
        record = self._running_record()
        processes.signal_group(record, signal.SIGSTOP)
        self.paused = True
        wait_for(lambda: self.state() == "T", timeout=5, what=f"the agent of {self.name} stopped")

    def resume(self) -> None:
        if self.record is not None and self.paused:
            processes.signal_group(self.record, signal.SIGCONT)
        self.paused = False

    def _running_record(self) -> processes.ProcessRecord:
        if self.record is None or not processes.is_running(self.record):
            raise RuntimeError(f"the agent of node {self.name} is not running")
        return self.record

    def stop(self) -> None:
        """Continue the agent, stop it (it stops its pods), remove its folder. The Node object is
        left to the caller, as ProcessNodes leaves it."""
        try:
            if self.record is not None:
                self.resume()
                processes.stop(self.record, self.proc, grace=STOP_GRACE_SECONDS)
        finally:
            self.record = None
            self.proc = None
            if self._work_dir is not None:
                # Should the agent have died before stopping its pods, they die here (each
                # recorded with its start time, so a reused pid is never signalled).
                pods = self._work_dir / self.name / "state" / "pods"
                for folder in pods.iterdir() if pods.is_dir() else ():
                    kill_recorded(folder)
                shutil.rmtree(self._work_dir, ignore_errors=True)
                self._work_dir = None
