"""`python -m tests.soak` (`make soak`): one seeded chaos soak run.

Settings come from the environment, as `make soak` passes them: SOAK_JOBS (30), SOAK_FAULTS
(faults per job, 20), SOAK_SEED (random when unset; printed), SOAK_MINUTES (25: the budget
from the jobs' creation to the end of the wait for them), SOAK_NODES (3), SOAK_RUN_DIR (a new
temporary folder when unset). Exits 0 when every judge held, 1 otherwise.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

from .running import Settings, run


def settings_from_env() -> Settings:
    settings = Settings()
    env = os.environ
    if env.get("SOAK_JOBS"):
        settings.jobs = int(env["SOAK_JOBS"])
    if env.get("SOAK_FAULTS"):
        settings.faults_per_job = int(env["SOAK_FAULTS"])
    if env.get("SOAK_SEED"):
        settings.seed = int(env["SOAK_SEED"])
    if env.get("SOAK_MINUTES"):
        settings.minutes = float(env["SOAK_MINUTES"])
    if env.get("SOAK_NODES"):
        settings.nodes = int(env["SOAK_NODES"])
    if env.get("SOAK_RUN_DIR"):
        settings.run_dir = Path(env["SOAK_RUN_DIR"])
    return settings


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM as Ctrl-C: everything started is stopped on the way out.
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run(settings_from_env())
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
