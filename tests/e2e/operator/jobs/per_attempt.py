"""three_steps.py, with each attempt's side effects kept apart: attempt N appends to
`$EVENTS.N`, and its last line there is `exit <code>`. For the tests where the processes of two
attempts run at once (a zombie on a lost node) and must be told apart.

`ITEM_SECONDS_ATTEMPT_<N>`, when set, is attempt N's ITEM_SECONDS (a job slow only at first).
"""

from __future__ import annotations

import os
import runpy
import time
from pathlib import Path

THREE_STEPS = Path(__file__).resolve().parents[2] / "local" / "jobs" / "three_steps.py"

attempt = os.environ.get("CONTINUABLE_ATTEMPT", "0")
events = f"{os.environ['EVENTS']}.{attempt}"
os.environ["EVENTS"] = events
override = os.environ.get(f"ITEM_SECONDS_ATTEMPT_{attempt}")
if override:
    os.environ["ITEM_SECONDS"] = override

code = 1  # what Python exits with when an exception escapes
try:
    runpy.run_path(str(THREE_STEPS), run_name="__main__")
    code = 0
except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    raise
finally:
    with open(events, "a", encoding="utf-8") as out:
        out.write(f"exit {code} {time.monotonic():.6f}\n")
