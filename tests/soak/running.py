"""One soak run, from an empty machine to a folder of records and a verdict.

    settings = Settings(jobs=30, faults_per_job=20, seed=..., minutes=25)
    result = run(settings)          # result.exit_code: 0, or 1 on a violation

The run: its own control plane (with the audit log), process nodes, two operator replicas with
leader election; the plan's jobs; the fault lanes (job faults on a small pool of threads, one
fault at a time per job; node faults one at a time; cluster faults one at a time); then a
bounded wait for every job to end; then the records (recording.py), the judges and the report
(`tests.soak.judges`, `tests.soak.report`, imported only then). The run folder is kept; every
process is stopped and every other folder removed, on success, failure or Ctrl-C.

`minutes` is the budget from the jobs' creation to the end of the wait for them (plus a grace of
5 %, at least a minute: a fault late in the window can still cost a job a minute); the start of
the cluster (about half a minute) and the collection come on top. Of it, the first 55 % is the
fault window, and each job has about a third of it as work (less 20 s), so a job hit by ~20
faults, and maybe by a restart from an earlier step, still ends within the budget.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import importlib
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.crds import apply_crds
from tests.cluster.kubectl import Kubectl
from tests.cluster.waiting import wait_for

from .cluster import Operators, SoakControlPlane, SoakNode, Spawner
from .faults import FaultContext, FaultLog, inject
from .faults.pods import ensure_priority_class
from .jobs import TERMINAL_PHASES, Jobs
from .kube import Api
from .recording import Recorders, leftovers, write_json
from .schedule import Fault, Plan, draw_plan

log = logging.getLogger("soak")

NAMESPACE = "soak"
WINDOW_SHARE = 0.55
WORK_SHARE = 0.35
WORK_LESS_SECONDS = 20.0
MIN_WORK_SECONDS = 20.0
# Job faults in flight at once (each on a different job).
JOB_FAULT_WORKERS = 6
# A job fault that found no running pod is tried once more, on a job whose pod runs within
# this long (after an operator kill or a node restart, no pod may run for half a minute).
RETRY_SECONDS = 45.0
# How long the faults under way get to finish at the end of a run (a partition holds a node
# for up to two minutes).
LANES_STOP_SECONDS = 150.0
# After the last job ended: a moment for the operator to remove finalizers and clean up, so
# what is left in objects.json is really left.
SETTLE_SECONDS = 10.0


@dataclass
class Settings:
    jobs: int = 30
    faults_per_job: int = 20
    seed: int = field(default_factory=lambda: random.SystemRandom().randrange(1, 2**31))
    minutes: float = 25.0
    nodes: int = 3
    run_dir: Path | None = None
    # Seconds of work per job; by default a share of the budget (see the module docstring).
    work_seconds: float | None = None

    @property
    def budget(self) -> float:
        return self.minutes * 60.0

    @property
    def wait_bound(self) -> float:
        """Seconds from the jobs' creation until the run stops waiting for them."""
        return self.budget + max(60.0, 0.05 * self.budget)

    def plan(self) -> Plan:
        return draw_plan(
            seed=self.seed,
            jobs=self.jobs,
            faults_per_job=self.faults_per_job,
            window_seconds=self.budget * WINDOW_SHARE,
            work_seconds=self.work_seconds
            or max(MIN_WORK_SECONDS, self.budget * WORK_SHARE - WORK_LESS_SECONDS),
        )


@dataclass
class Result:
    run_dir: Path
    exit_code: int
    summary: dict[str, Any]
    verdicts: Any = None


class _Lanes:
    """Runs the plan's faults at their times; stop() ends the waiting (not a fault under way)."""

    def __init__(self, ctx: FaultContext, plan: Plan, started: float) -> None:
        self.ctx = ctx
        self.plan = plan
        self.started = started
        self.stopping = threading.Event()
        self.errors: list[dict[str, Any]] = []
        self.retargeted = 0
        self._rng = random.Random(plan.seed + 1)
        self._rng_lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            JOB_FAULT_WORKERS, thread_name_prefix="job-fault"
        )
        self._threads = [
            threading.Thread(target=self._lane, args=(lane,), name=f"lane-{lane}", daemon=True)
            for lane in ("job", "node", "cluster")
        ]
        self._futures: list[concurrent.futures.Future[None]] = []

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def done(self) -> bool:
        return not any(t.is_alive() for t in self._threads) and all(
            f.done() for f in list(self._futures)
        )

    def stop(self, timeout: float = 150.0) -> None:
        """Stop starting faults; wait up to `timeout` for those under way."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        for future in list(self._futures):
            with contextlib.suppress(Exception):
                future.result(max(0.1, deadline - time.monotonic()))

    def _wait_until(self, at: float) -> bool:
        return not self.stopping.wait(max(0.0, self.started + at - time.monotonic()))

    def _lane(self, lane: str) -> None:
        for fault in self.plan.lane(lane):
            if not self._wait_until(fault.at):
                return
            if lane == "job":
                self._futures.append(self._pool.submit(self._job_fault, fault))
            else:
                self._run(fault, None)

    def _job_fault(self, fault: Fault) -> None:
        job = self._target(fault)
        if job is None:
            self.ctx.log.skip(fault, "every job has finished")
            return
        with self.ctx.jobs.exclusive(job):
            if self.stopping.is_set() or self._run(fault, job):
                return
        # Nothing to hit (no running pod): once more, on a job whose pod runs by then.
        other = self._running_job(prefer=job)
        if other is not None:
            with self.ctx.jobs.exclusive(other):
                if not self.stopping.is_set():
                    self._run(fault, other)

    def _running_job(self, prefer: str) -> str | None:
        """A job with a running pod on a node not partitioned (`prefer` if it has one),
        waiting up to RETRY_SECONDS."""
        from continuable.names import JOB_LABEL

        deadline = time.monotonic() + RETRY_SECONDS
        while not self.stopping.is_set():
            try:
                pods = self.ctx.api.list_pods(self.ctx.namespace, JOB_LABEL)
            except Exception:
                pods = []
            running: list[str] = sorted(
                {
                    str(p["metadata"]["labels"][JOB_LABEL])
                    for p in pods
                    if p["status"].get("phase") == "Running"
                    and not p["metadata"].get("deletionTimestamp")
                    and not self.ctx.on_frozen_node(p)
                }
            )
            if prefer in running:
                return prefer
            if running:
                with self._rng_lock:
                    self.retargeted += 1
                    return self._rng.choice(running)
            if time.monotonic() >= deadline:
                return None
            self.stopping.wait(1.0)
        return None

    def _target(self, fault: Fault) -> str | None:
        """The planned job, or (when it has finished) another job that has not."""
        assert fault.job is not None
        jobs = self.ctx.jobs
        if not jobs.finished(fault.job) and jobs.current(fault.job) is not None:
            return fault.job
        running = [n for n in sorted(jobs.plans) if jobs.current(n) and not jobs.finished(n)]
        if not running:
            return None
        with self._rng_lock:
            self.retargeted += 1
            return self._rng.choice(running)

    def _run(self, fault: Fault, job: str | None) -> bool:
        log.info("fault %s%s (planned at %.0fs)", fault.kind, f" on {job}" if job else "", fault.at)
        try:
            return inject(self.ctx, fault, job)
        except Exception as err:
            log.error("fault %s on %s failed: %s", fault.kind, job, err)
            log.debug("%s", traceback.format_exc())
            self.errors.append(
                {"t": time.time(), "kind": fault.kind, "job": job, "error": repr(err)[:500]}
            )
            self.ctx.log.skip(fault, f"error: {err!r}"[:500], job)
            return True


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "harness.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    handler.setLevel(logging.DEBUG)
    return handler


def say(message: str) -> None:
    print(f"soak: {message}", flush=True)
    log.info("%s", message)


def run(settings: Settings) -> Result:
    began = time.time()
    run_dir = settings.run_dir or Path(tempfile.mkdtemp(prefix="continuable-soak-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o755)
    handler = _setup_logging(run_dir)
    plan = settings.plan()
    write_json(run_dir / "plan.json", plan.to_json())
    say(
        f"run folder {run_dir} (kept afterwards); seed {settings.seed} "
        f"(SOAK_SEED={settings.seed} reproduces the plan); {settings.jobs} jobs, "
        f"{len(plan.faults)} planned faults, budget {settings.minutes:g} min"
    )
    scratch = Path(tempfile.mkdtemp(prefix="continuable-soak-nodes-"))
    summary: dict[str, Any] = {"seed": settings.seed, "settings": _settings_json(settings)}
    try:
        summary |= _run_cluster(settings, plan, run_dir, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        summary["wall_seconds"] = round(time.time() - began, 1)
        write_json(run_dir / "summary.json", summary)
        log.removeHandler(handler)
        handler.close()
    return _judge(run_dir, summary)


def _settings_json(settings: Settings) -> dict[str, Any]:
    data = asdict(settings)
    data["run_dir"] = str(settings.run_dir) if settings.run_dir else None
    return data


def _run_cluster(settings: Settings, plan: Plan, run_dir: Path, scratch: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    spawner = Spawner()
    with contextlib.ExitStack() as stack:
        stack.callback(_timed("the spawner", spawner.close))
        cp = SoakControlPlane(run_dir, work_dir=scratch / "control-plane")
        t0 = time.monotonic()
        cp.start()
        stack.callback(_timed("the control plane", lambda: _stop_control_plane(cp, run_dir)))
        restarts: list[dict[str, Any]] = []
        stack.callback(_timed("the control-plane supervisor", _supervise(cp, spawner, restarts)))
        summary["control_plane_restarts"] = restarts
        kubectl = Kubectl.for_kubeconfig(cp.kubeconfig)
        apply_crds(kubectl)
        kubectl.retrying("create", "namespace", NAMESPACE)
        wait_for(
            lambda: (
                kubectl.run(
                    "get", "serviceaccount", "default", "-n", NAMESPACE, check=False
                ).returncode
                == 0
            ),
            timeout=60,
            what="the namespace's default service account",
        )
        nodes: dict[str, SoakNode] = {}
        for index in range(settings.nodes):
            name = f"soak-node-{index}"
            node = SoakNode(cp, name, scratch / "nodes" / name, spawner)
            nodes[name] = node
            stack.callback(
                _timed(f"node {name}", functools.partial(node.stop, run_dir / "nodes" / name))
            )
            node.start()
        api = Api(cp.kubeconfig)
        stack.callback(api.close)
        recorders = Recorders(api, NAMESPACE, run_dir).start()
        stack.callback(_timed("the recorders", recorders.stop))
        operators = Operators(cp.kubeconfig, run_dir, NAMESPACE, spawner)
        stack.callback(_timed("the operators", operators.stop))
        operators.start()
        summary["setup_seconds"] = round(time.monotonic() - t0, 1)
        say(f"cluster up in {summary['setup_seconds']}s: {len(nodes)} nodes, 2 operator replicas")

        jobs = Jobs(api, NAMESPACE, run_dir, plan.jobs)
        fault_log = FaultLog(run_dir)
        stack.callback(fault_log.close)
        ctx = FaultContext(
            api=api,
            jobs=jobs,
            namespace=NAMESPACE,
            nodes=nodes,
            operators=operators,
            control_plane=cp,
            kubectl=kubectl,
            kubeconfig=cp.kubeconfig,
            spawner=spawner,
            log=fault_log,
            run_dir=run_dir,
        )
        ensure_priority_class(ctx)
        for job_plan in plan.jobs:
            jobs.create(job_plan.name)
        started = time.monotonic()
        say(f"{len(plan.jobs)} jobs created; faults for the next {plan.window_seconds:.0f}s")
        lanes = _Lanes(ctx, plan, started)
        lanes.start()
        # After an error or Ctrl-C, faults under way get less time to finish.
        stack.push(lambda kind, *_: lanes.stop(LANES_STOP_SECONDS if kind is None else 20.0))
        deadline = started + settings.wait_bound
        last_report = time.monotonic()
        while time.monotonic() < deadline:
            if lanes.done() and jobs_done(jobs):
                break
            time.sleep(2.0)
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                say(_progress(jobs, fault_log, started))
        finished_in = time.monotonic() - started
        all_done = jobs_done(jobs)
        lanes.stop()
        if all_done:
            time.sleep(SETTLE_SECONDS)
        summary |= {
            "jobs_finished": all_done,
            "run_seconds": round(finished_in, 1),
            "faults": fault_log.faults.count,
            "faults_by_kind": dict(Counter(_kinds(run_dir / "faults.jsonl"))),
            "skipped": fault_log.skipped.count,
            "retargeted": lanes.retargeted,
            "fault_errors": lanes.errors,
            "operator_unplanned_exits": operators.unplanned_exits,
            "operator_starts": [r.starts for r in operators.replicas],
            "watch_relists": {"pods": recorders.pods.relists, "nodes": recorders.nodes.relists},
        }
        say(
            f"jobs {'all ended' if all_done else 'NOT all ended'} after {finished_in:.0f}s; "
            f"{summary['faults']} fault lines, {summary['skipped']} skipped"
        )
        write_json(run_dir / "jobs.json", jobs.summary())
        write_json(run_dir / "objects.json", leftovers(api, NAMESPACE))
        _write_metrics(api, operators, run_dir)
    return summary


def _timed(what: str, stop: Callable[[], object]) -> Callable[[], None]:
    def timed() -> None:
        began = time.monotonic()
        try:
            stop()
        finally:
            log.info("stopped %s in %.1fs", what, time.monotonic() - began)

    return timed


def _supervise(
    cp: SoakControlPlane, spawner: Spawner, restarts: list[dict[str, Any]]
) -> Callable[[], None]:
    """Start a thread that starts exited control-plane components again; returns its stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(2.0):
            try:
                restarts.extend(cp.restart_exited(spawner))
            except Exception:
                log.exception("supervising the control plane")

    thread = threading.Thread(target=loop, name="control-plane", daemon=True)
    thread.start()

    def end() -> None:
        stop.set()
        thread.join(120)

    return end


def jobs_done(jobs: Jobs) -> bool:
    """Every job name's live incarnation has ended (a name left without one, because a fault
    failed to re-create it, has nothing more to wait for; jobs.json shows it)."""
    try:
        listed = {j["metadata"]["uid"]: j for j in jobs.api.list_jobs(jobs.namespace)}
    except Exception as err:  # the API server may be restarting: not done yet
        log.debug("listing jobs: %s", err)
        return False
    for name in jobs.plans:
        incarnation = jobs.current(name)
        if incarnation is None:
            continue
        job = listed.get(incarnation.uid)
        if job is None or (job.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            return False
    return True


def _progress(jobs: Jobs, fault_log: FaultLog, started: float) -> str:
    phases = Counter(
        (j.get("status") or {}).get("phase") or "New" for j in jobs.api.list_jobs(jobs.namespace)
    )
    shown = ", ".join(f"{k} {v}" for k, v in sorted(phases.items()))
    return (
        f"{time.monotonic() - started:.0f}s: jobs {shown}; "
        f"{fault_log.faults.count} fault lines, {fault_log.skipped.count} skipped"
    )


def _kinds(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["kind"] for line in path.read_text().splitlines() if line.strip()]


def _write_metrics(api: Api, operators: Operators, run_dir: Path) -> None:
    from .cluster import LEASE_NAME, LEASE_NAMESPACE

    leader = operators.leader(api.lease_holder(LEASE_NAMESPACE, LEASE_NAME))
    for replica in operators.replicas:
        text = replica.metrics()
        if text is None:
            continue
        (run_dir / f"metrics-{replica.index}.txt").write_text(text)
        if replica is leader:
            (run_dir / "metrics.txt").write_text(text)


def _stop_control_plane(cp: SoakControlPlane, run_dir: Path) -> None:
    logs = run_dir / "control-plane"
    with contextlib.suppress(Exception):
        shutil.copytree(cp.logs_dir, logs, dirs_exist_ok=True)
    cp.stop()


def _judge(run_dir: Path, summary: dict[str, Any]) -> Result:
    """The judges and the report, when they exist (`tests.soak.judges`, `tests.soak.report`)."""
    try:
        judges = importlib.import_module("tests.soak.judges")
        report = importlib.import_module("tests.soak.report")
        judge_run, write_report = judges.judge_run, report.write_report
    except (ImportError, AttributeError) as err:
        say(f"no judges to call ({err}); the records are in {run_dir}")
        return Result(run_dir, 0 if summary.get("jobs_finished") else 1, summary)
    verdicts = judge_run(run_dir)
    code = write_report(run_dir, verdicts, summary)
    return Result(run_dir, int(code), summary, verdicts)


def main_exit(result: Result) -> None:
    sys.exit(result.exit_code)
