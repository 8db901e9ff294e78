"""The soak's own cluster: a control plane with an audit log, process nodes that can be frozen
and restarted, and two operator replicas with leader election, kept running as a Deployment
would (a replica that exits is started again, unless a fault holds it down).

Every process is started through the `Spawner`, one long-lived thread: the processes get a
parent-death signal (`setpriv --pdeathsig`) so none outlives the soak, and Linux sends that
signal when the *thread* that forked them ends, so a process started from a short-lived thread
(a fault's) would die with it.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.cluster import processes
from tests.cluster.controlplane import ControlPlane
from tests.cluster.ports import free_ports
from tests.cluster.processnode.nodes import node_kubeconfig, node_serving_certificate
from tests.cluster.processnode.running import REPO_ROOT, kill_recorded
from tests.cluster.waiting import wait_for

log = logging.getLogger("soak")
T = TypeVar("T")

AUDIT_POLICY = Path(__file__).with_name("audit-policy.yaml")
# The controller-manager's grace before a silent node is NotReady (default 50 s on v1.36): a
# partition then takes less of the run. Still twice the agent's 10 s lease renewal.
NODE_MONITOR_GRACE = "20s"
LEASE_NAME = "continuable-soak"
LEASE_NAMESPACE = "default"
# The agent stops (SIGTERM) within this; it leaves its pods running (--keep-pods-on-exit).
AGENT_STOP_SECONDS = 20.0


class Spawner:
    """Runs callables on one thread that lives as long as the soak (see the module docstring)."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")

    def call(self, fn: Callable[[], T], timeout: float = 120.0) -> T:
        return self._pool.submit(fn).result(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class SoakControlPlane(ControlPlane):
    """ControlPlane with the audit log on and a shorter node-monitor grace period, whose
    components are started again when they exit, as the kubelet restarts a control plane's
    static pods (the scheduler exits on purpose when it finds its cache inconsistent, which a
    soak provokes: a pod re-created under the same name while its watch was down). The API
    server is left alone while a fault holds it down."""

    def __init__(self, run_dir: Path, **kwargs: Any) -> None:
        audit = [
            f"--audit-policy-file={AUDIT_POLICY}",
            f"--audit-log-path={run_dir / 'audit.log'}",
            "--audit-log-format=json",
            # MB; one file for the whole run (rotation would split the judges' evidence).
            "--audit-log-maxsize=100000",
            "--audit-log-maxbackup=1",
            # Written synchronously, so an entry is on disk when the request has been answered.
            "--audit-log-mode=blocking",
        ]
        super().__init__(extra_apiserver_args=audit, **kwargs)

    def _plan(self) -> None:
        super()._plan()
        self._components["kube-controller-manager"].argv.append(
            f"--node-monitor-grace-period={NODE_MONITOR_GRACE}"
        )

    # The API server restart fault: nothing restarts it behind the fault's back.

    _held: set[str]
    _restart_lock: threading.Lock

    def _supervision(self) -> tuple[set[str], threading.Lock]:
        if not hasattr(self, "_restart_lock"):
            self._held, self._restart_lock = set(), threading.Lock()
        return self._held, self._restart_lock

    def stop_apiserver(self) -> None:
        held, lock = self._supervision()
        with lock:
            held.add("kube-apiserver")
        super().stop_apiserver()

    def start_apiserver(self) -> float:
        held, lock = self._supervision()
        try:
            return super().start_apiserver()
        finally:
            with lock:
                held.discard("kube-apiserver")

    def restart_exited(self, spawner: Spawner) -> list[dict[str, Any]]:
        """Start again every component that exited (except one held down); what was found."""
        held, lock = self._supervision()
        found = []
        for name, component in list(self._components.items()):
            with lock:
                proc = component.proc
                if name in held or proc is None or proc.poll() is None:
                    continue
                code = proc.returncode
                component.proc = None
            log.warning("%s exited with code %s; starting it again", name, code)
            found.append({"t": time.time(), "component": name, "code": code})
            try:
                spawner.call(lambda n=name: self._launch(n))  # type: ignore[misc]
            except Exception:
                log.exception("starting %s again", name)
        return found


class SoakNode:
    """One process node in a process of its own (`python -m tests.cluster.processnode
    --keep-pods-on-exit`): `pause()`/`resume()` freeze its agent (its pods run on), `stop_agent()`
    then `start()` make a new agent on the same state folder, which kills the pods the old
    one left and reports them lost, as after a reboot."""

    def __init__(self, cp: ControlPlane, name: str, folder: Path, spawner: Spawner) -> None:
        self.cp = cp
        self.name = name
        self.folder = folder
        self.spawner = spawner
        self.proc: subprocess.Popen[bytes] | None = None
        self.record: processes.ProcessRecord | None = None
        self.paused = False
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / "agent.log"

    @property
    def state_dir(self) -> Path:
        return self.folder / self.name / "state"

    def start(self, timeout: float = 60.0) -> SoakNode:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        identity = self.folder / "identity"
        kubeconfig = node_kubeconfig(self.cp, self.name, identity)
        node_serving_certificate(self.cp.ca, self.name, identity)
        argv = [
            sys.executable,
            "-m",
            "tests.cluster.processnode",
            "--kubeconfig",
            str(kubeconfig),
            "--name",
            self.name,
            "--state-dir",
            str(self.folder),
            "--cwd",
            str(REPO_ROOT),
            "--keep-pods-on-exit",
        ]
        path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}
        marker = f"node {self.name} ready"
        before = self.log_path.read_text(errors="replace").count(marker) if self.starts else 0
        self.proc, self.record = self.spawner.call(
            lambda: processes.spawn(f"processnode-{self.name}", argv, self.log_path, env=env)
        )
        self.starts += 1

        def registered() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited:\n{processes.tail(self.log_path)}")
            return self.log_path.read_text(errors="replace").count(marker) > before

        wait_for(registered, timeout=timeout, what=f"node {self.name} to register")
        return self

    def agent_state(self) -> str | None:
        if self.record is None or not processes.is_running(self.record):
            return None
        raw = Path(f"/proc/{self.record.pid}/stat").read_text()
        return raw[raw.rindex(")") + 2 :].split()[0]

    def pause(self) -> None:
        """SIGSTOP the agent's own process group (never a pod: each runs in its own session)."""
        if self.record is None:
            raise RuntimeError(f"node {self.name} is not running")
        processes.signal_group(self.record, signal.SIGSTOP)
        self.paused = True
        wait_for(lambda: self.agent_state() == "T", timeout=5, what=f"agent {self.name} stopped")

    def resume(self) -> None:
        if self.record is not None and self.paused:
            processes.signal_group(self.record, signal.SIGCONT)
        self.paused = False

    def stop_agent(self) -> None:
        """SIGTERM the agent (continued first); it leaves its pods' processes running."""
        if self.record is None:
            return
        self.resume()
        processes.stop(self.record, self.proc, grace=AGENT_STOP_SECONDS)
        self.record = None
        self.proc = None

    def pod_processes(self, uid: str) -> list[processes.ProcessRecord]:
        """The container processes the agent recorded for a pod (pid + start time)."""
        path = self.state_dir / "pods" / uid / "processes.json"
        try:
            return [processes.ProcessRecord.from_json(r) for r in json.loads(path.read_text())]
        except (FileNotFoundError, ValueError, KeyError):
            return []

    def sigkill_pod(self, uid: str) -> list[int]:
        """SIGKILL every container process group of a pod, as the OOM killer or a runtime would
        kill a container; the agent then reports exit code 137. Returns the pids signalled."""
        killed = []
        for record in self.pod_processes(uid):
            # pid + start time: a reused pid never matches; only a group leader of its own pid.
            if record.pid > 1 and processes.is_running(record):
                try:
                    if os.getpgid(record.pid) == record.pid:
                        os.killpg(record.pid, signal.SIGKILL)
                        killed.append(record.pid)
                except ProcessLookupError:
                    pass
        return killed

    def stop(self, keep: Path | None = None) -> None:
        """Stop the agent, kill the pods it left, copy its logs to `keep`, remove its folder."""
        try:
            self.stop_agent()
        finally:
            pods = self.state_dir / "pods"
            for folder in pods.iterdir() if pods.is_dir() else ():
                kill_recorded(folder)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                if self.log_path.exists():
                    shutil.copy(self.log_path, keep / "agent.log")
                logs = self.state_dir / "logs"
                if logs.is_dir():
                    shutil.copytree(logs, keep / "pods", dirs_exist_ok=True)
            shutil.rmtree(self.folder, ignore_errors=True)


class Replica:
    """One operator process (`python -m continuable_operator --leader-elect`)."""

    def __init__(self, index: int, kubeconfig: Path, run_dir: Path, namespace: str) -> None:
        self.index = index
        self.kubeconfig = kubeconfig
        self.log_path = run_dir / f"operator-{index}.log"
        self.namespace = namespace
        self.health_port, self.metrics_port = free_ports(2)
        self.proc: subprocess.Popen[bytes] | None = None
        self.record: processes.ProcessRecord | None = None
        self.starts = 0
        self.exits: list[tuple[float, int | None]] = []

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "continuable_operator",
            "--bind-address",
            "127.0.0.1",
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--namespace",
            self.namespace,
            "--leader-elect",
            "--lease-name",
            LEASE_NAME,
            "--lease-namespace",
            LEASE_NAMESPACE,
        ]

    @property
    def pid(self) -> int | None:
        return self.record.pid if self.record else None

    def running(self) -> bool:
        return self.record is not None and processes.is_running(self.record)

    def spawn(self, spawner: Spawner) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        self.proc, self.record = spawner.call(
            lambda: processes.spawn(
                f"continuable-operator-{self.index}", self.argv(), self.log_path, env=env
            )
        )
        self.starts += 1

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def reap(self) -> None:
        """Forget an exited process (reaping it), remembering when and how it ended."""
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append((time.time(), self.proc.returncode))
            self.proc = None
            self.record = None

    def kill(self) -> None:
        if self.record is not None:
            processes.signal_group(self.record, signal.SIGKILL)
            proc = self.proc
            wait_for(
                lambda: proc is None or proc.poll() is not None,
                timeout=10,
                what=f"operator replica {self.index} gone",
            )
            self.reap()

    def stop(self) -> None:
        if self.record is not None:
            processes.stop(self.record, self.proc, grace=10.0)
            self.reap()
            self.record = None
            self.proc = None

    def metrics(self) -> str | None:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode())
        except OSError:
            return None


class Operators:
    """The replicas, kept running by a supervisor thread (a Deployment's part): a replica that
    exited (killed, or stopped by itself on a lost lease) is started again after `restart_delay`,
    unless a fault holds it down."""

    def __init__(
        self,
        kubeconfig: Path,
        run_dir: Path,
        namespace: str,
        spawner: Spawner,
        *,
        replicas: int = 2,
        restart_delay: float = 1.0,
    ) -> None:
        self.replicas = [Replica(i, kubeconfig, run_dir, namespace) for i in range(replicas)]
        self.spawner = spawner
        self.restart_delay = restart_delay
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unplanned_exits: list[dict[str, Any]] = []

    def start(self, timeout: float = 90.0) -> Operators:
        for replica in self.replicas:
            replica.spawn(self.spawner)
        for replica in self.replicas:
            wait_for(
                replica.ready,
                timeout=timeout,
                what=f"operator replica {replica.index} ready",
                detail=lambda r=replica: processes.tail(r.log_path, 30),  # type: ignore[misc]
            )
        self._thread = threading.Thread(target=self._supervise, name="operators", daemon=True)
        self._thread.start()
        return self

    def hold(self, indexes: Sequence[int]) -> None:
        with self._lock:
            self._held.update(indexes)

    def release(self, indexes: Sequence[int]) -> None:
        with self._lock:
            self._held.difference_update(indexes)

    def kill(self, indexes: Sequence[int]) -> list[int]:
        """Hold the replicas down and SIGKILL them; returns the pids killed."""
        with self._lock:
            self._held.update(indexes)
            killed = []
            for replica in self.replicas:
                if replica.index in indexes and replica.pid is not None:
                    killed.append(replica.pid)
                    replica.kill()
            return killed

    def _supervise(self) -> None:
        gone_since: dict[int, float] = {}
        while not self._stop.wait(0.5):
            with self._lock:
                for replica in self.replicas:
                    if self._stop.is_set():
                        return
                    try:
                        self._look_after(replica, gone_since)
                    except Exception:
                        log.exception("supervising operator replica %d", replica.index)

    def _look_after(self, replica: Replica, gone_since: dict[int, float]) -> None:
        held = replica.index in self._held
        if replica.proc is not None and replica.proc.poll() is not None:
            code = replica.proc.returncode
            replica.reap()
            if not held:
                self.unplanned_exits.append(
                    {"t": time.time(), "replica": replica.index, "code": code}
                )
                log.info("operator replica %d exited %s", replica.index, code)
        if replica.record is not None or held:
            gone_since.pop(replica.index, None)
            return
        since = gone_since.setdefault(replica.index, time.monotonic())
        if time.monotonic() - since >= self.restart_delay:
            gone_since.pop(replica.index, None)
            replica.spawn(self.spawner)

    def leader(self, lease_holder: str | None) -> Replica | None:
        """The replica whose identity (`<host>-<pid>`) holds the lease."""
        if not lease_holder:
            return None
        pid = lease_holder.rsplit("-", 1)[-1]
        return next((r for r in self.replicas if r.pid is not None and str(r.pid) == pid), None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for replica in reversed(self.replicas):
                try:
                    replica.stop()
                except Exception:
                    log.exception("stopping operator replica %d", replica.index)
