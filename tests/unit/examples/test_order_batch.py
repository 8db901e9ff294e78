"""examples/order-batch: interrupted half way, it skips fetch_orders and processes every order
exactly once; as a script, SIGTERM then a second run does the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from continuable.testing import interrupt_during_step, run

from .conftest import EXAMPLES, ROOT, manifest, script


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return script("order-batch")


@pytest.fixture
def settings(example: ModuleType, tmp_path: Path) -> Any:
    return example.Settings(ledger=tmp_path / "ledger.txt", item_seconds=0, fetch_seconds=0)


def ledger(path: Path) -> list[tuple[int, str]]:
    return [(int(i), a) for i, a in (line.split() for line in path.read_text().splitlines())]


def test_runs_the_steps_its_manifest_lists(example: ModuleType, settings: Any) -> None:
    result = run(lambda job: example.order_batch(job, settings))
    assert result.completed
    assert result.attempts[0].completed == manifest("order-batch")["spec"]["steps"]
    assert result.result("notify") == {"notified": "finance@example.com", "orders": 5000}


def test_an_interruption_mid_loop_repeats_nothing(example: ModuleType, settings: Any) -> None:
    result = run(
        lambda job: example.order_batch(job, settings),
        interrupt=interrupt_during_step("process_orders", cursor=2500),
    )

    assert result.completed
    first, second = result.attempts
    assert first.stop_reason == "Interrupted"
    assert first.items["process_orders"] == list(range(2500))
    assert second.skipped == ["fetch_orders"]
    assert second.resumed == ["process_orders"]
    assert second.started == ["notify"]
    assert result.items("process_orders") == list(range(5000))  # each item exactly once
    assert result.times_ran("fetch_orders") == 1
    orders = ledger(settings.ledger)
    assert [order for order, _ in orders] == list(range(100_001, 105_001))
    assert Counter(attempt for _, attempt in orders) == {"attempt=1": 2500, "attempt=2": 2500}


def test_as_a_script_sigterm_then_a_second_run_completes_the_batch(tmp_path: Path) -> None:
    ledger_file = tmp_path / "ledger.txt"
    env = os.environ | {
        "CONTINUABLE_STATE_FILE": str(tmp_path / "state.json"),
        "LEDGER_FILE": str(ledger_file),
        "ORDERS": "2000",
        "FETCH_SECONDS": "0",
        "ITEM_SECONDS": "0.001",
    }
    command = [sys.executable, str(EXAMPLES / "order-batch" / "job.py")]
    first = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not ledger_file.exists() or len(ledger_file.read_text().splitlines()) < 200:
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "the script processed no orders"
        time.sleep(0.02)
    first.send_signal(signal.SIGTERM)
    _, log = first.communicate(timeout=30)
    assert first.returncode == 75, log
    assert "interrupted in step process_orders" in log

    second = subprocess.run(
        command, env=env | {"ITEM_SECONDS": "0"}, cwd=ROOT, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    assert "step fetch_orders skipped" in second.stderr
    assert "step process_orders resumed at cursor" in second.stderr
    assert "notified finance@example.com: 2000 orders processed" in second.stdout
    orders = ledger(ledger_file)
    assert [order for order, _ in orders] == list(range(100_001, 102_001))
    assert set(Counter(attempt for _, attempt in orders)) == {"attempt=1", "attempt=2"}
    assert not (tmp_path / "state.json").exists()  # removed once the run completed
