"""`continuable restart`: ask the operator to run a job again from one of its steps.

The command only writes two annotations on the ContinuableJob; the operator does the rest (stops
the running pod, resets `status.checkpoint` from that step on, drops those steps' results,
removes the annotations, launches the next attempt). The nonce makes a second request for the
same step a change the operator sees, even if the first request's annotation is still there.
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from continuable.names import (
    RESTART_FROM_FIRST_STEP,
    RESTART_FROM_STEP_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
)

from .errors import CliError
from .selecting import checkpoint_of, known_steps, restartable_steps, status_of

# The annotation's value for "from the first step": not a valid step name, so never ambiguous.
FROM_THE_START: Final = RESTART_FROM_FIRST_STEP


@dataclass(frozen=True)
class RestartPlan:
    """What a restart will do, for the confirmation and for the patch."""

    job: str
    from_step: str
    kept: list[str]
    rerun: list[str]
    running_pod: str | None

    def patch(self, nonce: str) -> dict[str, Any]:
        return restart_patch(self.from_step, nonce)

    def describe(self, namespace: str) -> str:
        where = f"continuablejob {namespace}/{self.job}"
        if self.from_step == FROM_THE_START:
            head = f"Restart {where} from its first step."
        else:
            head = f"Restart {where} from step {self.from_step}."
        lines = [head]
        if self.kept:
            lines.append(f"  kept (completed, not run again): {', '.join(self.kept)}")
        if self.rerun:
            lines.append(f"  run again (checkpoint and results dropped): {', '.join(self.rerun)}")
        else:
            lines.append("  no step has run yet: the job simply starts again")
        if self.running_pod:
            lines.append(f"  the running pod {self.running_pod} is stopped first")
        return "\n".join(lines)


def new_nonce() -> str:
    return secrets.token_hex(8)


def restart_patch(from_step: str, nonce: str) -> dict[str, Any]:
    """The JSON merge patch that asks the operator for the restart."""
    return {
        "metadata": {
            "annotations": {
                RESTART_FROM_STEP_ANNOTATION: from_step,
                RESTART_NONCE_ANNOTATION: nonce,
            }
        }
    }


def plan_restart(job: Mapping[str, Any], from_step: str | None) -> RestartPlan:
    """Check `from_step` against the steps the job has reported and say what will run again."""
    name = str((job.get("metadata") or {}).get("name", ""))
    steps = known_steps(job)
    step = FROM_THE_START if from_step in (None, FROM_THE_START) else str(from_step)
    if step == FROM_THE_START:
        kept: list[str] = []
        rerun = steps
    else:
        allowed = restartable_steps(job)
        if step not in allowed:
            raise CliError(unknown_step_message(name, step, allowed))
        # A step not reported yet (named by spec.steps) comes after every reported one.
        position = steps.index(step) if step in steps else len(steps)
        kept, rerun = steps[:position], steps[position:] or [step]
    completed = {
        s["name"] for s in checkpoint_of(job).get("steps") or [] if s.get("state") == "Completed"
    }
    status = status_of(job)
    running = status.get("podName") if status.get("phase") == "Running" else None
    return RestartPlan(
        job=name,
        from_step=step,
        kept=[s for s in kept if s in completed],
        rerun=rerun,
        running_pod=str(running) if running else None,
    )


def unknown_step_message(job: str, step: str, known: list[str]) -> str:
    if not known:
        return (
            f"job {job} has no step {step!r}: it has not reported any step yet; restart it "
            "from the start without --from-step"
        )
    message = f"job {job} has no step {step!r}; its steps: {', '.join(known)}"
    close = difflib.get_close_matches(step, known, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message
