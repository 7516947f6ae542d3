"""Ports for servers the bench, the proof and the tests start of their own."""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000


def free_port() -> int:
    """Any free port, from the kernel: for a server that keeps its port until it stops for good."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def restartable_port() -> int:
    """A free port below the kernel's ephemeral range, for a server that is stopped and started
    again on the same port. A port the kernel hands out lies inside that range, so while its server
    is down any outgoing connection may be given it as its own local port, including a client
    retrying that very port, which then connects to itself; the server, started again, can no
    longer listen there (EADDRINUSE). Below the range no outgoing connection is ever given it."""
    ceiling = _ephemeral_floor()
    for _ in range(100):
        port = random.randrange(LOWEST_PORT, ceiling)
        if _bindable(port):
            return port
    raise OSError(f"no free port between {LOWEST_PORT} and {ceiling}")


def _ephemeral_floor() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default range starts here


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
