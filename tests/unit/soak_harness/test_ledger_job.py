"""The soak's ledger job, run as a plain script (the local-file backend, no cluster): every
side effect is one ledger line the judges' parser reads back, an isolated second loop starts
in a fresh run (exit 75 first), and a completed job repeats nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.soak.jobs import JOB_SCRIPT
from tests.soak.records import parse_ledger

REPO = Path(__file__).resolve().parents[3]


def _run(tmp_path: Path, isolated: bool) -> int:
    # Without CONTINUABLE_JOB the SDK keeps its state in a local file; the ledger says "local".
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUABLE_")}
    env = {
        **inherited,
        "CONTINUABLE_STATE_FILE": str(tmp_path / "state.json"),
        "SOAK_LEDGER": str(tmp_path / "local.csv"),
        "SOAK_ITEMS": "6",
        "SOAK_ITEM_SECONDS": "0",
        "SOAK_ISOLATED": "1" if isolated else "0",
    }
    done = subprocess.run(
        [sys.executable, str(REPO / JOB_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode


def _ledger(tmp_path: Path) -> list[str]:
    lines, bad = parse_ledger((tmp_path / "local.csv").read_text(), job="local")
    assert bad == 0
    return [line.what for line in lines]


def test_a_plain_job_records_fetch_every_item_and_notify_once(tmp_path: Path) -> None:
    assert _run(tmp_path, isolated=False) == 0
    assert _ledger(tmp_path) == ["fetch", "0", "1", "2", "3", "4", "5", "notify"]


def test_an_isolated_second_loop_starts_in_a_fresh_run(tmp_path: Path) -> None:
    assert _run(tmp_path, isolated=True) == 75
    assert _ledger(tmp_path) == ["fetch", "0", "1", "2"]
    assert _run(tmp_path, isolated=True) == 0
    assert _ledger(tmp_path) == ["fetch", "0", "1", "2", "3", "4", "5", "notify"]
