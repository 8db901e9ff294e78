"""examples/ai-report: interrupted while summarising, it skips extract, summarises every passage
exactly once and delivers once; deliver is never repeated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from continuable.testing import interrupt_after_items, interrupt_after_step, run

from .conftest import EXAMPLES, ROOT, manifest, script

PASSAGES = 30


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return script("ai-report")


@pytest.fixture
def settings(example: ModuleType, tmp_path: Path) -> Any:
    return example.Settings(
        documents=example.HERE / "documents",
        work_dir=tmp_path / "work",
        report_path=tmp_path / "out" / "report.md",
        chunk_seconds=0,
    )


class CountingModel:
    """The stand-in model, counting the passages it is asked to summarise."""

    def __init__(self, example: ModuleType) -> None:
        self.calls: Counter[str] = Counter()
        self._example = example

    async def __call__(self, text: str) -> str:
        self.calls[text] += 1
        summary: str = await self._example.stand_in_model(text, seconds=0)
        return summary


def job_fn(
    example: ModuleType, settings: Any, model: CountingModel
) -> Callable[[Any], Awaitable[None]]:
    async def ai_report(job: Any) -> None:
        await example.ai_report(job, settings, model)

    return ai_report


def test_runs_the_steps_its_manifest_lists(example: ModuleType, settings: Any) -> None:
    model = CountingModel(example)
    result = run(job_fn(example, settings, model))

    assert result.completed
    assert result.attempts[0].completed == manifest("ai-report")["spec"]["steps"]
    report = settings.report_path.read_text()
    assert report.startswith("# Document digest\n")
    assert "## Postmortem: nightly import stalled for six hours" in report
    assert report.count("\n- ") == PASSAGES
    assert result.result("deliver")["path"] == str(settings.report_path)


def test_an_interruption_while_summarising_repeats_nothing(
    example: ModuleType, settings: Any
) -> None:
    """The calls in flight finish before the attempt stops: no passage is summarised twice."""
    model = CountingModel(example)
    result = run(
        job_fn(example, settings, model),
        interrupt=interrupt_after_items("summarise", 12),
    )

    assert result.completed
    first, second = result.attempts
    assert first.stop_reason == "Interrupted"
    assert first.completed == ["extract"]
    assert second.skipped == ["extract"]
    assert second.resumed == ["summarise"]
    assert second.started == ["format", "deliver"]
    result.assert_each_item_once("summarise", PASSAGES)  # in any order, each exactly once
    assert len(model.calls) == PASSAGES
    assert set(model.calls.values()) == {1}
    assert len((settings.work_dir / "outbox.log").read_text().splitlines()) == 1


def test_completed_steps_are_skipped_after_an_interruption_between_steps(
    example: ModuleType, settings: Any
) -> None:
    model = CountingModel(example)
    result = run(job_fn(example, settings, model), interrupt=interrupt_after_step("format"))

    assert result.completed
    assert result.attempts[1].skipped == ["extract", "summarise", "format"]
    assert result.attempts[1].started == ["deliver"]
    assert sum(model.calls.values()) == PASSAGES


def test_deliver_is_never_run_twice(example: ModuleType, settings: Any) -> None:
    """An attempt that died inside deliver leaves it Started: the next one stops, unsent."""
    model = CountingModel(example)
    first = run(job_fn(example, settings, model), interrupt=interrupt_after_step("format"))
    checkpoint = first.checkpoint
    assert checkpoint is not None
    # As if the pod had been SIGKILLed inside deliver: started by attempt 2, never finished.
    checkpoint["steps"].append({"name": "deliver", "state": "Started", "attempt": 2})
    first.backend.checkpoint = checkpoint
    (settings.work_dir / "outbox.log").unlink()

    again = run(job_fn(example, settings, model), backend=first.backend)

    assert not again.completed
    assert again.attempts[-1].stop_reason == "NotReplayable"
    assert again.attempts[-1].exit_code == 1
    assert not (settings.work_dir / "outbox.log").exists()


def test_as_a_script_ctrl_c_then_a_second_run_delivers_once(tmp_path: Path) -> None:
    work = tmp_path / "work"
    env = os.environ | {
        "CONTINUABLE_STATE_FILE": str(tmp_path / "state.json"),
        "WORK_DIR": str(work),
        "REPORT_PATH": str(tmp_path / "report.md"),
        "CHUNK_SECONDS": "0.5",  # 8 at a time: 30 passages in about 2 s
    }
    command = [sys.executable, str(EXAMPLES / "ai-report" / "job.py")]
    first = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(list((work / "summaries").glob("*.txt"))) < 5:
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "the script summarised nothing"
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    _, log = first.communicate(timeout=30)
    assert first.returncode == 75, log
    assert "interrupted in step summarise" in log

    second = subprocess.run(
        command, env=env | {"CHUNK_SECONDS": "0"}, cwd=ROOT, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    assert "step extract skipped" in second.stderr
    assert "step summarise resumed at cursor" in second.stderr
    assert len(list((work / "summaries").glob("*.txt"))) == PASSAGES
    assert (tmp_path / "report.md").read_text().count("\n- ") == PASSAGES
    assert len((work / "outbox.log").read_text().splitlines()) == 1
