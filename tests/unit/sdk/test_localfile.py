"""The local JSON file backend: atomic, resumable, removed only after a completed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from continuable import BackendError, Job, Step
from continuable.backends.localfile import LocalFileBackend, default_state_file


def _run(path: Path, *, stop_at: int | None = None) -> Job:
    job = Job(backend=LocalFileBackend(path), exit_process=False, handle_signals=False)
    with job:
        job.step("first", lambda: {"uri": "s3://bucket/orders.parquet"})

        @job.step
        def second(step: Step) -> None:
            for i in step.range(10):
                if i == stop_at:
                    job._request_termination("test")
                    step.checkpoint()

    return job


def test_completed_run_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "job.json"
    job = _run(path)
    assert job.outcome is not None
    assert job.outcome.stop_reason == "Completed"
    assert not path.exists()


def test_interrupted_run_keeps_the_file_and_the_next_resumes(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    job = _run(path, stop_at=4)
    assert job.outcome is not None
    assert job.outcome.exit_code == 75
    state = json.loads(path.read_text())
    assert state["attempt"] == 1
    assert state["results"] == {"first": {"uri": "s3://bucket/orders.parquet"}}
    assert state["checkpoint"]["steps"][1]["cursor"] == 4
    assert list(tmp_path.iterdir()) == [path], "no temporary file is left behind"

    again = _run(path)
    assert again.attempt == 2
    assert again.outcome is not None
    assert again.outcome.stop_reason == "Completed"


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text("{not json")
    with pytest.raises(BackendError, match=r"job\.json is not valid JSON.*remove it"):
        LocalFileBackend(path).load()


def test_default_state_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTINUABLE_STATE_FILE", raising=False)
    assert default_state_file("/srv/jobs/nightly.py") == Path(".continuable/nightly.json")
    monkeypatch.setenv("CONTINUABLE_STATE_FILE", "/tmp/x.json")
    assert default_state_file("whatever.py") == Path("/tmp/x.json")
