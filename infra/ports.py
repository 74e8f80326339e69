"""Free loopback ports to listen on, chosen below the kernel's ephemeral range.

A port found free by binding port 0 comes from the ephemeral range, the same range the kernel
uses for the local end of outgoing connections. Between the probe and the server's own bind, a
broker's client or a Redis client can take it (CI once lost an embedded Redis port that way while
three brokers started). Ports below that range are never handed out implicitly, so a probe there
stays true until someone binds on purpose.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_HANDED_OUT: set[int] = set()


def listen_ports(range_file: Path = _RANGE_FILE) -> range:
    """Ports outside the ephemeral range: 10000 up to its start, or above its end when that is too
    small (Linux's default range is 32768-60999; elsewhere the same default is assumed)."""
    try:
        low, high = (int(x) for x in range_file.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low - 10000 >= 2000:
        return range(10000, low)
    return range(high + 1, 65536)


def free_port_block(count: int = 1, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive ports free on ``host``, outside the ephemeral range and
    not handed out before by this process."""
    ports = listen_ports()
    for _ in range(500):
        base = random.randrange(ports.start, ports.stop - count + 1)  # noqa: S311 - not a secret
        block = range(base, base + count)
        if _HANDED_OUT.intersection(block):
            continue
        socks: list[socket.socket] = []
        try:
            for port in block:
                sock = socket.socket()
                socks.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        _HANDED_OUT.update(block)
        return base
    raise OSError(f"no {count} consecutive free ports in {ports.start}-{ports.stop - 1} on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """One free port on ``host`` outside the ephemeral range."""
    return free_port_block(1, host)
