"""Starting and stopping control-plane processes without ever touching anyone else's.

Each component runs in its own session (so its process group id is its pid) and is identified by
pid + start time, so a recorded pid that the kernel has since reused is never signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True)
class ProcessRecord:
    """What is needed to find a process again from another Python process (`cluster down`)."""

    name: str
    pid: int
    executable: str
    start_ticks: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            executable=str(data["executable"]),
            start_ticks=int(data["start_ticks"]),
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses; everything after the last ')' is plain.
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    # Field 22 (starttime) of /proc/<pid>/stat; the list starts at field 3.
    return int(fields[19]) if fields else None


def is_running(record: ProcessRecord) -> bool:
    fields = _stat_fields(record.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == record.start_ticks


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


_SETPRIV = shutil.which("setpriv")


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool = True,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start argv in a new session with stdout+stderr appended to log_path."""
    command = list(argv)
    if die_with_parent and _SETPRIV:
        # If the test runner is SIGKILLed its fixtures never run; the parent-death signal keeps
        # the components from outliving it. SIGKILL, because all of them get it at once and
        # the apiserver ignores SIGTERM once etcd is gone. setpriv execs the command, so the pid
        # is unchanged. (setpriv rather than preexec_fn, which is unsafe while threads run.)
        command = [_SETPRIV, "--pdeathsig", "SIGKILL", "--", *command]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(
            f"\n===== {time.strftime('%H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode()
        )
        log.flush()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )
    ticks = start_ticks(proc.pid) or 0
    return proc, ProcessRecord(name=name, pid=proc.pid, executable=str(argv[0]), start_ticks=ticks)


def signal_group(record: ProcessRecord, sig: signal.Signals) -> None:
    # A recorded pid of 0 or 1 would signal our own group or init: never.
    if record.pid <= 1 or not is_running(record):
        return
    try:
        # Only a process we started with start_new_session leads a group of its own pid; anything
        # else gets the signal alone.
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)
    except ProcessLookupError:
        pass


def stop(
    record: ProcessRecord,
    proc: subprocess.Popen[bytes] | None = None,
    *,
    grace: float = 5.0,
) -> None:
    """SIGTERM the process group, SIGKILL after `grace` seconds; reap it when it is our child."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        signal_group(record, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return
            if proc is None and not is_running(record):
                return
            time.sleep(0.05)
    if is_running(record):
        raise RuntimeError(f"{record.name} (pid {record.pid}) survived SIGKILL")


class StartsAndStops:
    """`with part:` starts it and stops it, whatever happens in between."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
