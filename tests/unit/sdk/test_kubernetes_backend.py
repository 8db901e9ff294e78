"""The in-pod backend against a fake of our own `JobApi` seam: fencing, results, retries."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from continuable import BackendError, FencedOut, Job, ResultTooLarge, Step
from continuable.backends.jobapi import ApiFailure
from continuable.backends.kubernetes import KubernetesBackend
from continuable.errors import BackendUnavailable

UID = "4d7c1f0e-job-uid"
# The API server refuses a ConfigMap whose data keys and values pass 1 MiB.
CONFIG_MAP_DATA_LIMIT = 1024 * 1024


class FakeApi:
    """Holds one ContinuableJob and its results ConfigMap; applies JSON patches as the API
    server does for the ops we send (a failing `test` op answers 422 and changes nothing, and so
    does a ConfigMap whose data passes 1 MiB); a deleted object answers 404."""

    def __init__(self, attempt: int = 1) -> None:
        self.job: dict[str, Any] = {}
        self.config_map: dict[str, Any] = {}
        self.deleted = False
        self.recreate(UID, attempt=attempt)
        self.pod: dict[str, Any] = {"status": {"conditions": []}}
        self.failures: list[ApiFailure] = []
        # The pod's token is refused (its pod was deleted): every call answers 401.
        self.unauthorized = False
        self.patches: list[list[dict[str, Any]]] = []

    def recreate(self, uid: str, *, attempt: int = 1) -> None:
        """The job is (deleted and) created under its name, and its ConfigMap made for it."""
        self.deleted = False
        self.job = {
            "metadata": {"name": "report", "namespace": "ns", "uid": uid},
            "spec": {"checkpoint": {"intervalSeconds": 30, "maxBytes": 4096}},
            "status": {"attempt": attempt},
        }
        owner = {"kind": "ContinuableJob", "name": "report", "uid": uid, "controller": True}
        self.config_map = {
            "metadata": {"name": "report-results", "ownerReferences": [owner]},
            "data": {"attempt": str(attempt)},
        }

    def delete(self) -> None:
        """The job is deleted; garbage collection takes its ConfigMap."""
        self.deleted = True

    @property
    def data(self) -> dict[str, str]:
        data: dict[str, str] = self.config_map["data"]
        return data

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)
        if self.unauthorized:
            raise ApiFailure(401, "Unauthorized")
        if self.deleted:
            raise ApiFailure(404, 'continuablejobs.continuable.dev "report" not found')

    def get_job(self) -> dict[str, Any]:
        self._maybe_fail()
        return copy.deepcopy(self.job)

    def get_results(self) -> dict[str, str]:
        self._maybe_fail()
        return dict(self.data)

    def get_pod(self, name: str) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        if self.unauthorized:
            raise ApiFailure(401, "Unauthorized")
        return self.pod

    def patch_status(self, ops: list[dict[str, Any]]) -> None:
        self._maybe_fail()
        self.patches.append(ops)
        self.job = _patched(self.job, ops)

    def patch_results(self, ops: list[dict[str, Any]]) -> None:
        self._maybe_fail()
        self.patches.append(ops)
        patched = _patched(self.config_map, ops)
        size = sum(len(k.encode()) + len(v.encode()) for k, v in patched["data"].items())
        if size > CONFIG_MAP_DATA_LIMIT:
            raise ApiFailure(422, f"[]: Too long: must have at most {CONFIG_MAP_DATA_LIMIT} bytes")
        self.config_map = patched


def _patched(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """`obj` with the JSON patch applied (RFC 6902 `test` and `add`), or 422 for all of it."""
    patched = copy.deepcopy(obj)
    for op in ops:
        *parents, last = [
            part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]
        ]
        target: Any = patched
        try:
            for part in parents:
                target = target[int(part) if isinstance(target, list) else part]
            if op["op"] == "test":
                if target[int(last) if isinstance(target, list) else last] != op["value"]:
                    raise ApiFailure(422, f"testing value {op['path']} failed")
            else:
                target[last] = copy.deepcopy(op["value"])
        except (KeyError, IndexError, TypeError) as err:
            raise ApiFailure(422, f"{op['op']} {op['path']}: missing ({err})") from None
    return patched


def _backend(api: FakeApi, attempt: int = 1) -> KubernetesBackend:
    return KubernetesBackend(api, job="report", namespace="ns", attempt=attempt, uid=UID)


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
    assert snapshot.settings.grace_seconds == 30, "Kubernetes' default grace period"


def test_load_reads_the_pods_grace_period_from_the_template() -> None:
    api = FakeApi(attempt=1)
    api.job["spec"]["template"] = {"spec": {"terminationGracePeriodSeconds": 120}}
    assert _backend(api).load().settings.grace_seconds == 120


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


def test_every_write_tests_the_jobs_uid_beside_the_attempt() -> None:
    api = FakeApi()
    backend = _backend(api)
    backend.save_checkpoint({"steps": []})
    backend.save_result("fetch", "[1]")
    status_ops, result_ops = api.patches
    assert status_ops[:2] == [
        {"op": "test", "path": "/status/attempt", "value": 1},
        {"op": "test", "path": "/metadata/uid", "value": UID},
    ]
    assert result_ops[:2] == [
        {"op": "test", "path": "/data/attempt", "value": "1"},
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": UID},
    ]


def _newer_attempt(api: FakeApi) -> None:
    api.job["status"]["attempt"] = 2
    api.data["attempt"] = "2"


def _deleted(api: FakeApi) -> None:
    api.delete()


def _created_again(api: FakeApi) -> None:
    api.recreate("9a1b0c2d-another-job")  # the same name and attempt 1: only the UID tells


@pytest.mark.parametrize("write", ["checkpoint", "result"])
@pytest.mark.parametrize(
    ("displace", "why"),
    [
        (_newer_attempt, "attempt 2 owns the job now"),
        (_deleted, "was deleted"),
        (_created_again, "is another job now"),
    ],
    ids=["a newer attempt", "the job deleted", "the job deleted and created again"],
)
def test_a_pod_that_no_longer_owns_its_job_is_fenced_out(
    displace: Callable[[FakeApi], None], why: str, write: str
) -> None:
    api = FakeApi()
    backend = _backend(api)
    displace(api)
    writes = {
        "checkpoint": lambda: backend.save_checkpoint({"steps": [], "currentStep": "late"}),
        "result": lambda: backend.save_result("late", "1"),
    }
    before = copy.deepcopy((api.job, api.config_map))
    with pytest.raises(FencedOut, match=why):
        writes[write]()
    assert (api.job, api.config_map) == before, "the refused write changed nothing"


def test_a_pod_of_a_deleted_job_is_fenced_out_at_load() -> None:
    api = FakeApi()
    _created_again(api)
    with pytest.raises(FencedOut, match=f"is another job now.*this pod ran for uid {UID}"):
        _backend(api).load()


def test_a_pod_fenced_out_at_load_exits_75_without_running_a_step() -> None:
    api = FakeApi()
    _created_again(api)
    with pytest.raises(SystemExit) as exited, Job(backend=_backend(api), handle_signals=False):
        pytest.fail("a step ran for a job that is gone")
    assert exited.value.code == 75
    assert api.patches == []


def test_a_results_write_refused_while_the_job_is_still_ours_is_an_error() -> None:
    api = FakeApi()
    api.config_map["metadata"]["ownerReferences"][0]["uid"] = "5e6f-someone-else"
    with pytest.raises(BackendError, match="the result of step a was refused"):
        _backend(api).save_result("a", "1")


def test_the_pod_needs_the_jobs_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUABLE_JOB", "report")
    monkeypatch.setenv("CONTINUABLE_NAMESPACE", "ns")
    monkeypatch.setenv("CONTINUABLE_ATTEMPT", "1")
    monkeypatch.delenv("CONTINUABLE_JOB_UID", raising=False)
    with pytest.raises(BackendError, match="CONTINUABLE_JOB_UID must be set"):
        KubernetesBackend.from_environment()


def test_a_422_that_is_not_fencing_is_an_error_quoting_the_server() -> None:
    api = FakeApi()
    api.failures.append(ApiFailure(422, "status.checkpoint.progress.done: Invalid value: -1"))
    with pytest.raises(BackendError, match="Invalid value: -1"):
        _backend(api).save_checkpoint({"steps": []})


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
def test_a_refusal_is_retried_for_a_while(status: int) -> None:
    api = FakeApi()
    backend = _backend(api)
    backend.load()
    api.failures.append(ApiFailure(status, "forbidden"))
    with pytest.raises(BackendUnavailable, match="retrying for a while"):
        backend.save_checkpoint({"steps": []})
    backend.save_checkpoint({"steps": []})  # the API server's caches are loaded: it works again


def test_a_forbidden_that_outlasts_the_grace_is_taken_at_its_word(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeApi()
    backend = _backend(api)
    backend.load()
    monkeypatch.setattr("continuable.backends.kubernetes.AUTH_GRACE_SECONDS", 0.0)
    api.failures.append(ApiFailure(403, "forbidden"))
    with pytest.raises(BackendError) as raised:
        backend.load()
    assert not isinstance(raised.value, BackendUnavailable)
    assert "HTTP 403" in str(raised.value)


def test_a_token_that_never_worked_is_a_setup_error_not_a_zombie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("continuable.backends.kubernetes.AUTH_GRACE_SECONDS", 0.0)
    api = FakeApi()
    api.failures.append(ApiFailure(401, "Unauthorized"))
    with pytest.raises(BackendError) as raised:
        _backend(api).load()
    assert not isinstance(raised.value, BackendUnavailable)
    assert "HTTP 401" in str(raised.value)


@pytest.mark.parametrize("write", ["checkpoint", "result"])
def test_a_401_that_outlasts_the_grace_after_the_token_worked_is_fenced_out(
    write: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pod's token is bound to the pod object: once the pod is deleted (force-deleted on a
    lost node) the API server refuses it for good, and the zombie must stop as fenced out."""
    api = FakeApi()
    backend = _backend(api)
    backend.load()
    writes = {
        "checkpoint": lambda: backend.save_checkpoint({"steps": [], "currentStep": "late"}),
        "result": lambda: backend.save_result("late", "1"),
    }
    api.unauthorized = True
    with pytest.raises(BackendUnavailable, match="retrying for a while"):
        writes[write]()  # within the grace: maybe an API server that just restarted
    monkeypatch.setattr("continuable.backends.kubernetes.AUTH_GRACE_SECONDS", 0.0)
    with pytest.raises(FencedOut, match=r"credentials no longer valid \(the pod was deleted\?\)"):
        writes[write]()
    assert api.patches == []


def test_a_zombie_whose_pod_was_deleted_exits_75(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("continuable.backends.kubernetes.AUTH_GRACE_SECONDS", 0.0)
    monkeypatch.setattr("continuable.retrying.FIRST_DELAY", 0.0)
    api = FakeApi()

    def job_fn(job: Job) -> None:
        job.step("fetch", lambda: [1, 2, 3])

        @job.step
        def work(step: Step) -> None:
            step.set(1)
            api.unauthorized = True  # the pod was force-deleted: its token no longer works

    with Job(backend=_backend(api), exit_process=False, handle_signals=False) as job:
        job_fn(job)
    assert job.outcome is not None
    assert job.outcome.exit_code == 75
    assert isinstance(job.outcome.error, FencedOut)
    assert "stopping without writing: credentials no longer valid (the pod was deleted?)" in (
        caplog.text
    )
    assert "work.json" not in api.data


def test_a_zombie_mid_loop_stops_at_its_next_cursor_once_its_token_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The timer's writer meets the 401; the job's next set() stops it, as fenced out."""
    monkeypatch.setattr("continuable.backends.kubernetes.AUTH_GRACE_SECONDS", 0.0)
    api = FakeApi()
    api.job["spec"]["checkpoint"]["intervalSeconds"] = 1
    reached: list[int] = []

    def job_fn(job: Job) -> None:
        @job.step
        def work(step: Step) -> None:
            deadline = time.monotonic() + 10
            for i in step.range(10**9):
                reached.append(i)
                if i == 5:
                    api.unauthorized = True  # the pod was force-deleted
                assert time.monotonic() < deadline, "the zombie was never stopped"
                time.sleep(0.01)

    with Job(backend=_backend(api), exit_process=False, handle_signals=False) as job:
        job_fn(job)
    assert job.outcome is not None
    assert job.outcome.exit_code == 75
    assert isinstance(job.outcome.error, FencedOut)
    assert "credentials no longer valid" in str(job.outcome.error)
    assert 5 < reached[-1] < 500


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


def test_results_a_1_mib_budget_admits_fit_the_config_map() -> None:
    """At the largest budget, a result either fits the API server's limit on a ConfigMap's data
    (its keys, its values and the `attempt` key count) or is refused at the step that made it,
    never by the API server."""
    outcomes: set[str] = set()
    for size in range(CONFIG_MAP_DATA_LIMIT - 64, CONFIG_MAP_DATA_LIMIT + 1):
        api = FakeApi()
        api.job["spec"]["checkpoint"]["resultsMaxBytes"] = CONFIG_MAP_DATA_LIMIT
        with Job(backend=_backend(api), exit_process=False, handle_signals=False) as job:
            job.step("big", lambda: "x" * size)  # noqa: B023 (the step runs at once)
        assert job.outcome is not None
        error = job.outcome.error
        assert error is None or isinstance(error, ResultTooLarge), (size, error)
        if error is not None:
            assert "the `attempt` key" in str(error)
        outcomes.add(type(error).__name__)
    assert outcomes == {"NoneType", "ResultTooLarge"}, "the window holds the boundary"


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
    monkeypatch.setattr("continuable.stopping.GIVE_UP_AFTER_TERMINATION_SECONDS", 0.0)
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
