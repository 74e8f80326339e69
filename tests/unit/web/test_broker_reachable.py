"""The broker check of ``vigil worker``'s preflight and the dashboard's /readyz reads bootstrap
entries as Kafka's clients do: ``kafka-1`` (port 9092) and ``[::1]:9092`` were refused before any
connection, so /readyz never said ready where ``stack up`` and every client worked."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from vigil.agents.web import readiness


def test_addresses_are_read_as_the_clients_read_them(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[tuple[str, int]] = []

    class Open:
        def __enter__(self) -> Open:
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

    def connect(address: tuple[str, int], timeout: float) -> Open:
        tried.append(address)
        if address[0] != "kafka-2":
            raise OSError("refused")
        return Open()

    monkeypatch.setattr(socket, "create_connection", connect)
    assert readiness.broker_reachable("kafka-1, [::1]:19092,kafka-1:notaport,kafka-2")
    assert tried == [("kafka-1", 9092), ("::1", 19092), ("kafka-2", 9092)]
    tried.clear()
    assert not readiness.broker_reachable("kafka-1:9093,")  # a trailing comma is no localhost entry
    assert tried == [("kafka-1", 9093)]
