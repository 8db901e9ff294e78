"""What the kubelet's `GET /containerLogs/<namespace>/<pod>/<container>` answers, from our files.

The query options are PodLogOptions as the apiserver forwards them (`follow`, `previous`,
`tailLines`, `limitBytes`, `sinceSeconds`, `sinceTime`, `timestamps`). Which run of a container
is shown follows the kubelet's `validateContainerLogStatus`: the running or last terminated run,
the one before it with `previous`, and a 400 with the kubelet's wording when there is none. The
node writes raw output (no per-line times, unlike a CRI log), so `timestamps` is refused and
`sinceSeconds`/`sinceTime` are only honoured when they cover the whole run.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from . import clock
from .reporting import ContainerRecord

READ_SIZE = 65536
# How often a follow looks for new output; `kubectl logs -f` shows a line within this.
FOLLOW_POLL_SECONDS = 0.1
_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


class LogRequestError(Exception):
    """An answer other than the log: HTTP status and the kubelet's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> LogRequestError:
    return LogRequestError(400, message)


def _one(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _bool(query: Mapping[str, Sequence[str]], name: str) -> bool:
    value = _one(query, name)
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _bad(f"{name}: invalid boolean value {value!r}")


def _int(query: Mapping[str, Sequence[str]], name: str, minimum: int) -> int | None:
    value = _one(query, name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"{name}: invalid integer value {value!r}") from None
    if number < minimum:
        raise _bad(f"{name}: must be at least {minimum}")
    return number


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since: dt.datetime | None = None

    @classmethod
    def from_query(
        cls, query: Mapping[str, Sequence[str]], now: dt.datetime | None = None
    ) -> LogOptions:
        if _bool(query, "timestamps"):
            raise _bad(
                "timestamps are not available: the process node writes a container's raw "
                "output, without the time of each line"
            )
        stream = _one(query, "stream")
        if stream not in (None, "", "All"):
            raise _bad(
                f"stream={stream}: the process node writes stdout and stderr into one file; "
                "only stream=All is available"
            )
        since_seconds = _int(query, "sinceSeconds", 1)
        since_time = _one(query, "sinceTime")
        if since_seconds is not None and since_time:
            raise _bad("at most one of sinceTime or sinceSeconds may be specified")
        since: dt.datetime | None = None
        if since_seconds is not None:
            since = (now or clock.now()) - dt.timedelta(seconds=since_seconds)
        elif since_time:
            try:
                since = clock.parse(since_time)
            except ValueError:
                raise _bad(f"sinceTime: invalid RFC3339 time {since_time!r}") from None
        return cls(
            follow=_bool(query, "follow"),
            previous=_bool(query, "previous"),
            tail_lines=_int(query, "tailLines", 0),
            limit_bytes=_int(query, "limitBytes", 1),
            since=since,
        )


@dataclass(frozen=True)
class Run:
    """One run of a container: the index its log file is named by, and when it started."""

    index: int
    started_at: str


def choose_run(record: ContainerRecord, pod: str, previous: bool) -> Run:
    """The run whose output is asked for, as the kubelet's validateContainerLogStatus picks it."""
    name = record.name
    last = (record.last_state or {}).get("terminated")
    if record.state == "waiting":
        # CrashLoopBackOff: the restart count still names the run that ended last, which is
        # both the current and the previous container in the kubelet's eyes.
        if last is None:
            reason = record.reason or "ContainerCreating"
            raise _bad(f'container "{name}" in pod "{pod}" is waiting to start: {reason}')
        return Run(record.restart_count, str(last.get("startedAt", "")))
    if previous:
        if last is None or record.restart_count == 0:
            raise _bad(f'previous terminated container "{name}" in pod "{pod}" not found')
        return Run(record.restart_count - 1, str(last.get("startedAt", "")))
    return Run(record.restart_count, record.started_at)


def check_since(options: LogOptions, run: Run, name: str) -> None:
    """Without per-line times a `since` can only be met when it is at or before the run began."""
    if options.since is None:
        return
    if run.started_at and options.since <= clock.parse(run.started_at):
        return
    raise _bad(
        f'container "{name}": the process node keeps no time per line, so sinceSeconds/'
        "sinceTime only work when they reach back to the container's start "
        f"({run.started_at or 'unknown'})"
    )


def tail_offset(f: BinaryIO, lines: int) -> int:
    """Where the last `lines` lines of `f` begin; an unterminated last line counts as one."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    found = 0
    pos = end
    while pos > 0:
        start = max(0, pos - READ_SIZE)
        f.seek(start)
        data = f.read(pos - start)
        i = len(data)
        while True:
            i = data.rfind(b"\n", 0, i)
            if i < 0:
                break
            if start + i == end - 1:
                continue  # the newline ending the file closes the last line
            found += 1
            if found == lines:
                return start + i + 1
        pos = start
    return 0


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...

    def gone(self) -> bool:
        """Whether the reader went away (only asked while following and idle)."""
        ...


def stream(
    path: Path,
    options: LogOptions,
    sink: Sink,
    *,
    live: Callable[[], bool],
    stopping: Callable[[], bool],
    poll: float = FOLLOW_POLL_SECONDS,
) -> int:
    """Write the log to `sink`; with follow, keep going until the run ended and all of its
    output is out (or the reader left, or the node stops). Returns the bytes written."""
    written = 0
    limit = options.limit_bytes
    with path.open("rb") as f:
        f.seek(tail_offset(f, options.tail_lines) if options.tail_lines is not None else 0)
        ended = not options.follow
        while True:
            want = READ_SIZE if limit is None else min(READ_SIZE, limit - written)
            if want <= 0:
                return written
            chunk = f.read(want)
            if chunk:
                sink.write(chunk)
                written += len(chunk)
                continue
            if ended or stopping() or sink.gone():
                return written
            if not live():
                # Its process has exited, so the file is complete: one more pass drains it.
                ended = True
                continue
            time.sleep(poll)
