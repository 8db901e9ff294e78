"""`continuable restart`: which steps run again, the annotations, and refusals."""

from __future__ import annotations

import copy

import pytest

from continuable.cli.errors import CliError
from continuable.cli.restarting import new_nonce, plan_restart, restart_patch

from .conftest import RUNNING, failed_not_replayable


def test_the_patch_sets_the_step_and_a_nonce() -> None:
    assert restart_patch("summarise", "0123abcd") == {
        "metadata": {
            "annotations": {
                "continuable.dev/restart-from-step": "summarise",
                "continuable.dev/restart-nonce": "0123abcd",
            }
        }
    }


def test_nonces_are_random_hex() -> None:
    first, second = new_nonce(), new_nonce()
    assert first != second
    assert len(first) == 16
    int(first, 16)


def test_from_a_step_keeps_the_steps_before_it() -> None:
    plan = plan_restart(failed_not_replayable(), "summarise")

    assert plan.from_step == "summarise"
    assert plan.kept == ["extract"]
    assert plan.rerun == ["summarise", "format", "deliver"]
    assert plan.running_pod is None
    assert plan.patch("n")["metadata"]["annotations"]["continuable.dev/restart-from-step"] == (
        "summarise"
    )


@pytest.mark.parametrize("from_step", [None, "*"])
def test_without_a_step_everything_runs_again(from_step: str | None) -> None:
    plan = plan_restart(RUNNING, from_step)

    assert plan.from_step == "*"
    assert plan.kept == []
    assert plan.rerun == ["fetch_orders", "process_orders"]
    assert plan.running_pod == "order-batch-2"


def test_the_description_says_what_is_kept_and_what_runs_again() -> None:
    assert plan_restart(RUNNING, "process_orders").describe("shop") == (
        "Restart continuablejob shop/order-batch from step process_orders.\n"
        "  kept (completed, not run again): fetch_orders\n"
        "  run again (checkpoint and results dropped): process_orders\n"
        "  the running pod order-batch-2 is stopped first"
    )
    fresh = {"metadata": {"name": "x"}, "status": {"phase": "Pending"}}
    assert plan_restart(fresh, None).describe("default") == (
        "Restart continuablejob default/x from its first step.\n"
        "  no step has run yet: the job simply starts again"
    )


def test_an_unknown_step_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(CliError) as raised:
        plan_restart(RUNNING, "proces_orders")

    assert raised.value.message == (
        "job order-batch has no step 'proces_orders'; its steps: fetch_orders, process_orders, "
        "notify (did you mean 'process_orders'?)"
    )


def test_a_step_neither_reported_nor_expected_is_refused() -> None:
    with pytest.raises(
        CliError, match=r"no step 'cleanup'; its steps: fetch_orders, process_orders, notify$"
    ):
        plan_restart(RUNNING, "cleanup")


def test_a_step_of_a_job_that_reported_none_and_expects_none_is_refused() -> None:
    job = copy.deepcopy(RUNNING)
    del job["status"]["checkpoint"]
    del job["spec"]["steps"]

    with pytest.raises(CliError, match="it has not reported any step yet; restart it from the"):
        plan_restart(job, "fetch_orders")


def test_a_step_spec_steps_expects_may_be_named_before_it_ran() -> None:
    """The operator accepts the steps of spec.steps too: the CLI agrees with it."""
    plan = plan_restart(RUNNING, "notify")  # spec.steps: fetch_orders, process_orders, notify

    assert plan.from_step == "notify"
    assert plan.rerun == ["notify"]
