"""The in-pod backend against a fake of our own `JobApi` seam: fencing, results, retries."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from continuable import BackendError, FencedOut, Job, Step
from continuable.backends.kubernetes import ApiFailure, KubernetesBackend
from continuable.errors import BackendUnavailable


class FakeApi:
    """Holds one ContinuableJob and its results ConfigMap; applies JSON patches as the API
    server does for the ops we send (a failing `test` op answers 422 and changes nothing)."""

    def __init__(self, attempt: int = 1) -> None:
        self.job: dict[str, Any] = {
            "spec": {"checkpoint": {"intervalSeconds": 30, "maxBytes": 4096}},
            "status": {"attempt": attempt},
        }
        self.data: dict[str, str] = {"attempt": str(attempt)}
        self.pod: dict[str, Any] = {"status": {"conditions": []}}
        self.failures: list[ApiFailure] = []
        self.patches: list[list[dict[str, Any]]] = []

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def get_job(self) -> dict[str, Any]:
        self._maybe_fail()
        return copy.deepcopy(self.job)

    def get_results(self) -> dict[str, str]:
        self._maybe_fail()
        return dict(self.data)

    def get_pod(self, name: str) -> dict[str, Any]:
        self._maybe_fail()
        return self.pod

    def patch_status(self, ops: list[dict[str, Any]]) -> None:
        self._maybe_fail()
        self.patches.append(ops)
        test, add = ops
        if self.job["status"].get("attempt") != test["value"]:
            raise ApiFailure(422, "testing value /status/attempt failed")
        self.job["status"]["checkpoint"] = copy.deepcopy(add["value"])

    def patch_results(self, ops: list[dict[str, Any]]) -> None:
        self._maybe_fail()
        self.patches.append(ops)
        test, add = ops
        if self.data.get("attempt") != test["value"]:
            raise ApiFailure(422, "testing value /data/attempt failed")
        self.data[add["path"].removeprefix("/data/")] = add["value"]


def _backend(api: FakeApi, attempt: int = 1) -> KubernetesBackend:
    return KubernetesBackend(api, job="report", namespace="ns", attempt=attempt)


def test_load_reads_checkpoint_results_and_budgets() -> None:
    api = FakeApi(attempt=2)
    api.job["status"]["checkpoint"] = {"steps": [{"name": "a", "state": "Completed", "attempt": 1}]}
    api.data["a.json"] = json.dumps({"uri": "s3://x"})
    snapshot = _backend(api, attempt=2).load()
    assert snapshot.attempt == 2
    assert snapshot.checkpoint == api.job["status"]["checkpoint"]
    assert snapshot.results == {"a": {"uri": "s3://x"}}
    assert snapshot.settings.interval_seconds == 30
    assert snapshot.settings.max_bytes == 4096
    assert snapshot.settings.results_max_bytes == 524288


def test_a_pod_of_an_older_attempt_is_fenced_out_at_load() -> None:
    with pytest.raises(FencedOut, match="attempt 3 owns the job; this pod is attempt 2"):
        _backend(FakeApi(attempt=3), attempt=2).load()


def test_status_attempt_behind_the_pod_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match=r"status.attempt of ContinuableJob ns/report is 1"):
        _backend(FakeApi(attempt=1), attempt=2).load()


def test_every_checkpoint_write_is_fenced_by_its_first_op() -> None:
    api = FakeApi()
    backend = _backend(api)
    backend.save_checkpoint({"steps": []})
    assert api.patches[-1][0] == {"op": "test", "path": "/status/attempt", "value": 1}
    api.job["status"]["attempt"] = 2
    with pytest.raises(FencedOut, match="attempt 2 owns the job now"):
        backend.save_checkpoint({"steps": [], "currentStep": "late"})
    assert api.job["status"]["checkpoint"] == {"steps": []}


def test_a_422_that_is_not_fencing_is_an_error_quoting_the_server() -> None:
    api = FakeApi()
    api.failures.append(ApiFailure(422, "status.checkpoint.progress.done: Invalid value: -1"))
    with pytest.raises(BackendError, match="Invalid value: -1") as raised:
        _backend(api).save_checkpoint({"steps": []})
    assert not isinstance(raised.value, FencedOut)


@pytest.mark.parametrize("status", [0, 429, 500, 503, 504])
def test_transient_failures_are_retryable(status: int) -> None:
    api = FakeApi()
    api.failures.append(ApiFailure(status, "busy", retry_after=2.0))
    with pytest.raises(BackendUnavailable) as raised:
        _backend(api).save_checkpoint({"steps": []})
    assert raised.value.retry_after == 2.0


def test_not_found_is_not_retried() -> None:
    api = FakeApi()
    api.failures.append(ApiFailure(404, 'continuablejobs.continuable.dev "report" not found'))
    with pytest.raises(BackendError) as raised:
        _backend(api).load()
    assert not isinstance(raised.value, BackendUnavailable)
    assert "HTTP 404" in str(raised.value)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_is_retried_for_a_while_then_taken_at_its_word(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi()
    backend = _backend(api)
    api.failures.append(ApiFailure(status, "forbidden"))
    with pytest.raises(BackendUnavailable, match="retrying for a while"):
        backend.load()
    backend.load()  # the API server's caches are loaded: it works again
    monkeypatch.setattr("continuable.backends.kubernetes.AUTH_GRACE_SECONDS", 0.0)
    api.failures.append(ApiFailure(status, "forbidden"))
    with pytest.raises(BackendError) as raised:
        backend.load()
    assert not isinstance(raised.value, BackendUnavailable)
    assert f"HTTP {status}" in str(raised.value)


def test_results_are_fenced_on_the_config_maps_attempt_key() -> None:
    api = FakeApi()
    backend = _backend(api)
    backend.save_result("fetch", "[1,2]")
    assert api.data["fetch.json"] == "[1,2]"
    assert api.patches[-1][0] == {"op": "test", "path": "/data/attempt", "value": "1"}
    api.data["attempt"] = "2"
    api.job["status"]["attempt"] = 2
    with pytest.raises(FencedOut):
        backend.save_result("other", "3")
    assert "other.json" not in api.data


def test_termination_reason_from_the_pods_disruption_target() -> None:
    api = FakeApi()
    backend = _backend(api)
    assert backend.termination_reason() is None
    api.pod["status"]["conditions"].append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
        }
    )
    assert backend.termination_reason() == "EvictionByEvictionAPI: Eviction API: evicting"
    api.failures.append(ApiFailure(403, "pods is forbidden"))
    assert backend.termination_reason() is None


def _three_steps(job: Job) -> None:
    job.step("fetch", lambda: [1, 2, 3])

    @job.step
    def work(step: Step) -> None:
        for _ in step.range(5):
            pass

    job.step("notify", lambda: None)


def test_a_job_carries_on_through_transient_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("continuable.retrying.FIRST_DELAY", 0.0)
    api = FakeApi()
    api.failures += [ApiFailure(503, "etcd leader changed"), ApiFailure(0, "refused")] * 3
    with Job(backend=_backend(api), exit_process=False, handle_signals=False) as job:
        _three_steps(job)
    assert job.outcome is not None
    assert job.outcome.stop_reason == "Completed"
    assert api.job["status"]["checkpoint"]["stopReason"] == "Completed"
    assert json.loads(api.data["fetch.json"]) == [1, 2, 3]


def test_a_completion_that_cannot_be_saved_ends_as_interrupted_never_succeeded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("continuable.jobs.GIVE_UP_AFTER_TERMINATION_SECONDS", 0.0)
    api = FakeApi()

    def job_fn(job: Job) -> None:
        @job.step
        def only(step: Step) -> int:
            api.failures += [ApiFailure(503, "unavailable")] * 1000
            job._request_termination("SIGTERM received")
            return 1

    with Job(backend=_backend(api), exit_process=False, handle_signals=False) as job:
        job_fn(job)
    assert job.outcome is not None
    assert job.outcome.stop_reason == "Interrupted"
    assert job.outcome.exit_code == 75
    assert (api.job["status"].get("checkpoint") or {}).get("stopReason") != "Completed"


def test_a_zombie_stops_at_its_next_write_and_leaves_the_new_attempt_intact() -> None:
    api = FakeApi()

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            step.set(10)
            # Attempt 2 starts elsewhere and writes its own progress.
            api.job["status"]["attempt"] = 2
            api.data["attempt"] = "2"
            api.job["status"]["checkpoint"] = {"steps": [], "attempt": 2, "currentStep": "work"}
            step.set(11)

    with Job(backend=_backend(api), exit_process=False, handle_signals=False) as job:
        job_fn(job)
    assert job.outcome is not None
    assert job.outcome.exit_code == 75
    assert isinstance(job.outcome.error, FencedOut)
    assert api.job["status"]["checkpoint"] == {"steps": [], "attempt": 2, "currentStep": "work"}
