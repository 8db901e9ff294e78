"""Starting one container as a host process, and signalling or waiting for it safely.

Each container runs in a session of its own, so its pid is also its process-group id and the
whole group (the process and whatever it forks) can be signalled, as a runtime stops a
container's cgroup. A group is only ever signalled while its leader is our unreaped child: the
pid cannot have been reused then. When the leader exits, the rest of its group is killed before
the leader is reaped, as every process of a container dies with its PID 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.cluster.processes import ProcessRecord, start_ticks

from .credentials import SA_MOUNT_PATH

log = logging.getLogger(__name__)

# Runs inside the new mount namespace: mount the pod's folder read-only over the standard path,
# then become the container's command (exec keeps the pid we recorded).
_MOUNT_SCRIPT = 'mount --bind "$0" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def container_argv(command: Sequence[str], credentials_dir: Path | None) -> list[str]:
    if credentials_dir is None:
        return list(command)
    # The mount point must exist on the host for the bind mount; it stays an empty folder there.
    Path(SA_MOUNT_PATH).mkdir(parents=True, exist_ok=True)
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        _MOUNT_SCRIPT,
        str(credentials_dir),
        SA_MOUNT_PATH,
        *command,
    ]


def exit_code(returncode: int) -> int:
    """Python's -N (killed by signal N) as a container runtime reports it: 128+N."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerProcess:
    """A started container process; calls `on_exit` once it has exited and been reaped."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        on_exit: Callable[[], None],
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=str(cwd),
                start_new_session=True,
                close_fds=True,
            )
        self.pid = self.proc.pid
        self.record = ProcessRecord(
            name=name, pid=self.pid, executable=str(argv[0]), start_ticks=start_ticks(self.pid) or 0
        )
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.returncode: int | None = None
        self.signals: list[str] = []
        self._lock = threading.Lock()
        self._reaped = False
        self._on_exit = on_exit
        self._waiter = threading.Thread(target=self._wait, name=f"wait-{self.pid}", daemon=True)
        self._waiter.start()

    @property
    def running(self) -> bool:
        return self.returncode is None

    def _wait(self) -> None:
        while True:
            try:
                # WNOWAIT: learn of the exit but leave the zombie, so the pid (= group id)
                # stays ours while the rest of the group is killed.
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
        with self._lock:
            self._signal_group(signal.SIGKILL)
            self.returncode = self.proc.wait()
            self.finished_at = time.time()
            self._reaped = True
        try:
            self._on_exit()
        except Exception:
            log.exception("exit callback of pid %s failed", self.pid)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.pid <= 1:  # never signal init or "every process"
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def signal(self, sig: signal.Signals) -> bool:
        """Signal the process group; False when the process is already gone."""
        with self._lock:
            if self._reaped:
                return False
            self._signal_group(sig)
            self.signals.append(sig.name)
            return True

    def join(self, timeout: float) -> bool:
        self._waiter.join(timeout)
        return not self._waiter.is_alive()
