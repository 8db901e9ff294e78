"""`continuable interrupt`: a graceful relaunch, to try a job's resume path on purpose.

Rails users are told to send their worker a SIGTERM in staging; here the pod is stamped with a
`DisruptionTarget` condition (reason `ManualInterruption`, the same condition type the operator,
the Eviction API and the scheduler stamp) and then deleted gracefully. The pod's SDK flushes its
cursor on SIGTERM and exits 75; the operator records the interruption (not a failure) and starts
the next attempt from the checkpoint.
"""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime
from typing import Any, Final

from continuable.names import DISRUPTION_TARGET

MANUAL_INTERRUPTION: Final = "ManualInterruption"


def requested_by() -> str:
    """Who asked, for the condition's message: the local user and host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def disruption_patch(*, requester: str, now: datetime | None = None) -> dict[str, Any]:
    """The strategic merge patch of the pod's status that records why it is being deleted."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "status": {
            "conditions": [
                {
                    "type": DISRUPTION_TARGET,
                    "status": "True",
                    "reason": MANUAL_INTERRUPTION,
                    "message": f"interrupted by `continuable interrupt` ({requester}) to "
                    "relaunch the job from its checkpoint",
                    "lastTransitionTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        }
    }
