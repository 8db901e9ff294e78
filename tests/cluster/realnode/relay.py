"""`python -m tests.cluster.realnode.relay LISTEN_HOST:PORT TARGET_HOST:PORT`: a TCP relay.

The API server binds one address, loopback, and every client on the host uses it. Pods on the
real node reach it as `kubernetes.default` (10.96.0.1:443), which kube-proxy sends to the
`kubernetes` EndpointSlice; an endpoint cannot be a loopback address, so this relay listens on
the bridge's host address and passes the bytes (TLS included, untouched) to loopback.
"""

from __future__ import annotations

import asyncio
import sys


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(relay, *listen)
    print(f"relaying {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    asyncio.run(serve(split_address(argv[0]), split_address(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
