"""`vigil demo` / `vigil serve` refuse a port another process listens on, not one whose last
connections linger in TIME_WAIT (a demo run again a minute later)."""

from __future__ import annotations

import socket

import pytest

from vigil.cli.preflight import require_free_port
from vigil.schemas.errors import UserError


def test_a_listened_port_is_refused_with_one_line() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port} is already in use"):
            require_free_port("127.0.0.1", port)


def test_a_port_in_time_wait_is_free() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    require_free_port("127.0.0.1", port)  # raised "already in use" before SO_REUSEADDR
