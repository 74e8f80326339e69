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


def resolving_localhost_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    """``localhost`` resolving to ``addresses``, in that order (as a host's /etc/hosts may say)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str | None, port: int, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        if host != "localhost":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class RecordingSocket(socket.socket):
    """A socket that records its options and the address it is bound to, and binds nothing (each
    bind is refused as a taken port): what a check or a server would bind, without listening."""

    made: list[tuple[str, object]] = []

    def setsockopt(self, level: int, option: int, value: object) -> None:  # type: ignore[override]
        if (level, option) == (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
            RecordingSocket.made.append(("v6only", bool(value)))
        super().setsockopt(level, option, value)  # type: ignore[call-overload]

    def bind(self, address: object) -> None:
        RecordingSocket.made.append((self.family.name, address))
        raise OSError(errno.EADDRINUSE, "in use")


def test_the_metrics_port_is_checked_as_prometheus_binds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """prometheus_client's start_http_server binds the host's first address only, on a dual-stack
    socket; the check bound every address, with IPv6 only: `--host localhost` resolving also to an
    address not configured here was refused though the metrics would serve, and "::" with its port
    taken on IPv4 passed, then start_http_server failed with a traceback."""
    resolving_localhost_to(monkeypatch, "127.0.0.1", "2001:db8::1")  # IPv6 not configured here
    with pytest.raises(UserError, match="cannot be used here: it is not an address of this machine"):
        require_free_port("localhost", 0)  # `vigil mllp`'s own listener binds every address
    require_free_port("localhost", 0, "VIGIL_METRICS_HOST", "--metrics-port", binds="first_address")

    monkeypatch.setattr(socket, "socket", RecordingSocket)  # "::" is never bound here: recorded only
    RecordingSocket.made = []
    with pytest.raises(UserError, match=r"\[::\]:9464 is already in use: choose another with --metrics-port"):
        require_free_port("::", 9464, "VIGIL_METRICS_HOST", "--metrics-port", binds="first_address")
    assert RecordingSocket.made == [("AF_INET6", ("::", 9464, 0, 0))]  # dual-stack: no IPV6_V6ONLY


def test_the_dashboards_port_is_checked_as_uvicorn_run_binds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vigil serve` and the demo run uvicorn with an app object, one worker and no reload: uvicorn
    binds through asyncio's ``loop.create_server`` (each address, IPv6 only), not ``Config.bind_socket``
    (one AF_INET socket for a host without ':'), which it uses only with workers or reload. The check
    binds the same sockets: checked as bind_socket binds, `--host ::` would be refused for a port taken
    on 127.0.0.1 only, and `localhost` passed with its port taken on ::1, and uvicorn then failed."""
    import uvicorn

    async def app(scope: object, receive: object, send: object) -> None:
        pass

    def uvicorn_binds(host: str) -> list[tuple[str, object]]:
        RecordingSocket.made = []
        with pytest.raises(SystemExit):  # uvicorn's own end when a bind fails
            uvicorn.run(app, host=host, port=9464, log_config=None, lifespan="off")
        return RecordingSocket.made

    def check_binds(host: str) -> list[tuple[str, object]]:
        RecordingSocket.made = []
        with pytest.raises(UserError, match="already in use"):
            require_free_port(host, 9464)
        return RecordingSocket.made

    monkeypatch.setattr(uvicorn.Config, "bind_socket", lambda self: pytest.fail("uvicorn.run used bind_socket"))
    resolving_localhost_to(monkeypatch, "::1")
    monkeypatch.setattr(socket, "socket", RecordingSocket)  # nothing is bound: each bind is recorded, refused
    for host in ("::", "127.0.0.1", "localhost"):
        assert check_binds(host) == uvicorn_binds(host), host
    assert check_binds("::") == [("v6only", True), ("AF_INET6", ("::", 9464, 0, 0))]
