"""Ports chosen for embedded servers lie outside the ephemeral range, so an outgoing connection
cannot take one between the probe and the bind (a CI run lost a Redis port that way)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from vigil.infra import ports


def test_range_is_below_the_ephemeral_range(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("32768\t60999\n")
    assert ports.listen_ports(f) == range(10000, 32768)


def test_range_is_above_when_below_is_too_small(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("11000 50000\n")
    assert ports.listen_ports(f) == range(50001, 65536)


def test_unreadable_range_assumes_linux_default(tmp_path: Path) -> None:
    assert ports.listen_ports(tmp_path / "missing") == range(10000, 32768)


def test_block_is_free_outside_ephemeral_and_never_handed_out_twice() -> None:
    allowed = ports.listen_ports()
    seen: set[int] = set()
    for _ in range(20):
        base = ports.free_port_block(4)
        block = set(range(base, base + 4))
        assert block <= set(allowed)
        assert not block & seen
        seen |= block
        for port in block:  # free now: each binds
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))


def test_a_taken_port_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        monkeypatch.setattr(ports, "listen_ports", lambda: range(taken, taken + 1))
        monkeypatch.setattr(ports, "_HANDED_OUT", set())
        with pytest.raises(OSError, match=f"no 1 consecutive free ports in {taken}-{taken}"):
            ports.free_port()
