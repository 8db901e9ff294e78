"""A concurrent step (`amap`, 32 at a time) on the process node, stopped and resumed: finished
items never run again; items in flight finish within the grace period, or run again after a
SIGKILL (issue 26)."""

from __future__ import annotations

from collections import Counter

import pytest
from kubernetes import client, config

from tests.cluster.session import Cluster
from tests.cluster.waiting import wait_for
from tests.e2e.jobs import PYTHON, JobUnderTest

pytestmark = pytest.mark.e2e

MANY_ITEMS = "tests/e2e/operator/jobs/many_items.py"
ITEMS, CONCURRENCY, ITEM_SECONDS = 2000, 32, 0.05


def _starts(job: JobUnderTest) -> Counter[int]:
    return Counter(int(line.split()[1]) for line in job.lines() if line.startswith("start "))


def _wait_done(job: JobUnderTest, count: int, *, in_attempt: int = 1) -> None:
    """Until `count` items are done by attempt `in_attempt` and those before it, looking every
    20 ms: at 32 x 50 ms the job does 640 items a second, so a slower look would stop it much
    later than asked, or not at all."""

    def done() -> bool:
        lines = job.lines()
        starts = _attempt_starts(lines)
        if len(starts) < in_attempt:
            return False
        upto = starts[in_attempt] if len(starts) > in_attempt else len(lines)
        return (
            sum(line.startswith("item ") for line in lines[starts[in_attempt - 1] : upto]) >= count
        )

    wait_for(done, timeout=90, what=f"{count} items done", interval=0.02, max_interval=0.02)


def _attempt_starts(lines: list[str]) -> list[int]:
    """Where each attempt's lines begin in the events file."""
    return [i for i, line in enumerate(lines) if line.startswith("attempt ")]


def test_deleted_then_evicted_every_item_runs_once(crds: Cluster, job: JobUnderTest) -> None:
    """Stopped twice by SIGTERM (a deletion at half the items, an eviction later): each time the
    items in flight finish within the grace period (10 s here), so not one item runs twice."""
    # Made first: making a client takes most of a second, the job's whole second attempt 1.5 s.
    core = client.CoreV1Api(config.new_client_from_config(str(crds.kubeconfig)))
    job.create([PYTHON, MANY_ITEMS], env={"ITEM_SECONDS": str(ITEM_SECONDS)})
    _wait_done(job, ITEMS // 2)
    job.delete_pod(1)
    # The second attempt has about 1,000 items left, 1.5 s of work: it is evicted early enough
    # in them (about 60 % of the job) that the eviction reaches it before it ends.
    _wait_done(job, 200, in_attempt=2)
    core.create_namespaced_pod_eviction(
        f"{job.name}-2",
        job.namespace,
        {"metadata": {"name": f"{job.name}-2", "namespace": job.namespace}},
    )
    status = job.wait_phase("Succeeded", timeout=120)

    assert sorted(job.items()) == list(range(ITEMS)), "every item done, each once"
    repeats = sorted(i for i, n in _starts(job).items() if n > 1)
    assert repeats == [], "the items in flight finished before each stop: none ran again"
    assert status["interruptions"] == 2, status["attempts"]
    assert status["failures"] == 0
    assert [a["reason"] for a in status["attempts"][:2]] == ["PodDeleted", "EvictionByEvictionAPI"]
    assert [a["exitCode"] for a in status["attempts"][:2]] == [75, 75]
    assert len(_attempt_starts(job.lines())) == 3


def test_after_a_sigkill_at_most_an_interval_of_items_plus_those_in_flight_repeat(
    job: JobUnderTest,
) -> None:
    """No drain after a SIGKILL: what repeats is the items done since the last checkpoint
    write (at most one interval's worth, 1 s here) and the items in flight (at most N)."""
    job.create([PYTHON, MANY_ITEMS], env={"ITEM_SECONDS": str(ITEM_SECONDS), "KILL_AFTER": "1000"})
    job.wait_phase("Succeeded", timeout=180)

    done = job.items()
    assert sorted(set(done)) == list(range(ITEMS)), "every item done"
    repeated = len(done) - ITEMS
    # The pace of the first attempt: items done per second, on the host's clock.
    lines = job.events.read_text().splitlines()
    first = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("item ")][:1000]
    pace = len(first) / (first[-1] - first[0])
    interval = 1.0
    assert repeated <= pace * interval + CONCURRENCY, (repeated, pace)
