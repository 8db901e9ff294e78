"""The next attempt: when it may start (the backoff after a failure, a refused creation, a shared
service account), and launching it. Pure functions over a `Draft`.

The attempt is raised in status (fenced on its old value) before its objects and pod are
created, so a pod of an older attempt can no longer write (invariant 3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from continuable.names import ATTEMPT_HISTORY_LENGTH, checkpoint_service_account, pod_name

from . import admitting
from . import conditions as c
from .actions import Action, CreatePod, Emit, EnsureObject
from .classifying import is_terminal
from .drafting import FINISHED, Draft, has_finalizer, parse_time, timestamp
from .launching import build_pod, build_results_config_map
from .permissions import (
    build_role,
    build_role_binding,
    build_service_account,
    needs_own_service_account,
)

# A refused pod creation, or an object name held by something else, is retried after this long
# (the condition says why meanwhile).
POD_CREATE_RETRY_SECONDS = 10.0
# A job waiting for its service account to be free looks again this often.
SHARED_ACCOUNT_RETRY_SECONDS = 30.0
# The conditions that say the current attempt's pod was never created.
BLOCKING = (c.POD_CREATE_FAILED, c.NAME_CONFLICT)
DEFAULT_MAX_BACKOFF_SECONDS = 360.0


def backoff_delay(failures: int, backoff: Mapping[str, Any]) -> float:
    """Delay before relaunching after the `failures`-th counted failure. Without maxSeconds the
    ceiling is 360 s, or initialSeconds when that is longer."""
    initial = float(backoff.get("initialSeconds", 10))
    factor = float(backoff.get("factor", 2.0))
    ceiling = backoff.get("maxSeconds")
    limit = max(DEFAULT_MAX_BACKOFF_SECONDS, initial) if ceiling is None else float(ceiling)
    return float(min(initial * factor ** max(failures - 1, 0), limit))


def named_account(job: Mapping[str, Any]) -> str | None:
    """The service account the template names, if it names one."""
    named = job["spec"]["template"]["spec"].get("serviceAccountName")
    return str(named) if named else None


def shared_with(job: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> str | None:
    """Another job of the namespace that uses the service account this job's template names: an
    unfinished job created earlier that names it too, or any job whose own account it is. The
    job's Role is bound to that account, so it must be this job's alone while the job runs."""
    account = named_account(job)
    if account is None:
        return None
    mine = _age(job)
    for other in sorted(jobs, key=_age):
        if other["metadata"].get("uid") == job["metadata"].get("uid"):
            continue
        own = checkpoint_service_account(other["metadata"]["name"])
        if needs_own_service_account(other) and own == account:
            return str(other["metadata"]["name"])
        finished = (other.get("status") or {}).get("phase") in FINISHED
        if named_account(other) == account and not finished and _age(other) < mine:
            return str(other["metadata"]["name"])
    return None


def _age(job: Mapping[str, Any]) -> tuple[str, str]:
    metadata = job["metadata"]
    return str(metadata.get("creationTimestamp") or ""), str(metadata["name"])


def template_problem(job: Mapping[str, Any]) -> str | None:
    """What in the template keeps any attempt from working, which only a spec change can fix."""
    if job["spec"]["template"]["spec"].get("automountServiceAccountToken") is False:
        return (
            "spec.template.spec.automountServiceAccountToken is false, but the pod writes its "
            "checkpoints with its service account token: remove the field or set it to true"
        )
    return None


def after_ending(draft: Draft, shared: str | None, after_write: Sequence[Action] = ()) -> None:
    """The current attempt has ended without finishing the job: wait out the backoff after a
    failure, or launch the next attempt now."""
    record = draft.record(draft.attempt) or {}
    if record.get("outcome") == "Failed":
        ended = parse_time(record.get("endTime")) or draft.now
        delay = backoff_delay(int(draft.status["failures"]), draft.spec.get("backoff") or {})
        due = ended + timedelta(seconds=delay)
        if draft.now < due:
            draft.condition(
                c.RUNNING,
                False,
                c.WAITING_FOR_BACKOFF,
                f"relaunching at {timestamp(due)} after failure {draft.status['failures']}",
            )
            draft.requeue((due - draft.now).total_seconds())
            return
    launch(draft, shared, after_write)


def launch(draft: Draft, shared: str | None, after_write: Sequence[Action] = ()) -> None:
    """Raise the attempt and start its pod; `after_write` runs right after the status write that
    raises it (a restart's results drop and the removal of its request)."""
    problem = template_problem(draft.job)
    if problem is not None:
        draft.fail(c.INVALID_POD_TEMPLATE, problem)
        return
    if shared is not None:
        _wait_for_account(draft, shared)
        return
    draft.clear(c.SERVICE_ACCOUNT_SHARED, c.ACCOUNT_OWN, "no other job uses the service account")
    if not admitting.may_launch(draft):
        # A restart's results drop and request removal follow its reset without a launch.
        draft.flush()
        for action in after_write:
            draft.act(action)
        return
    attempt = draft.attempt + 1
    name = pod_name(draft.name, attempt)
    saved = _checkpointed_seconds(draft.checkpoint)
    status = draft.status
    if attempt > 1 and saved is not None:
        status["resumptions"] += 1
        status["savedSeconds"] = round(float(status.get("savedSeconds") or 0) + saved, 3)
    if status.get("phase") == "Suspended" or not status.get("startTime"):
        # As batch/v1 Job: the deadline counts from the start, or from the last resume.
        status["startTime"] = draft.stamp
    status.update(attempt=attempt, podName=name, phase="Pending")
    _creating(draft, name)
    status["attempts"] = [
        *status["attempts"],
        {"attempt": attempt, "podName": name, "startTime": draft.stamp, "outcome": "Running"},
    ][-ATTEMPT_HISTORY_LENGTH:]
    draft.flush()
    for action in after_write:
        draft.act(action)
    if older_pod_held(draft):
        # The pod comes in a later reconcile (CreatingPod), once the older one is released. Its
        # process may still run (a Lost pod): the results' fence goes up with the attempt now,
        # as the status write just did, or a step result it writes meanwhile would be accepted.
        draft.act(EnsureObject(build_results_config_map(draft.job, attempt)))
        return
    launch_objects(draft, attempt)
    draft.act(Emit("Normal", "Launched", f"attempt {attempt}: pod {name}{_resume_point(draft)}"))


def create_current_pod(draft: Draft) -> None:
    """The current attempt's pod was never created (its creation was refused, or a name it
    needs was taken): try again, same attempt, once the retry is due."""
    found = (c.find(draft.status["conditions"], kind) for kind in BLOCKING)
    blocked = [b for b in found if b is not None and b.get("status") == "True"]
    since = max(
        (parse_time(b.get("lastTransitionTime")) or draft.now for b in blocked), default=None
    )
    if since is not None:
        due = since + timedelta(seconds=POD_CREATE_RETRY_SECONDS)
        if draft.now < due:
            draft.requeue((due - draft.now).total_seconds())
            return
    if older_pod_held(draft):
        return  # its release is requeued (`ending.release_when_fenced`)
    if draft.status.get("phase") == "Suspended":
        draft.status.update(phase="Pending", startTime=draft.stamp)  # resumed
    # Cleared before the creation: should the pod then vanish, its attempt counts as Lost
    # instead of being created again under the same number.
    draft.clear(c.POD_CREATE_FAILED, c.POD_CREATED, "retrying the pod's creation")
    draft.clear(c.NAME_CONFLICT, c.NAME_FREE, "retrying with the names free")
    _creating(draft, pod_name(draft.name, draft.attempt))
    draft.flush()
    launch_objects(draft, draft.attempt)


def is_blocked(draft: Draft) -> bool:
    """Whether the current attempt's pod is known never to have been created or seen: its
    creation was refused, a name it needs is taken, or the launch stopped before the pod (an
    API error, the operator killed); its attempt is then not Lost but its pod created again."""
    conditions = draft.status["conditions"]
    return is_creating(draft) or any(c.is_true(conditions, kind) for kind in BLOCKING)


def older_pod_held(draft: Draft) -> bool:
    """Whether a pod of an earlier attempt still holds our finalizer without having ended (a
    Lost pod kept for its process to learn it is fenced out, a stray being stopped) and is not
    released in this plan: the next pod waits for it, one pod object of the job at a time."""
    released = draft.released()
    return any(
        number != draft.attempt
        and has_finalizer(pod)
        and not is_terminal(pod)
        and pod["metadata"]["name"] not in released
        for number, pod in draft.pods.items()
    )


def is_creating(draft: Draft) -> bool:
    running = c.find(draft.status["conditions"], c.RUNNING)
    return running is not None and running.get("reason") == c.CREATING_POD


def _creating(draft: Draft, name: str) -> None:
    """Said until the pod is seen (`planning._observe_live` replaces it): a pod missing while
    this holds was never created, so its attempt is not Lost."""
    draft.condition(c.RUNNING, False, c.CREATING_POD, f"creating pod {name}")


def launch_objects(draft: Draft, attempt: int) -> None:
    """The objects the attempt needs, then its pod. The results ConfigMap goes before the Role
    that grants it by name: a name held by someone else stops the launch before anything of
    theirs is granted to the job's pod."""
    job = draft.job
    if needs_own_service_account(job):
        draft.act(EnsureObject(build_service_account(job)))
    draft.act(EnsureObject(build_results_config_map(job, attempt)))
    draft.act(EnsureObject(build_role(job, attempt)))
    draft.act(EnsureObject(build_role_binding(job)))
    draft.act(CreatePod(admitting.admitted_pod(draft, build_pod(job, attempt))))


def unbind_when_finished(draft: Draft) -> None:
    """A finished job no longer needs its named account bound: once the job has finished in
    this plan, its RoleBinding loses its subject, so the account's other users (a later job of
    the same account) never reach this job's status."""
    if named_account(draft.job) is None or not draft.finished:
        return
    if (draft.job.get("status") or {}).get("phase") in FINISHED:
        return  # unbound when it finished
    draft.act(EnsureObject(build_role_binding(draft.job, bound=False)))


def _wait_for_account(draft: Draft, other: str) -> None:
    account = named_account(draft.job)
    message = (
        f"service account {account} is also used by ContinuableJob {other}; a job's pod may "
        "write only its own job's status, so this job waits until no other running job uses "
        "the account (or give it its own account, or none: the operator then creates one)"
    )
    draft.emit("Warning", c.SERVICE_ACCOUNT_SHARED, message)
    draft.condition(c.SERVICE_ACCOUNT_SHARED, True, c.ACCOUNT_SHARED, message)
    draft.status["phase"] = "Pending"
    draft.requeue(SHARED_ACCOUNT_RETRY_SECONDS)


def _checkpointed_seconds(checkpoint: Mapping[str, Any]) -> float | None:
    """Seconds of work a checkpoint lets the next attempt skip; None when it holds nothing."""
    steps = checkpoint.get("steps") or []
    saved = [s for s in steps if s.get("state") == "Completed" or s.get("cursor") is not None]
    if not saved:
        return None
    return float(sum(float(s.get("durationSeconds") or 0) for s in saved))


def _resume_point(draft: Draft) -> str:
    steps = draft.checkpoint.get("steps") or []
    done = [s["name"] for s in steps if s.get("state") == "Completed"]
    current = next((s for s in steps if s.get("state") != "Completed"), None)
    parts = []
    if done:
        parts.append(f"skipping {', '.join(done)}")
    if current is not None:
        cursor = json.dumps(current.get("cursor"), separators=(",", ":"))
        parts.append(f"resuming {current['name']} at cursor {cursor}")
    return f" ({'; '.join(parts)})" if parts else ""
