"""A real script as a subprocess, stopped by a real signal, then run again: the promises of
the SDK on the local file backend (exit codes, nothing repeated, nothing lost)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "jobs" / "three_steps.py"
INTERVAL = 0.2


class Script:
    def __init__(self, tmp_path: Path) -> None:
        self.events = tmp_path / "events.log"
        self.state = tmp_path / "state.json"
        self.env = {
            **os.environ,
            "EVENTS": str(self.events),
            "CONTINUABLE_STATE_FILE": str(self.state),
            "CONTINUABLE_CHECKPOINT_INTERVAL": str(INTERVAL),
        }

    def start(self, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            env={**self.env, **extra},
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, **extra: str) -> tuple[int, str]:
        process = self.start(**extra)
        _, stderr = process.communicate(timeout=60)
        return process.returncode, stderr

    def lines(self) -> list[str]:
        if not self.events.exists():
            return []
        return [line.rsplit(" ", 1)[0] for line in self.events.read_text().splitlines()]

    def items(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines() if line.startswith("item ")]

    def stop_after(self, process: subprocess.Popen[str], items: int, sig: signal.Signals) -> str:
        deadline = time.monotonic() + 30
        while len(self.items()) < items:
            assert process.poll() is None, "the script ended before it was signalled"
            assert time.monotonic() < deadline, "the script made no progress"
            time.sleep(0.02)
        assert process.pid > 1
        os.killpg(process.pid, sig)
        _, stderr = process.communicate(timeout=30)
        return stderr


@pytest.fixture
def script(tmp_path: Path) -> Script:
    return Script(tmp_path)


def test_sigterm_then_rerun_processes_every_item_exactly_once(script: Script) -> None:
    first = script.start()
    stderr = script.stop_after(first, 500, signal.SIGTERM)
    assert first.returncode == 75, stderr
    assert "interrupted in step process_orders at cursor" in stderr
    saved = json.loads(script.state.read_text())["checkpoint"]
    assert saved["stopReason"] == "Interrupted"
    assert saved["steps"][1]["cursor"] == len(script.items())

    code, stderr = script.run()
    assert code == 0, stderr
    assert "step fetch_orders skipped" in stderr
    assert "step process_orders resumed at cursor" in stderr
    assert script.items() == list(range(2000))
    counts = Counter(script.lines())
    assert counts["fetch"] == 1
    assert counts["notify"] == 1
    assert not script.state.exists(), "a completed run removes its state file"


def test_sigint_interrupts_like_sigterm(script: Script) -> None:
    first = script.start()
    script.stop_after(first, 100, signal.SIGINT)
    assert first.returncode == 75
    assert script.run()[0] == 0
    assert script.items() == list(range(2000))


def test_sigkill_repeats_at_most_one_interval_of_items(script: Script) -> None:
    first = script.start()
    script.stop_after(first, 700, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    saved_cursor = json.loads(script.state.read_text())["checkpoint"]["steps"][1]["cursor"]
    processed = script.items()
    times = [float(line.rsplit(" ", 1)[1]) for line in script.events.read_text().splitlines()]
    item_times = times[-len(processed) :]

    assert script.run()[0] == 0
    repeated = [item for item, count in Counter(script.items()).items() if count > 1]
    assert sorted(set(script.items())) == list(range(2000))
    assert repeated == list(range(saved_cursor, len(processed)))
    if repeated:
        # The repeated items were all processed within one checkpoint interval (plus the
        # writer thread's scheduling slack on a busy machine).
        span = item_times[-1] - item_times[saved_cursor]
        assert span <= INTERVAL + 0.5, f"{len(repeated)} items repeated over {span:.3f}s"


def test_a_crash_exits_1_names_the_step_and_resumes_at_the_cursor(script: Script) -> None:
    code, stderr = script.run(FAIL_AT="1234")
    assert code == 1
    assert "step process_orders failed: RuntimeError: order 1234 is malformed" in stderr
    assert "Traceback" in stderr
    checkpoint = json.loads(script.state.read_text())["checkpoint"]
    assert checkpoint["error"] == {
        "type": "RuntimeError",
        "message": "order 1234 is malformed",
        "step": "process_orders",
    }
    assert checkpoint["steps"][1]["cursor"] == 1234

    assert script.run()[0] == 0
    assert script.items() == list(range(2000))


def test_json_log_lines(script: Script) -> None:
    code, stderr = script.run(CONTINUABLE_LOG_FORMAT="json", ITEM_SECONDS="0")
    assert code == 0
    events = [json.loads(line) for line in stderr.splitlines()]
    assert [e["event"] for e in events] == [
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "job.completed",
    ]
    assert events[1]["step"] == "fetch_orders"
    assert isinstance(events[1]["seconds"], float)
