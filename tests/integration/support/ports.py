"""Free TCP ports for servers a test or a benchmark starts.

Imports nothing from the rest of the package (nor pytest), so the
benchmarks load it on its own:

    sys.path.insert(0, str(TOP / "tests" / "integration" / "support"))
    from ports import free_port
"""

from __future__ import annotations

import pathlib
import random
import socket


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (32768 when unreadable)."""
    try:
        return int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_START = ephemeral_start()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host that was free a moment ago, below the kernel's
    ephemeral range where it can be: outgoing connections take their local
    ports from that range, and one of them could take a port picked there
    before the server meant to listen on it binds it. Port 0 (a port from the
    ephemeral range) only when nothing below it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low, high = 10000, _EPHEMERAL_START - 1
    for _ in range(50 if high - low >= 1000 else 0):
        port = random.randint(low, high)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
