"""The relay that lets pods reach the loopback API server passes bytes both ways."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.ports import free_ports
from tests.cluster.realnode.relay import serve, split_address


def test_split_address() -> None:
    assert split_address("10.89.0.1:6443") == ("10.89.0.1", 6443)
    with pytest.raises(SystemExit, match="HOST:PORT"):
        split_address("10.89.0.1")


def test_bytes_pass_both_ways_through_the_relay() -> None:
    async def scenario() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"echo:" + await reader.readexactly(5))
            await writer.drain()
            writer.close()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        target = upstream.sockets[0].getsockname()[1]
        (listen,) = free_ports(1)
        relay = asyncio.create_task(serve(("127.0.0.1", listen), ("127.0.0.1", target)))
        try:
            for _ in range(100):  # bounded: the relay binds within a few loop turns
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", listen)
                    break
                except OSError:
                    await asyncio.sleep(0.01)
            writer.write(b"hello")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            return answer
        finally:
            relay.cancel()
            upstream.close()

    assert asyncio.run(scenario()) == b"echo:hello"
