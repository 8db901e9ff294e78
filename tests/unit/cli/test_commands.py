"""The commands end to end against a fake cluster behind the CLI's own seam."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from continuable.cli import make_app
from continuable.cli.cluster import ConnectOptions
from continuable.cli.errors import ApiError

from .conftest import NOW, RUNNING, FakeCluster, failed_not_replayable, pod


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def invoke(cluster: FakeCluster, sleeps: list[float]) -> Any:
    def connect(options: ConnectOptions) -> FakeCluster:
        cluster.connected_with.append(options)
        return cluster

    app = make_app(connect, sleep=sleeps.append, clock=lambda: NOW)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input)

    return run


def succeeded() -> dict[str, Any]:
    job = copy.deepcopy(RUNNING)
    job["status"]["phase"] = "Succeeded"
    job["status"]["checkpoint"]["stopReason"] = "Completed"
    return job


# status


def test_status_shows_steps_attempts_and_conditions(invoke: Any, cluster: FakeCluster) -> None:
    result = invoke("status", "order-batch")

    assert result.exit_code == 0, result.output
    assert "ContinuableJob shop/order-batch" in result.stdout
    assert "process_orders" in result.stdout
    assert "3100/5000 62%" in result.stdout
    assert "ManualInterruption" in result.stdout
    assert cluster.calls == [("get_job", "shop", "order-batch")]  # the context's namespace


def test_status_json_is_the_status_for_scripts(invoke: Any) -> None:
    result = invoke("status", "cjob/order-batch", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == RUNNING["status"]


def test_global_options_go_before_the_command_and_after_it(
    invoke: Any, cluster: FakeCluster
) -> None:
    before = invoke(
        "--kubeconfig",
        "/k",
        "--context",
        "dev",
        "-n",
        "shop",
        "-o",
        "json",
        "status",
        "order-batch",
    )
    after = invoke("-n", "elsewhere", "status", "order-batch", "-n", "shop", "--context", "prod")

    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)["phase"] == "Running"
    assert after.exit_code == 0, after.output
    assert cluster.connected_with == [ConnectOptions("/k", "dev"), ConnectOptions(None, "prod")]


def test_status_of_a_missing_job_is_a_clear_error(invoke: Any, cluster: FakeCluster) -> None:
    result = invoke("status", "nightly", "-n", "shop")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert 'error: continuablejob "nightly" not found in namespace "shop"' in result.stderr


def test_status_of_a_bad_name_is_refused_before_any_call(invoke: Any, cluster: FakeCluster) -> None:
    result = invoke("status", "pod/order-batch-1")

    assert result.exit_code == 1
    assert "is not a ContinuableJob" in result.stderr
    assert cluster.calls == []


def test_status_watch_prints_a_line_per_change_until_the_job_ends(
    invoke: Any, cluster: FakeCluster, sleeps: list[float]
) -> None:
    later = copy.deepcopy(RUNNING)
    later["status"]["checkpoint"]["progress"] = {"done": 4000, "total": 5000, "summary": "4000"}
    cluster.add_job(RUNNING, RUNNING, later, succeeded())

    result = invoke("status", "order-batch", "-w", "--interval", "0.5")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Running  attempt 2  step process_orders  3100/5000 62%",
        "Running  attempt 2  step process_orders  4000/5000 80%",
        "Succeeded  attempt 2  step process_orders  3100/5000 62%",
    ]
    assert sleeps == [0.5, 0.5, 0.5]


def test_status_watch_exits_1_when_the_job_fails(invoke: Any, cluster: FakeCluster) -> None:
    failed = failed_not_replayable()
    failed["metadata"]["name"] = "order-batch"
    cluster.add_job(RUNNING, failed)

    result = invoke("status", "order-batch", "--watch", "-o", "json")

    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["phase"] for line in lines] == ["Running", "Failed"]


# interrupt


def test_interrupt_stamps_the_running_pod_then_deletes_it(
    invoke: Any, cluster: FakeCluster
) -> None:
    cluster.pods["order-batch"] = [pod("order-batch-1", 1, "Failed"), pod("order-batch-2", 2)]

    result = invoke("interrupt", "order-batch")

    assert result.exit_code == 0, result.output
    (stamp, delete) = cluster.writes()
    assert stamp[:3] == ("patch_pod_status", "shop", "order-batch-2")
    (condition,) = stamp[3]["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "DisruptionTarget",
        "True",
        "ManualInterruption",
    )
    assert "continuable interrupt" in condition["message"]
    assert delete == ("delete_pod", "shop", "order-batch-2", "uid-order-batch-2", None)
    assert "Interrupted order-batch: pod order-batch-2 (attempt 2)" in result.stdout
    assert "step process_orders, last saved cursor 3100" in " ".join(result.stdout.split())


def test_interrupt_json_and_grace_period(invoke: Any, cluster: FakeCluster) -> None:
    cluster.pods["order-batch"] = [pod("order-batch-2", 2)]

    result = invoke("interrupt", "order-batch", "--grace-period", "5", "-o", "json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["pod"] == "order-batch-2"
    assert answer["attempt"] == 2
    assert answer["condition"]["reason"] == "ManualInterruption"
    assert cluster.writes()[-1] == ("delete_pod", "shop", "order-batch-2", "uid-order-batch-2", 5)


def test_interrupt_without_a_running_pod_changes_nothing(invoke: Any, cluster: FakeCluster) -> None:
    cluster.add_job(succeeded())
    cluster.pods["order-batch"] = [pod("order-batch-2", 2, "Succeeded")]

    result = invoke("interrupt", "order-batch")

    assert result.exit_code == 1
    assert "job order-batch has no running pod to interrupt: it has finished" in result.stderr
    assert cluster.writes() == []


def test_interrupt_without_permission_to_stamp_does_not_delete(
    invoke: Any, cluster: FakeCluster
) -> None:
    cluster.pods["order-batch"] = [pod("order-batch-2", 2)]
    cluster.errors["patch_pod_status"] = ApiError(403, "cannot patch pods/status")

    result = invoke("interrupt", "order-batch")

    assert result.exit_code == 1
    assert "needs `patch` on `pods/status`" in result.stderr
    assert [call[0] for call in cluster.writes()] == ["patch_pod_status"]


def test_interrupt_of_a_pod_that_vanished_meanwhile(invoke: Any, cluster: FakeCluster) -> None:
    cluster.pods["order-batch"] = [pod("order-batch-2", 2)]
    cluster.errors["delete_pod"] = ApiError(404, "not found")

    result = invoke("interrupt", "order-batch")

    assert result.exit_code == 1
    assert 'cannot delete pod "order-batch-2": it no longer exists in namespace "shop"' in (
        result.stderr
    )


# restart


def test_restart_with_yes_sets_the_annotations(invoke: Any, cluster: FakeCluster) -> None:
    result = invoke("restart", "order-batch", "--from-step", "process_orders", "--yes")

    assert result.exit_code == 0, result.output
    ((call, namespace, name, patch),) = cluster.writes()
    assert (call, namespace, name) == ("patch_job", "shop", "order-batch")
    annotations = patch["metadata"]["annotations"]
    assert annotations["continuable.dev/restart-from-step"] == "process_orders"
    assert len(annotations["continuable.dev/restart-nonce"]) == 16
    assert "Restart of order-batch from step process_orders requested" in result.stdout


def test_restart_asks_first_and_shows_what_runs_again(invoke: Any, cluster: FakeCluster) -> None:
    result = invoke("restart", "order-batch", input="y\n")

    assert result.exit_code == 0, result.output
    assert "Restart continuablejob shop/order-batch from its first step." in result.stdout
    assert "run again (checkpoint and results dropped): fetch_orders, process_orders" in (
        result.stdout
    )
    assert "Proceed? [y/N]" in result.stdout
    (write,) = cluster.writes()
    assert write[3]["metadata"]["annotations"]["continuable.dev/restart-from-step"] == "*"


@pytest.mark.parametrize("answer", ["n\n", "\n", None])
def test_restart_not_confirmed_changes_nothing(
    invoke: Any, cluster: FakeCluster, answer: str | None
) -> None:
    result = invoke("restart", "order-batch", "--from-step", "fetch_orders", input=answer)

    assert result.exit_code == 1
    assert "restart not confirmed; nothing changed (--yes skips the question)" in result.stderr
    assert cluster.writes() == []


def test_restart_from_an_unknown_step_lists_the_known_ones(
    invoke: Any, cluster: FakeCluster
) -> None:
    result = invoke("restart", "order-batch", "--from-step", "notfy", "-y")

    assert result.exit_code == 1
    assert "has no step 'notfy'; its steps: fetch_orders, process_orders, notify" in (result.stderr)
    assert cluster.writes() == []


def test_restart_json(invoke: Any, cluster: FakeCluster) -> None:
    cluster.add_job(failed_not_replayable())

    result = invoke("restart", "ai-report", "--from-step", "deliver", "-y", "-o", "json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["fromStep"] == "deliver"
    assert answer["kept"] == ["extract", "summarise", "format"]
    assert answer["rerun"] == ["deliver"]
    assert (
        cluster.writes()[0][3]["metadata"]["annotations"]["continuable.dev/restart-nonce"]
        == (answer["nonce"])
    )


# logs


def test_logs_print_the_current_pods_log(invoke: Any, cluster: FakeCluster) -> None:
    cluster.pods["order-batch"] = [pod("order-batch-2", 2)]
    cluster.logs["order-batch-2"] = ["continuable: step fetch_orders skipped\n", "continuable: "]
    cluster.logs["order-batch-2"].append("step process_orders resumed at cursor 3100\n")

    result = invoke("logs", "order-batch")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "continuable: step fetch_orders skipped\n"
        "continuable: step process_orders resumed at cursor 3100\n"
    )
    assert cluster.calls[-1] == ("pod_log", "shop", "order-batch-2", "job", False, None)


def test_logs_of_an_attempt_followed(invoke: Any, cluster: FakeCluster) -> None:
    result = invoke("logs", "order-batch", "--attempt", "1", "-f", "--tail", "20", "-c", "job")

    assert result.exit_code == 0, result.output
    assert cluster.calls[-1] == ("pod_log", "shop", "order-batch-1", "job", True, 20)


def test_logs_of_a_deleted_pod(invoke: Any, cluster: FakeCluster) -> None:
    cluster.errors["pod_log"] = ApiError(404, 'pods "order-batch-1" not found')

    result = invoke("logs", "order-batch", "--attempt", "1")

    assert result.exit_code == 1
    assert 'cannot read the log of pod "order-batch-1": it no longer exists' in result.stderr
    assert "an interrupted attempt's pod is deleted, and its log with it" in result.stderr


# the program


def test_help_lists_the_commands(invoke: Any) -> None:
    result = invoke("--help")

    assert result.exit_code == 0
    for command in ("status", "interrupt", "restart", "logs"):
        assert command in result.stdout


def test_the_kubectl_plugin_names_itself_so() -> None:
    result = CliRunner().invoke(make_app(), ["--help"], prog_name="kubectl continuable")
    assert "Usage: kubectl continuable" in result.stdout


def test_version(invoke: Any) -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("continuable 0.")


def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        make_app(), ["--kubeconfig", str(tmp_path / "none"), "status", "order-batch"]
    )

    assert result.exit_code == 1
    assert "error: cannot load a kubeconfig" in result.stderr


def test_an_unreachable_api_server_is_a_clear_error(tmp_path: Path) -> None:
    """The real seam over the kubernetes client, pointed at a port nobody listens on."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )

    result = CliRunner().invoke(make_app(), ["--kubeconfig", str(kubeconfig), "status", "a"])

    assert result.exit_code == 1
    assert "error: cannot reach the API server at https://127.0.0.1:1" in result.stderr
