"""The life of one pod on the process node, from admission to the final DELETE.

One PodWorker (one thread) per pod. It starts every container as a host process, reports the
status a kubelet reports at each step, restarts containers as `restartPolicy` says, and on a
deletionTimestamp runs the kubelet's graceful termination (KUBELET.md section 3): SIGTERM, wait
the grace period, SIGKILL, PATCH the terminal phase, then DELETE with grace 0 and a UID
precondition. The agent feeds it every API copy of its pod; process exits wake it too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.processes import ProcessRecord, is_running

from . import clock
from .credentials import PodCredentials, sa_volume
from .environment import ConfigError, ServiceEndpoint, container_env, expand
from .launching import ContainerProcess, container_argv, exit_code
from .reporting import TERMINAL, ContainerRecord, EventRecorder, StatusReporter, pod_status
from .rest import ApiClient, ApiError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# kuberuntime's minimumGracePeriodInSeconds: even a zero grace gets this long after SIGTERM.
MIN_GRACE_SECONDS = 2.0
DEFAULT_GRACE_SECONDS = 30.0
# After SIGKILL a process normally dies at once; waiting longer means it is stuck in the kernel.
KILL_WAIT_SECONDS = 5.0
# The kubelet's container restart back-off: 10 s doubling up to 5 min.
BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
# While a status or the final DELETE has not landed (apiserver down), retry this often.
RETRY_SECONDS = 2.0
# Re-check with nothing to do: a lost wake-up costs at most this long.
IDLE_WAKE_SECONDS = 30.0


@dataclass
class Runtime:
    """What every pod of one node shares."""

    node_name: str
    api: ApiClient
    events: EventRecorder
    endpoint: ServiceEndpoint
    allocatable: Mapping[str, str]
    state_dir: Path
    cwd: Path = REPO_ROOT
    path_prefix: Sequence[str] = (str(REPO_ROOT / ".venv" / "bin"),)
    host_ip: str = "127.0.0.1"
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def pod_dir(self, uid: str) -> Path:
        return self.state_dir / "pods" / uid

    def log_path(self, pod: Mapping[str, Any], container: str, restart: int) -> Path:
        meta = pod["metadata"]
        # The kubelet's layout: /var/log/pods/<ns>_<name>_<uid>/<container>/<restart>.log
        folder = f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        return self.state_dir / "logs" / folder / container / f"{restart}.log"

    def base_env(self, pod: Mapping[str, Any]) -> dict[str, str]:
        return {
            "PATH": ":".join([*self.path_prefix, SYSTEM_PATH]),
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
            **self.extra_env,
        }


def deletion_grace(pod: Mapping[str, Any]) -> float | None:
    if not pod["metadata"].get("deletionTimestamp"):
        return None
    grace = pod["metadata"].get("deletionGracePeriodSeconds")
    if grace is None:
        grace = pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    return max(MIN_GRACE_SECONDS, float(grace))


def was_started(pod: Mapping[str, Any]) -> bool:
    """Whether some node process already ran this pod (so this worker can only be a newcomer)."""
    status = pod.get("status", {})
    for c in status.get("containerStatuses", []):
        if "running" in c.get("state", {}) or "terminated" in c.get("state", {}):
            return True
    return bool(status.get("phase") == "Running")


def kill_recorded(pod_dir: Path) -> list[ProcessRecord]:
    """Kill process groups a previous agent recorded for this pod (as a reboot would)."""
    path = pod_dir / "processes.json"
    try:
        records = [ProcessRecord.from_json(r) for r in json.loads(path.read_text())]
    except (FileNotFoundError, ValueError, KeyError):
        return []
    killed = []
    for record in records:
        # pid + start time identify the very process we started; a reused pid never matches.
        if record.pid > 1 and is_running(record) and os.getpgid(record.pid) == record.pid:
            try:
                os.killpg(record.pid, signal.SIGKILL)
                killed.append(record)
            except ProcessLookupError:
                pass
    path.unlink(missing_ok=True)
    return killed


class PodWorker:
    def __init__(self, runtime: Runtime, pod: dict[str, Any]) -> None:
        self.rt = runtime
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.reporter = StatusReporter(runtime.api, self.namespace, self.name, self.uid)
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.records = {
            c["name"]: ContainerRecord(name=c["name"], image=c.get("image", ""))
            for c in spec.get("containers", [])
        }
        self.procs: dict[str, ContainerProcess] = {}
        self.next_start: dict[str, float] = {}
        self.phase = "Pending"
        self.sandbox_ready = False
        self.reason = ""
        self.message = ""
        self.start_time = pod.get("status", {}).get("startTime") or clock.rfc3339()
        self.credentials: PodCredentials | None = None
        self.envs: dict[str, dict[str, str]] = {}
        # Timings for the measurements: when the worker saw the pod, when processes started,
        # when the deletion was seen and SIGTERM sent.
        self.seen_at = time.monotonic()
        self.running_at: float | None = None
        self.deletion_seen_at: float | None = None
        self.sigterm_at: float | None = None
        self.done = threading.Event()
        self._cond = threading.Condition()
        self._dirty = True
        self._pod = pod
        self._removed = False
        self._stop_mode = ""  # "" | "terminate" | "abandon"
        self._grace: float | None = None
        self.reporter_behind = False
        self.final_delete_sent = False
        self._thread = threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True)

    # ------------------------------------------------------------------ feeding

    def start(self) -> None:
        self._thread.start()

    def update(self, pod: dict[str, Any]) -> None:
        with self._cond:
            self._pod = pod
            self._dirty = True
            self._cond.notify_all()

    def removed(self) -> None:
        """The pod object is gone from the API (force deletion, or it vanished while we were
        away): stop its processes without reporting."""
        with self._cond:
            self._removed = True
            self._dirty = True
            self._cond.notify_all()

    def stop(self, *, terminate: bool) -> None:
        """The agent is stopping: kill the processes (terminate) or leave them (abandon)."""
        with self._cond:
            self._stop_mode = "terminate" if terminate else "abandon"
            self._dirty = True
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def pod(self) -> dict[str, Any]:
        with self._cond:
            return self._pod

    def _wake(self) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def _wait(self, timeout: float) -> None:
        with self._cond:
            if not self._dirty:
                self._cond.wait(max(0.0, timeout))
            self._dirty = False

    def _interrupted(self) -> bool:
        with self._cond:
            return bool(self._stop_mode) or self._removed

    # ------------------------------------------------------------------ lifecycle

    def _run(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            log.exception("pod %s: worker failed", self.key)
        finally:
            if self._stop_mode != "abandon":
                self._kill_all(MIN_GRACE_SECONDS)
                if not any(p.running for p in self.procs.values()):
                    kill_recorded(self.rt.pod_dir(self.uid))
                    shutil.rmtree(self.rt.pod_dir(self.uid), ignore_errors=True)
            self.done.set()

    def _lifecycle(self) -> None:
        pod = self.pod
        init = [c["name"] for c in pod["spec"].get("initContainers", [])]
        if init:
            self._reject(
                "InitContainersUnsupported",
                "Pod was rejected: the process node does not run init containers "
                f"({', '.join(init)}); move their work into the main container",
            )
            return
        # Processes a previous agent started for this pod are killed first, as a reboot would.
        killed = kill_recorded(self.rt.pod_dir(self.uid))
        if killed or was_started(pod):
            self._orphaned(pod, killed)
            return
        if deletion_grace(pod) is not None:
            # Deleted before it ever ran: straight to Failed, as the kubelet does.
            self._finish(pod)
            return
        self._report(pod)
        if not self._prepare():
            self._after_interrupt_or_deletion()
            return
        self.sandbox_ready = True
        for name in self.records:
            self._start_container(name)
        self.phase = "Running"
        self.running_at = time.monotonic()
        self._report(self.pod)
        self._supervise()

    def _prepare(self) -> bool:
        """Resolve env and write credentials; waits (reporting why) while a reference is missing."""
        delay = 1.0
        while True:
            pod = self.pod
            if self._interrupted() or deletion_grace(pod) is not None:
                return False
            try:
                self.envs = {
                    c["name"]: container_env(
                        pod,
                        c,
                        api=self.rt.api,
                        endpoint=self.rt.endpoint,
                        host_ip=self.rt.host_ip,
                        allocatable=self.rt.allocatable,
                    )
                    for c in pod["spec"]["containers"]
                }
                volume = next(
                    (v for c in pod["spec"]["containers"] if (v := sa_volume(pod, c))), None
                )
                if volume is not None:
                    folder = self.rt.pod_dir(self.uid) / "serviceaccount"
                    self.credentials = PodCredentials(self.rt.api, pod, volume, folder)
                    self.credentials.write_all()
                return True
            except ConfigError as err:
                for record in self.records.values():
                    record.reason, record.message = "CreateContainerConfigError", str(err)
                self.rt.events.pod_event(pod, "Failed", f"Error: {err}", kind="Warning")
                self._try_report(pod)
            self._wait(delay)
            delay = min(delay * 2, 10.0)

    def _start_container(self, name: str) -> None:
        pod = self.pod
        spec = next(c for c in pod["spec"]["containers"] if c["name"] == name)
        record = self.records[name]
        env = {**self.rt.base_env(pod), **self.envs[name]}
        command = [expand(part, env) for part in [*spec.get("command", []), *spec.get("args", [])]]
        log_path = self.rt.log_path(pod, name, record.restart_count)
        if not command:
            # An image's ENTRYPOINT would run here; the process node has no image to take it from.
            record.state, record.reason = "terminated", "StartError"
            record.exit_code, record.message = 128, "no command: the process node ignores images"
            record.finished_at = clock.rfc3339()
            return
        credentials = None
        if sa_volume(pod, spec) is not None and self.credentials is not None:
            credentials = self.credentials.folder
        try:
            proc = ContainerProcess(
                name,
                container_argv(command, credentials),
                env=env,
                cwd=self.rt.cwd,
                log_path=log_path,
                on_exit=self._wake,
            )
        except OSError as err:
            record.state, record.reason = "terminated", "StartError"
            record.exit_code, record.message = 128, f"starting {command[0]!r}: {err}"
            record.finished_at = clock.rfc3339()
            self.rt.events.pod_event(pod, "Failed", record.message, container=name, kind="Warning")
            return
        self.procs[name] = proc
        record.state, record.reason, record.message = "running", "", ""
        record.started_at = clock.rfc3339()
        record.container_id = f"processnode://{self.uid[:8]}-{name}-{proc.pid}"
        self._save_records()
        self.rt.events.pod_event(
            pod,
            "Started",
            f"Started container {name}: pid {proc.pid}, output in {log_path}",
            container=name,
        )

    def _save_records(self) -> None:
        folder = self.rt.pod_dir(self.uid)
        folder.mkdir(parents=True, exist_ok=True)
        live = [p.record.to_json() for p in self.procs.values() if p.running]
        tmp = folder / "processes.json.tmp"
        tmp.write_text(json.dumps(live))
        os.replace(tmp, folder / "processes.json")

    def _collect_exits(self) -> None:
        """Turn exited processes into terminated states; schedule restarts the policy asks for."""
        for name, proc in list(self.procs.items()):
            if proc.running:
                continue
            record = self.records[name]
            if record.state != "running":
                continue
            code = exit_code(proc.returncode or 0)
            record.state = "terminated"
            record.exit_code = code
            record.reason = "Completed" if code == 0 else "Error"
            record.message = ""
            record.finished_at = clock.rfc3339(clock.now())
            del self.procs[name]
            self._save_records()
            restart = self.restart_policy == "Always" or (
                self.restart_policy == "OnFailure" and code != 0
            )
            if restart and deletion_grace(self.pod) is None:
                # First restart at once, then 10 s doubling, as the kubelet's back-off.
                backoff = (
                    0.0
                    if record.restart_count == 0
                    else BACKOFF_START * 2 ** min(record.restart_count - 1, 5)
                )
                backoff = min(backoff, BACKOFF_MAX)
                record.last_state = {"terminated": record.terminated_state()["terminated"]}
                record.state = "waiting"
                record.reason = "CrashLoopBackOff"
                record.message = (
                    f"back-off {int(backoff)}s restarting failed container={name} "
                    f"pod={self.name}_{self.namespace}({self.uid})"
                )
                self.next_start[name] = time.monotonic() + backoff

    def _supervise(self) -> None:
        while True:
            timeout = IDLE_WAKE_SECONDS
            if self.next_start:
                timeout = min(timeout, min(self.next_start.values()) - time.monotonic())
            if self.credentials is not None and self.credentials.refresh_at is not None:
                timeout = min(timeout, self.credentials.refresh_at - time.monotonic())
            if self.reporter_behind:
                timeout = min(timeout, RETRY_SECONDS)
            self._wait(timeout)
            pod = self.pod
            if self._interrupted() or deletion_grace(pod) is not None:
                self._after_interrupt_or_deletion()
                return
            self._collect_exits()
            for name, due in list(self.next_start.items()):
                if time.monotonic() >= due:
                    del self.next_start[name]
                    self.records[name].restart_count += 1
                    self._start_container(name)
            if not self.procs and not self.next_start:
                self._finish(pod)
                return
            if self.credentials is not None and self.credentials.due():
                try:
                    self.credentials.refresh_tokens()
                except ConfigError as err:
                    log.warning("pod %s: token refresh failed, retrying: %s", self.key, err)
                    self.credentials.refresh_at = time.monotonic() + RETRY_SECONDS
            self._try_report(pod)

    # ------------------------------------------------------------------ termination

    def _after_interrupt_or_deletion(self) -> None:
        with self._cond:
            mode, removed = self._stop_mode, self._removed
        if mode == "abandon":
            return
        if mode == "terminate" or removed:
            self._kill_all(MIN_GRACE_SECONDS)
            return
        self._terminate()
        self._finish(self.pod)

    def _terminate(self) -> None:
        """SIGTERM, wait the (possibly shrinking) grace period, SIGKILL."""
        began = time.monotonic()
        self.deletion_seen_at = began
        grace = deletion_grace(self.pod) or MIN_GRACE_SECONDS
        self._grace = grace
        for name, proc in self.procs.items():
            if proc.running:
                self.rt.events.pod_event(
                    self.pod, "Killing", f"Stopping container {name}", container=name
                )
            if proc.signal(signal.SIGTERM) and self.sigterm_at is None:
                self.sigterm_at = time.monotonic()
        # The kubelet writes a status at once when it sees the deletion (phase unchanged).
        self._try_report(self.pod)
        deadline = began + grace
        while any(p.running for p in self.procs.values()):
            now = time.monotonic()
            if now >= deadline:
                break
            self._wait(deadline - now)
            with self._cond:
                if self._stop_mode == "abandon":
                    return
            shorter = deletion_grace(self.pod)
            if shorter is not None and shorter < grace:
                # A second DELETE may only shorten the grace; the kill deadline follows it.
                grace = shorter
                deadline = began + grace
        self._kill_all(0.0)

    def _kill_all(self, grace: float) -> None:
        running = [p for p in self.procs.values() if p.running]
        if not running:
            return
        if grace > 0:
            for proc in running:
                proc.signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in running:
                proc.join(max(0.0, deadline - time.monotonic()))
        for proc in running:
            if proc.running:
                proc.signal(signal.SIGKILL)
        for proc in running:
            if not proc.join(KILL_WAIT_SECONDS):
                log.error("pod %s: pid %s survived SIGKILL", self.key, proc.pid)

    def _finish(self, pod: Mapping[str, Any]) -> None:
        """Report the terminal phase; once it landed and the pod is being deleted, DELETE it."""
        self._collect_exits()
        self.next_start.clear()
        for record in self.records.values():
            if record.state != "terminated":
                # The kubelet's TerminatePod: a container without a final state counts as lost.
                record.state, record.reason, record.exit_code = (
                    "terminated",
                    "ContainerStatusUnknown",
                    137,
                )
                record.message = "The container could not be located when the pod was terminated"
        ok = all(r.exit_code == 0 for r in self.records.values())
        self.phase = "Succeeded" if ok else "Failed"
        self.sandbox_ready = False
        if not self._report_until_landed():
            return
        self._delete_when_deleting()

    def _delete_when_deleting(self) -> None:
        while deletion_grace(self.pod) is not None:
            if self._interrupted():
                return
            try:
                self.reporter.delete()
                self.final_delete_sent = True
                return
            except ApiError as err:
                log.warning("pod %s: final delete failed, retrying: %s", self.key, err)
                self._wait(RETRY_SECONDS)

    def delete_if_terminal(self) -> None:
        """For the agent: a finished pod that got a deletionTimestamp later still needs the
        kubelet's final DELETE (or the object would wait for it forever)."""
        pod = self.pod
        terminal = pod.get("status", {}).get("phase") in TERMINAL
        if self.done.is_set() and terminal and deletion_grace(pod) is not None:
            if self.final_delete_sent:
                return
            try:
                self.reporter.delete()
                self.final_delete_sent = True
            except ApiError as err:
                log.warning("pod %s: final delete failed: %s", self.key, err)

    # ------------------------------------------------------------------ special cases

    def _reject(self, reason: str, message: str) -> None:
        self.phase, self.reason, self.message = "Failed", reason, message
        body = {"phase": "Failed", "reason": reason, "message": message}
        self.rt.events.pod_event(self.pod, reason, message, kind="Warning")
        while not self._interrupted():
            try:
                self.reporter.send(body)
                break
            except ApiError as err:
                if err.not_found or err.conflict:
                    return
                self._wait(RETRY_SECONDS)
        self._delete_when_deleting()

    def _orphaned(self, pod: Mapping[str, Any], killed: list[ProcessRecord]) -> None:
        """A pod this agent did not start but the API says ran: its process is gone (or was
        killed at agent start), as after a node reboot. Report what a kubelet would."""
        previous = {c["name"]: c for c in pod.get("status", {}).get("containerStatuses", [])}
        for name, record in self.records.items():
            old = previous.get(name, {})
            terminated = old.get("state", {}).get("terminated")
            record.restart_count = int(old.get("restartCount", 0))
            record.container_id = old.get("containerID", "")
            record.last_state = old.get("lastState", {})
            if terminated:
                record.state = "terminated"
                record.exit_code = int(terminated.get("exitCode", 0))
                record.reason = terminated.get("reason", "")
                record.message = terminated.get("message", "")
                record.started_at = terminated.get("startedAt", "")
                record.finished_at = terminated.get("finishedAt", "")
            else:
                record.started_at = old.get("state", {}).get("running", {}).get("startedAt", "")
        self.rt.events.pod_event(
            pod,
            "ContainersLost",
            "The node agent restarted and no longer owns this pod's processes"
            + (f" (killed pids {', '.join(str(r.pid) for r in killed)})" if killed else ""),
            kind="Warning",
        )
        self._finish(pod)

    # ------------------------------------------------------------------ reporting

    def desired_status(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        return pod_status(
            pod,
            phase=self.phase,
            containers=list(self.records.values()),
            host_ip=self.rt.host_ip,
            start_time=self.start_time,
            sandbox_ready=self.sandbox_ready,
            reason=self.reason,
            message=self.message,
        )

    def _report(self, pod: Mapping[str, Any]) -> None:
        self._try_report(pod)

    def _try_report(self, pod: Mapping[str, Any]) -> bool:
        """Send the status when it differs from what we sent or from the API copy."""
        desired = self.desired_status(pod)
        if not self.reporter.needs_sync(desired, pod.get("status", {})):
            self.reporter_behind = False
            return True
        try:
            self.reporter.send(desired)
            self.reporter_behind = False
            return True
        except ApiError as err:
            if err.not_found or err.conflict:
                # Gone or replaced by a namesake: nothing of ours left to report on.
                self.removed()
                return False
            log.warning("pod %s: status patch failed, will retry: %s", self.key, err)
            self.reporter_behind = True
            return False

    def _report_until_landed(self) -> bool:
        """The terminal phase must land before the final DELETE; retry until it does."""
        while True:
            if self._try_report(self.pod):
                return True
            with self._cond:
                if self._removed or self._stop_mode:
                    return False
            self._wait(RETRY_SECONDS)

    def summary(self) -> dict[str, Any]:
        return {
            "pod": self.key,
            "phase": self.phase,
            "pids": {n: p.pid for n, p in self.procs.items()},
            "patches": self.reporter.patches,
        }
