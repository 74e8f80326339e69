"""`vigil demo` / `vigil serve` refuse a port another process listens on, not one whose last
connections linger in TIME_WAIT (a demo run again a minute later)."""

from __future__ import annotations

import errno
import os
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


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_host_is_checked_on_an_ipv6_socket() -> None:
    """An IPv4 socket for "::1" failed, and every failure was "already in use": `vigil mllp --host ::1`
    could not start though its server binds there."""
    require_free_port("::1", 0)
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(UserError, match=rf"\[::1\]:{port} is already in use: choose another with --port"):
            require_free_port("::1", port)


def test_a_host_that_cannot_be_listened_on_is_not_called_a_taken_port() -> None:
    with pytest.raises(UserError, match="--host 192.0.2.55 cannot be used here: it is not an address of this machine"):
        require_free_port("192.0.2.55", 0)  # TEST-NET-1: never this machine's
    with pytest.raises(UserError, match="--host no-such-host.invalid cannot be used here: unknown host"):
        require_free_port("no-such-host.invalid", 0)


def test_each_bind_failure_names_its_cause_and_the_option_to_change() -> None:
    from vigil.cli.preflight import unusable_address

    def said(code: int) -> str:
        failure = OSError(code, os.strerror(code))
        return unusable_address("127.0.0.1", 80, failure, "VIGIL_METRICS_HOST", "--metrics-port")

    assert said(errno.EADDRINUSE) == "127.0.0.1:80 is already in use: choose another with --metrics-port"
    assert said(errno.EACCES) == (
        "127.0.0.1:80: ports below 1024 need privileges here: choose one of 1024 or above with --metrics-port"
    )
    assert said(errno.EADDRNOTAVAIL) == (
        "VIGIL_METRICS_HOST 127.0.0.1 cannot be used here: it is not an address of this machine"
    )
    assert said(errno.EAFNOSUPPORT).startswith("VIGIL_METRICS_HOST 127.0.0.1 cannot be used here: ")
