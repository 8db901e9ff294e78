"""The soak's ContinuableJobs: their manifests, and every incarnation the run created.

A job name can have several incarnations (the recreate and foreground-delete faults delete the
job and create it again under the same name); each has its own UID, and `jobs.json` lists them
all with the moment each was created, which is how a judge splits a name's ledger between
them: a new incarnation is created only once every pod of the old one is gone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from continuable.names import API_VERSION, JOB_LABEL, KIND

from .kube import Api
from .schedule import JobPlan

TERMINAL_PHASES = ("Succeeded", "Failed")
# Graceful stops (deletion, eviction, drain) give the pod this long to save its cursor.
GRACE_SECONDS = 15
# Counted failures (SIGKILL, lost pods) are many in a soak: the job must survive them, and
# relaunch quickly (the default backoff starts at 10 s and doubles).
BACKOFF_LIMIT = 10000
BACKOFF = {"initialSeconds": 1, "maxSeconds": 5}
JOB_SCRIPT = "tests/soak/ledger_job.py"


def manifest(plan: JobPlan, namespace: str, ledger: Path, version: int = 0) -> dict[str, Any]:
    env = {
        # First, so a rollout changes only this value.
        "SOAK_TEMPLATE_VERSION": str(version),
        "SOAK_LEDGER": str(ledger),
        "SOAK_ITEMS": str(plan.items),
        "SOAK_ITEM_SECONDS": str(plan.item_seconds),
        "SOAK_ISOLATED": "1" if plan.isolated else "0",
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": plan.name, "namespace": namespace},
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "backoff": BACKOFF,
            "checkpoint": {"intervalSeconds": plan.interval_seconds},
            "steps": plan.steps,
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "containers": [
                        {
                            "name": "job",
                            "image": "python",
                            "command": ["python", JOB_SCRIPT],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ],
                }
            },
        },
    }


@dataclass
class Incarnation:
    name: str
    uid: str
    created: float
    plan: JobPlan
    version: int = 0
    deleted: float | None = None


class Jobs:
    def __init__(self, api: Api, namespace: str, run_dir: Path, plans: list[JobPlan]) -> None:
        self.api = api
        self.namespace = namespace
        self.ledger_dir = run_dir / "ledger"
        self.plans = {p.name: p for p in plans}
        self.incarnations: list[Incarnation] = []
        self._locks = {p.name: threading.Lock() for p in plans}
        self._lock = threading.Lock()

    def ledger(self, name: str) -> Path:
        return self.ledger_dir / f"{name}.csv"

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """One fault at a time per job."""
        with self._locks[name]:
            yield

    def create(self, name: str) -> Incarnation:
        plan = self.plans[name]
        self.ledger_dir.mkdir(parents=True, exist_ok=True)
        body = manifest(plan, self.namespace, self.ledger(name))
        created = self.api.create_job(self.namespace, body)
        incarnation = Incarnation(name, created["metadata"]["uid"], time.time(), plan)
        with self._lock:
            self.incarnations.append(incarnation)
        return incarnation

    def current(self, name: str) -> Incarnation | None:
        with self._lock:
            live = [i for i in self.incarnations if i.name == name and i.deleted is None]
        return live[-1] if live else None

    def get(self, name: str) -> dict[str, Any] | None:
        """The current incarnation's object (None when gone or replaced)."""
        incarnation = self.current(name)
        job = self.api.get_job(self.namespace, name)
        if job is None or incarnation is None or job["metadata"]["uid"] != incarnation.uid:
            return None
        return job

    def phase(self, name: str) -> str | None:
        job = self.get(name)
        return (job.get("status") or {}).get("phase") if job else None

    def finished(self, name: str) -> bool:
        return self.phase(name) in TERMINAL_PHASES

    def pods(self, name: str) -> list[dict[str, Any]]:
        return self.api.list_pods(self.namespace, f"{JOB_LABEL}={name}")

    def running_pod(self, name: str, wait: float = 0.0) -> dict[str, Any] | None:
        """The job's pod that runs now (Running, not being deleted), waiting up to `wait`."""
        deadline = time.monotonic() + wait
        while True:
            incarnation = self.current(name)
            if incarnation is not None:
                for pod in sorted(self.pods(name), key=attempt_of, reverse=True):
                    if (
                        pod["status"].get("phase") == "Running"
                        and not pod["metadata"].get("deletionTimestamp")
                        and owner_uid(pod) == incarnation.uid
                    ):
                        return pod
            if time.monotonic() >= deadline or (incarnation and self.finished(name)):
                return None
            time.sleep(1.0)

    def live_pod(self, name: str) -> dict[str, Any] | None:
        """The current incarnation's newest pod that has not ended nor is being deleted, in any
        phase (Pending too): the one a rollout, a suspend or a restart makes the operator stop."""
        incarnation = self.current(name)
        if incarnation is None:
            return None
        for pod in sorted(self.pods(name), key=attempt_of, reverse=True):
            if (
                pod["status"].get("phase") not in TERMINAL_PHASES
                and not pod["metadata"].get("deletionTimestamp")
                and owner_uid(pod) == incarnation.uid
            ):
                return pod
        return None

    def wait_pod(
        self,
        name: str,
        pod: dict[str, Any],
        done: Callable[[dict[str, Any] | None], bool],
        timeout: float,
        poll: float = 0.5,
    ) -> dict[str, Any] | None:
        """`pod` (that very object, by uid) as last seen once `done` holds of it (given None once
        it is gone), waiting up to `timeout`; None when it never did."""
        uid = pod["metadata"]["uid"]
        deadline = time.monotonic() + timeout
        while True:
            current = next((p for p in self.pods(name) if p["metadata"]["uid"] == uid), None)
            if done(current):
                return current or pod
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll)

    def rollout(self, name: str) -> int:
        """A new template: SOAK_TEMPLATE_VERSION + 1 (the operator stops the pod gracefully)."""
        incarnation = self.current(name)
        if incarnation is None:
            raise RuntimeError(f"job {name} has no live incarnation")
        incarnation.version += 1
        body = manifest(
            incarnation.plan, self.namespace, self.ledger(name), version=incarnation.version
        )
        self.api.patch_job(self.namespace, name, {"spec": {"template": body["spec"]["template"]}})
        return incarnation.version

    def set_suspend(self, name: str, suspend: bool) -> None:
        self.api.patch_job(self.namespace, name, {"spec": {"suspend": suspend}})

    def delete(self, name: str, *, foreground: bool, timeout: float = 120.0) -> Incarnation:
        """Delete the current incarnation and wait (bounded) until it and its pods are gone."""
        incarnation = self.current(name)
        if incarnation is None:
            raise RuntimeError(f"job {name} has no live incarnation")
        propagation = "Foreground" if foreground else "Background"
        self.api.delete_job(self.namespace, name, incarnation.uid, propagation)
        incarnation.deleted = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.api.get_job(self.namespace, name)
            gone = job is None or job["metadata"]["uid"] != incarnation.uid
            if gone and not self.pods(name):
                return incarnation
            time.sleep(0.5)
        raise TimeoutError(f"job {name} (uid {incarnation.uid}) or its pods still there")

    def all_finished(self) -> bool:
        return all(self.finished(name) for name in self.plans)

    def summary(self) -> dict[str, Any]:
        """jobs.json: one entry per incarnation, with its object at the end (null when gone)."""
        entries = []
        for incarnation in list(self.incarnations):
            job = self.api.get_job(self.namespace, incarnation.name)
            final = job if job and job["metadata"]["uid"] == incarnation.uid else None
            plan = incarnation.plan
            entries.append(
                {
                    "name": incarnation.name,
                    "uid": incarnation.uid,
                    "items": plan.items,
                    "item_seconds": plan.item_seconds,
                    "interval_seconds": plan.interval_seconds,
                    "isolated": plan.isolated,
                    "steps": plan.steps,
                    "created": incarnation.created,
                    "deleted": incarnation.deleted,
                    "template_versions": incarnation.version + 1,
                    "ledger": str(self.ledger(incarnation.name)),
                    "final": final,
                }
            )
        return {"namespace": self.namespace, "jobs": entries}


def attempt_of(pod: dict[str, Any]) -> int:
    from continuable.names import ATTEMPT_LABEL

    try:
        return int(pod["metadata"].get("labels", {}).get(ATTEMPT_LABEL, "0"))
    except ValueError:
        return 0


def owner_uid(pod: dict[str, Any]) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("controller"):
            return str(ref.get("uid"))
    return None
