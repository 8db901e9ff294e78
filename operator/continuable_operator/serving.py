"""Health endpoints for the kubelet's probes.

- /healthz (liveness): the process serves, and its reconcile loop is not wedged: work that came
  due (a backoff ending, a TTL, a retry) has been started within `WEDGED_SECONDS`. A loop that
  stopped starting due work would leave jobs waiting forever; a restart is the cure.
- /readyz (readiness): the first lists of every watched kind are in, or the replica stands by
  for the Lease (a follower is healthy, and a rollout must not wait for it to lead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

# Due work not started for this long means a wedged loop. A backlog (after a restart, thousands
# of finished jobs) keeps starting reconciles, which counts as progress; so this can be short
# next to the waits it guards (TTLs, backoffs), yet it is far above one reconcile's API calls
# (each bounded by a 30 s read timeout).
WEDGED_SECONDS = 60.0


def health_app(
    ready: asyncio.Event, standby: asyncio.Event, stalled: Callable[[], float]
) -> web.Application:
    """`stalled()`: seconds for which due work has waited with none started."""

    async def healthz(_: web.Request) -> web.Response:
        waited = stalled()
        if waited > WEDGED_SECONDS:
            return web.Response(
                status=503, text=f"wedged: due work not started for {waited:.0f}s\n"
            )
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready.is_set():
            return web.Response(text="ok\n")
        if standby.is_set():
            return web.Response(text="standby\n")
        return web.Response(status=503, text="starting\n")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_health(host: str, port: int, app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
