from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from continuable_operator.serving import WEDGED_SECONDS, health_app


async def _get(path: str, stalled: float, *, ready: bool = True) -> tuple[int, str]:
    ready_flag, standby = asyncio.Event(), asyncio.Event()
    if ready:
        ready_flag.set()
    app = health_app(ready_flag, standby, lambda: stalled)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get(path)
        return answer.status, await answer.text()


def test_healthz_is_ok_while_due_work_gets_started() -> None:
    assert asyncio.run(_get("/healthz", 0.0)) == (200, "ok\n")
    assert asyncio.run(_get("/healthz", WEDGED_SECONDS - 1))[0] == 200


def test_healthz_fails_when_the_reconcile_loop_is_wedged() -> None:
    status, text = asyncio.run(_get("/healthz", WEDGED_SECONDS + 5))
    assert status == 503
    assert "wedged" in text


def test_readyz_waits_for_the_first_lists() -> None:
    assert asyncio.run(_get("/readyz", 0.0, ready=False))[0] == 503
    assert asyncio.run(_get("/readyz", 0.0))[0] == 200
