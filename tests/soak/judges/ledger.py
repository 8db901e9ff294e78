"""Judge 1, the ledger: what the jobs' code really did, against what the faults allow.

Rules, per job uid (a name re-created has several; completeness is asked of the last only):
- Completeness: when the last uid Succeeded, every item 0..K-1 appears in its step's last pass,
  `fetch` at least once and `notify` exactly once in theirs. A job that Failed is not asked to
  be complete: the liveness judge decides whether its failure was justified.
- No item outside 0..K-1.
- A repeat (see `passes`) is charged to the older of the two attempts. It is excused only when a
  lossy fault (SIGKILL, partition, or any fault the harness marks reached-and-not-graceful)
  reached the charged attempt's pod: a graceful stop saves the cursor, so it allows 0 repeats,
  and so does an attempt that ended by itself (an isolated step's stop, a crash the soak did not
  cause). The same attempt on both sides is never excused. `notify` never repeats: it is
  `idempotent=False`, so the job must stop (StepNotReplayable) rather than run it again.
- Per charged attempt, the repeated items are at most those it did after the last checkpoint
  save the API server received from it before the fault (the audit log), and only up to when the
  next save was due (an interval after that save was answered: the SDK's cadence), plus one
  item. So a slow save (a busy API server) excuses the items done while it was under way, and a
  SDK that stopped saving is caught. Without any save in the audit log, the interval's items are
  estimated from the attempt's own item rate in the ledger (else the uid's), over
  `interval_seconds` plus the attempt's slowest accepted checkpoint write. Where an API
  server restart fell shortly before the fault, the SDK lets the cursor run up to
  HOLD_BACK_INTERVALS ahead of the last save (its documented back-pressure), so that many
  intervals are allowed.
- A step never runs again in a pass after an older attempt moved on to a later step (its
  completion had been saved: invariant 1), however the attempt in between ended.

Can wrongly excuse: repeats within the budget after a lossy fault even when the SDK saved less
often than it should (the budget is the excuse); a step's rerun by an attempt whose older
attempt never reached a later step's ledger line; the budget uses the attempt's average rate,
so a burst right before the kill is judged against the average.
Can wrongly accuse: an attempt whose rate the ledger cannot tell (one item) is judged by the
uid's pooled rate; a restart's pass boundary without the audit log (see `faults`); a ledger
line lost to a torn write (skipped lines are counted in the figures, and can make an item look
missing); a graceful stop whose last flush could not reach a restarting API server within the
grace period. Deliberately strict: a partitioned pod keeps working after it is force-deleted
while its writes get 401 (retried for a while, then held back after HOLD_BACK_INTERVALS), so
its lead can outgrow one interval; the README promises one, so that is reported, not excused
(`intervals={"partition": 3}` would excuse it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from tests.soak.records import Records

from .faults import HOLD_BACK_INTERVALS, OUTAGE_KINDS, OUTAGE_SECONDS
from .passes import Repeat, Run, ceil_items, faults_on, lossy_on
from .verdict import Verdict, short, verdict
from .writes import attempt_saves, checkpoint_latency

NAME = "ledger"
# Items a lossy fault may cost beyond one interval's worth: the item in flight.
SLACK_ITEMS = 1
# The SDK takes a save's snapshot a moment before the API server receives it (on a busy
# 2-core machine the first full run measured up to about a second)...
SNAPSHOT_SLACK_SECONDS = 1.5
# ...and starts the next one an interval after the last was answered, give or take a second of
# a busy machine's scheduling.
CADENCE_SLACK_SECONDS = 1.0
# Intervals of work each lossy kind may cost; kinds not listed: one.
DEFAULT_INTERVALS: Mapping[str, float] = {"sigkill": 1.0, "partition": 1.0}


def _where(run: Run) -> str:
    return f"{run.job.name} (uid {short(run.job.uid)})"


def budget(records: Records, run: Run, attempt: int, intervals: Mapping[str, float]) -> int:
    """The items a lossy end of this attempt may make the next attempt repeat."""
    killers = lossy_on(records, run, attempt)
    killed_at = min(f.t for f in killers)
    count = max(intervals.get(f.kind, 1.0) for f in killers)
    interval = run.job.interval_seconds
    lookback = HOLD_BACK_INTERVALS * interval + OUTAGE_SECONDS
    if any(f.kind in OUTAGE_KINDS and 0 <= killed_at - f.t <= lookback for f in records.faults):
        count = max(count, float(HOLD_BACK_INTERVALS))
    # The process may outlive the fault (an agent restart reaps it later; a partitioned one
    # runs on): it ended with its last item, or at the fault.
    ended = max([killed_at, *(x.t for x in run.items_of(attempt))])
    saves = [
        w.event for w in attempt_saves(records, run.job.uid, attempt) if w.event.received <= ended
    ]
    if saves:
        # The next attempt resumes from the last save the API server received before the
        # end; the one after it was due an interval after that save was answered.
        last = max(saves, key=lambda e: e.received)
        due = last.t + interval * count + CADENCE_SLACK_SECONDS
        unsaved = [
            x
            for x in run.items_of(attempt)
            if last.received - SNAPSHOT_SLACK_SECONDS <= x.t <= min(ended, due)
        ]
        return len(unsaved) + SLACK_ITEMS
    seconds = interval * count + min(checkpoint_latency(records, run.job.uid, attempt), interval)
    rate = run.rate(attempt) or run.pooled_rate()
    if rate is None:
        # Nothing to estimate from: no attempt did two items. Allow what the attempt did.
        return len(run.items_of(attempt)) + SLACK_ITEMS
    return ceil_items(rate, seconds) + SLACK_ITEMS


def _describe_end(records: Records, run: Run, attempt: int) -> str:
    faults = faults_on(records, run, attempt)
    if not faults:
        return f"attempt {attempt} ended with no fault reaching it"
    hits = ", ".join(f"{f.kind} at {f.t:.3f} (graceful={f.graceful})" for f in faults)
    return f"attempt {attempt} was hit by {hits}"


def _repeat_line(run: Run, r: Repeat) -> str:
    return (
        f"{_where(run)}: {r.step} {r.what!r} done by attempt {r.previous} at {r.previous_t:.3f} "
        f"and again by attempt {r.attempt} at {r.t:.3f}"
    )


def judge_uid(
    records: Records, run: Run, intervals: Mapping[str, float], figures: dict[str, float]
) -> list[str]:
    violations: list[str] = []
    charged: dict[int, list[Repeat]] = defaultdict(list)
    for r in run.repeats():
        figures["repeats"] += 1
        if r.what == "notify":
            violations.append(f"{_repeat_line(run, r)}: notify ran twice")
        elif r.attempt == r.previous:
            violations.append(f"{_repeat_line(run, r)}: the same attempt went back")
        elif not lossy_on(records, run, r.charged):
            violations.append(
                f"{_repeat_line(run, r)}: {_describe_end(records, run, r.charged)}, "
                "which allows no repeat"
            )
        elif r.what.isdigit():
            charged[r.charged].append(r)
    for attempt, repeats in sorted(charged.items()):
        allowed = budget(records, run, attempt, intervals)
        figures["repeats_after_lossy_faults"] += len(repeats)
        if len(repeats) > allowed:
            items = sorted({int(r.what) for r in repeats})
            violations.append(
                f"{_where(run)}: {len(repeats)} items of attempt {attempt} repeated "
                f"(items {items[0]}..{items[-1]}), more than one checkpoint interval "
                f"({run.job.interval_seconds:g} s, {allowed} items with slack); "
                f"{_describe_end(records, run, attempt)}"
            )
    for line, later in run.reruns():
        violations.append(
            f"{_where(run)}: step {run.step_of(line)} ran again in attempt {line.attempt} "
            f"({line.what!r} at {line.t:.3f}) after attempt {later.attempt} had moved on to "
            f"step {run.step_of(later)} at {later.t:.3f}"
        )
    bad = sorted({x.item for x in run.lines if x.item is not None and x.item >= run.job.items})
    if bad:
        violations.append(f"{_where(run)}: items {bad} outside 0..{run.job.items - 1}")
    return violations


def completeness(run: Run) -> list[str]:
    """What a Succeeded job's last pass over each step is missing."""
    violations: list[str] = []
    done = {x.item for step in run.loops for x in run.last_pass_lines(step) if x.item is not None}
    missing = [i for i in range(run.job.items) if i not in done]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        violations.append(
            f"{_where(run)} Succeeded with {len(missing)} of {run.job.items} items never done: "
            f"{shown}"
        )
    if not run.last_pass_lines("fetch"):
        violations.append(f"{_where(run)} Succeeded and fetch never ran in its last pass")
    notified = len(run.last_pass_lines("notify"))
    if notified != 1:
        violations.append(f"{_where(run)} Succeeded with notify run {notified} times")
    return violations


def judge(records: Records, *, intervals: Mapping[str, float] = DEFAULT_INTERVALS) -> Verdict:
    figures: dict[str, float] = {
        "jobs": len(records.names()),
        "uids": len(records.jobs),
        "ledger_lines": sum(len(lines) for lines in records.ledger.values()),
        "unreadable_lines": records.skipped.get("ledger", 0),
        "repeats": 0,
        "repeats_after_lossy_faults": 0,
    }
    violations: list[str] = []
    for name in records.names():
        uids = records.uids_of(name)
        for job in uids:
            run = Run(records, job)
            violations += judge_uid(records, run, intervals, figures)
            if job is uids[-1] and job.status.get("phase") == "Succeeded":
                violations += completeness(run)
    orphans = sorted(set(records.ledger) - set(records.names()))
    if orphans:
        violations.append(f"ledgers of jobs jobs.json does not list: {orphans}")
    return verdict(NAME, violations, figures)
