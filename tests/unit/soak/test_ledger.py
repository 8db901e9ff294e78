"""The ledger judge: what the jobs' code did against what the faults allow."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.soak.judges import ledger as judge
from tests.soak.records import Records

from .conftest import Ledger, clean_ledger, fault, job, records, sdk_status


def clean() -> Records:
    return records(ledger=clean_ledger())


def graceful_resume() -> Records:
    ledger = Ledger()
    stopped = ledger.add(1, ["fetch", 0, 1, 2, 3, 4])
    ledger.wait(2)
    ledger.add(2, [5, 6, 7, 8, 9, "notify"])
    return records(ledger=ledger, faults=[fault("pod-delete", stopped + 0.05)])


def repeat_after_graceful() -> Records:
    ledger = Ledger()
    stopped = ledger.add(1, ["fetch", 0, 1, 2, 3, 4])
    ledger.add(2, [4, 5, 6, 7, 8, 9, "notify"])
    return records(ledger=ledger, faults=[fault("evict", stopped + 0.05)])


def repeat_without_fault() -> Records:
    ledger = Ledger()
    ledger.add(1, ["fetch", 0, 1, 2])
    ledger.add(2, [2, *range(3, 10), "notify"])
    return records(ledger=ledger)


def sigkill_within_interval() -> Records:
    # 5 items per 1 s interval: 4 lost items repeat, within one interval (+1 slack).
    ledger = Ledger()
    killed = ledger.add(1, ["fetch", 0, 1, 2, 3, 4, 5, 6])
    ledger.add(2, [3, 4, 5, 6, 7, 8, 9, "notify"])
    return records(ledger=ledger, faults=[fault("sigkill", killed + 0.05)])


def sigkill_beyond_interval() -> Records:
    ledger = Ledger()
    killed = ledger.add(1, ["fetch", *range(15)])
    ledger.add(2, [*range(20), "notify"])
    return records(jobs=[job(items=20)], ledger=ledger, faults=[fault("sigkill", killed + 0.05)])


def partition_within_interval() -> Records:
    ledger = Ledger()
    lost = ledger.add(1, ["fetch", 0, 1, 2, 3, 4])
    ledger.add(2, [2, 3, 4, 5, 6, 7, 8, 9, "notify"])
    return records(ledger=ledger, faults=[fault("partition", lost + 0.05, node="n1")])


def zombie_redoes_new_attempts_items() -> Records:
    # A partitioned attempt 1 runs on after attempt 2 started: the older attempt is charged.
    ledger = Ledger()
    lost = ledger.add(1, ["fetch", 0, 1, 2])
    ledger.add(2, [2, 3])
    ledger.add(1, [3])
    ledger.add(2, [4, 5, 6, 7, 8, 9, "notify"])
    return records(ledger=ledger, faults=[fault("partition", lost + 0.05)])


def notify_twice() -> Records:
    ledger = clean_ledger()
    killed = ledger.t
    ledger.add(2, ["notify"])
    return records(ledger=ledger, faults=[fault("sigkill", killed)])


def same_attempt_goes_back() -> Records:
    ledger = Ledger()
    ledger.add(1, ["fetch", 0, 1, 2, 1, *range(3, 10), "notify"])
    return records(ledger=ledger)


def missing_items() -> Records:
    ledger = Ledger()
    ledger.add(1, ["fetch", 0, 1, 2, 5, 6, 7, 8, 9, "notify"])
    return records(ledger=ledger)


def fetch_after_loop() -> Records:
    # fetch had completed (the loop started): a SIGKILL does not excuse running it again.
    ledger = Ledger()
    killed = ledger.add(1, ["fetch", 0, 1])
    ledger.add(2, ["fetch", 1, *range(2, 10), "notify"])
    return records(ledger=ledger, faults=[fault("sigkill", killed + 0.05)])


def restart_from_items() -> Records:
    # A person restarts from `items` after the job finished: a new pass of items and notify.
    ledger = clean_ledger()
    asked = ledger.wait(1)
    ledger.add(2, [*range(10), "notify"])
    return records(ledger=ledger, faults=[fault("restart", asked, detail="items")])


def restart_from_notify_reruns_items() -> Records:
    ledger = clean_ledger()
    asked = ledger.wait(1)
    ledger.add(2, [9, "notify"])
    return records(ledger=ledger, faults=[fault("restart", asked, detail="notify")])


def isolated_restart_from_second_half() -> Records:
    steps = ("fetch", "items_a", "items_b", "notify")
    ledger = Ledger()
    ledger.add(1, ["fetch", 0, 1, 2, 3, 4])
    ledger.add(2, [5, 6, 7, 8, 9, "notify"])
    asked = ledger.wait(1)
    ledger.add(3, [5, 6, 7, 8, 9, "notify"])
    return records(
        jobs=[job(steps=steps)],
        ledger=ledger,
        faults=[fault("restart", asked, 2, detail="from-step=items_b")],
    )


def recreated_name() -> Records:
    # The first uid is deleted midway; the second starts over: no repeats across uids.
    ledger = Ledger()
    ledger.add(1, ["fetch", 0, 1, 2], uid="old")
    ledger.wait(2)
    ledger.add(1, ["fetch", *range(10), "notify"], uid="new")
    return records(
        jobs=[job(uid="old", phase=None), job(uid="new", created=1.5)],
        ledger=ledger,
        faults=[fault("recreate", 1.7, detail="old=old new=new")],
    )


def outage_allows_three_intervals() -> Records:
    # An API server restart just before the SIGKILL: the cursor may run 3 intervals ahead.
    ledger = Ledger()
    killed = ledger.add(1, ["fetch", *range(14)])
    ledger.add(2, [*range(2, 20), "notify"])
    return records(
        jobs=[job(items=20)],
        ledger=ledger,
        faults=[
            fault("apiserver-restart", killed - 2.5, None, job=None, reached=False),
            fault("sigkill", killed + 0.05),
        ],
    )


def sigkill_after_a_slow_save(*, last_save_before: float) -> Records:
    # 5 items a second, a 1 s interval; attempt 1's saves are in the audit log, the last one
    # received `last_save_before` seconds before the SIGKILL and answered 1.9 s later (a busy
    # API server). Attempt 2 resumes from it.
    ledger = Ledger()
    ledger.add(1, ["fetch"])
    began = ledger.t
    killed = ledger.add(1, range(40))
    last = killed - last_save_before
    resumed = next(x for x in ledger.lines if x.t >= last and x.what.isdigit())
    ledger.add(2, [*range(int(resumed.what), 40), "notify"])
    saves = [sdk_status(t + 1.9, 1, took=1.9) for t in (began, began + 3.0, last)]
    return records(
        jobs=[job(items=40)],
        ledger=ledger,
        faults=[fault("sigkill", killed + 0.05)],
        audit=saves,
    )


CASES: list[tuple[str, Callable[[], Records], str | None]] = [
    ("clean run", clean, None),
    ("graceful stop, resumed at the cursor", graceful_resume, None),
    ("repeat after a graceful stop", repeat_after_graceful, "which allows no repeat"),
    ("repeat with no fault", repeat_without_fault, "ended with no fault"),
    ("repeats within one interval after SIGKILL", sigkill_within_interval, None),
    ("repeats beyond one interval after SIGKILL", sigkill_beyond_interval, "more than one"),
    ("repeats within one interval after a partition", partition_within_interval, None),
    ("a zombie redoes the new attempt's item", zombie_redoes_new_attempts_items, None),
    ("notify twice", notify_twice, "notify ran twice"),
    ("the same attempt goes back", same_attempt_goes_back, "same attempt went back"),
    ("items never done", missing_items, "never done: 3, 4"),
    ("fetch again after the loop started", fetch_after_loop, "step fetch ran again"),
    ("restart from the loop: a new pass", restart_from_items, None),
    ("restart from notify: the loop must not rerun", restart_from_notify_reruns_items, "9"),
    ("isolated halves, restart from the second", isolated_restart_from_second_half, None),
    ("a re-created name starts over", recreated_name, None),
    ("an API outage allows the held-back lead", outage_allows_three_intervals, None),
    (
        "a slow save excuses what was done while it was under way",
        lambda: sigkill_after_a_slow_save(last_save_before=2.8),
        None,
    ),
    (
        "saves that stopped coming are caught",
        lambda: sigkill_after_a_slow_save(last_save_before=7.0),
        "more than one",
    ),
]


@pytest.mark.parametrize(("build", "violation"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_ledger(build: Callable[[], Records], violation: str | None) -> None:
    verdict = judge.judge(build())
    if violation is None:
        assert verdict.held, verdict.evidence
    else:
        assert not verdict.held
        assert any(violation in line for line in verdict.evidence), verdict.evidence


def test_failed_job_is_not_asked_to_be_complete() -> None:
    ledger = Ledger()
    ledger.add(1, ["fetch", 0, 1])
    verdict = judge.judge(records(jobs=[job(phase="Failed")], ledger=ledger))
    assert verdict.held, verdict.evidence


def test_figures_count_repeats_after_lossy_faults() -> None:
    verdict = judge.judge(sigkill_within_interval())
    assert verdict.figures["repeats"] == 4
    assert verdict.figures["repeats_after_lossy_faults"] == 4
