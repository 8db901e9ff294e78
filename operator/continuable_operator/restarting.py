"""A person's request to run the job again from a step (`continuable restart`, or the
annotations by hand). Pure functions over a `Draft`.

The request acts only once no pod of the job runs. Its effects are ordered so a crash at any
point loses nothing: one fenced status write raises the attempt and resets the checkpoint
together (with startTime, the counters and the finished conditions); the dropped steps' results
go after it; the request's annotations are removed last, and only if their nonce is still the
one acted on. A step name the job does not have is refused with an Event and a condition, and
nothing is reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from continuable.names import (
    RESTART_FROM_FIRST_STEP,
    RESTART_FROM_STEP_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
)

from . import conditions as c
from .actions import Action, ClearRestartRequest, DropResults, NameRestartRequest
from .classifying import Ending
from .drafting import Draft
from .ending import close_record


@dataclass(frozen=True)
class Request:
    step: str
    nonce: str | None

    @property
    def from_first_step(self) -> bool:
        return self.step == RESTART_FROM_FIRST_STEP


def request_of(draft: Draft) -> Request | None:
    annotations = draft.job["metadata"].get("annotations") or {}
    step = annotations.get(RESTART_FROM_STEP_ANNOTATION)
    if step is None:
        return None
    return Request(str(step), annotations.get(RESTART_NONCE_ANNOTATION))


def known_steps(draft: Draft) -> list[str]:
    """The step names a restart may name: the checkpoint's, then those spec.steps expects."""
    names = [str(s.get("name")) for s in draft.checkpoint.get("steps") or [] if s.get("name")]
    return [*names, *(s for s in draft.spec.get("steps") or [] if s not in names)]


def name_if_unnamed(draft: Draft, request: Request) -> bool:
    """A request set by hand has no nonce, so nothing would tell it acted on after a crash
    between the restart's status write and the annotations' removal (the new run's pod would
    be stopped and restarted). It gets one first, made from the job's resourceVersion (unique
    to this state of the job); whether it had to (the plan then waits for the write)."""
    if request.nonce is not None:
        return False
    version = draft.job["metadata"].get("resourceVersion") or draft.stamp
    draft.act(NameRestartRequest(request.step, f"set-by-hand-{version}"))
    return True


def acted_on(draft: Draft, request: Request) -> bool:
    """Whether the status already records this request (by its nonce): the operator stopped
    after the restart's status write and before removing the annotations."""
    last = draft.status.get("lastRestart") or {}
    return request.nonce is not None and last.get("nonce") == request.nonce


def refuse_unknown(draft: Draft, request: Request) -> bool:
    """Refuse a request naming a step the job does not have; whether it was refused."""
    steps = known_steps(draft)
    if request.from_first_step or request.step in steps:
        return False
    message = (
        f"restart from step {request.step!r} refused: the job has no step of that name "
        f"(its steps: {', '.join(steps) or 'none reported yet'}); nothing was reset"
    )
    draft.condition(c.RESTART_REFUSED, True, c.UNKNOWN_STEP, message)
    draft.emit("Warning", c.UNKNOWN_STEP, message)
    draft.flush()
    draft.act(ClearRestartRequest(request.nonce))
    return True


def restart(draft: Draft, request: Request) -> list[Action]:
    """Reset the draft for a run from the requested step; returns what must follow the status
    write that launches it (or suspends it): the results drop, then the request's removal."""
    steps = list(draft.checkpoint.get("steps") or [])
    names = [s.get("name") for s in steps]
    keep = _kept(draft, request, names)
    dropped = tuple(str(n) for n in names[keep:] if n)
    kept = steps[:keep]
    checkpoint = {"steps": kept, "attempt": draft.checkpoint.get("attempt")} if kept else None
    draft.checkpoint_reset = {"checkpoint": checkpoint}
    draft.checkpoint = checkpoint or {}
    _close_unstarted(draft)
    status = draft.status
    status.update(phase="Pending", completionTime=None, startTime=None, failures=0, interruptions=0)
    # The next launch raises the attempt by one: that attempt begins the new run.
    last = {"step": request.step, "nonce": request.nonce, "attempt": draft.attempt + 1}
    status["lastRestart"] = {k: v for k, v in last.items() if v is not None} | {"time": draft.stamp}
    for kind in (c.COMPLETE, c.FAILED, c.RESTART_REFUSED):
        draft.clear(kind, c.RESTART_REQUESTED, "restarted")
    where = "the first step" if keep == 0 else f"step {request.step}"
    draft.emit(
        "Normal",
        c.RESTART_REQUESTED,
        f"restarting from {where}; dropped: {', '.join(dropped) or 'nothing'}",
    )
    follow: list[Action] = [DropResults(dropped)] if dropped else []
    return [*follow, ClearRestartRequest(request.nonce)]


def _kept(draft: Draft, request: Request, names: list[Any]) -> int:
    """How many of the checkpoint's steps come before the requested one and stay. A step the
    checkpoint does not hold (named only in spec.steps, or dropped by this same request acted
    on before a crash) keeps the checkpoint's steps that spec.steps puts before it."""
    if request.from_first_step:
        return 0
    if request.step in names:
        return names.index(request.step)
    expected = list(draft.spec.get("steps") or [])
    before = set(expected[: expected.index(request.step)]) if request.step in expected else set()
    keep = 0
    while keep < len(names) and names[keep] in before:
        keep += 1
    return keep


def _close_unstarted(draft: Draft) -> None:
    """An attempt whose pod was never created (refused, or blocked by a name) ends here."""
    record: dict[str, Any] | None = draft.record(draft.attempt)
    if record is not None and draft.is_open(draft.attempt):
        ending = Ending("Interrupted", c.RESTART_REQUESTED, "restarted before its pod started")
        close_record(record, draft, ending, "Interrupted")
