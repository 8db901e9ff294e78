"""Free TCP ports on loopback, so several control planes (tests, `cluster up`) never collide."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that were free a moment ago.

    All sockets stay open until every port is chosen, so the kernel cannot hand out the same
    port twice. Another process may still take one before our component binds it; the window is
    small and a bind failure shows up in the component's log.
    """
    with ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports
