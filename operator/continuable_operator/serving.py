"""Health endpoints for the kubelet's probes: /healthz (the process serves) and /readyz (kopf
has started its watches, or the replica stands by for the Lease: a follower is healthy, and
a rollout must not wait for it to lead)."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def serve_health(
    host: str, port: int, ready: asyncio.Event, standby: asyncio.Event
) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
