"""`stack up`, `demo`, `replay` and `bench` check an outside Kafka and Redis answer before a client
retries for half a minute: the addresses they try are the ones the clients would."""

from __future__ import annotations

import socket

import pytest

from vigil.cli.preflight import require_redis
from vigil.infra.connect import host_port as _host_port
from vigil.infra.settings import Settings
from vigil.infra.stack import StackError, _require_answer


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("kafka:9092", ("kafka", 9092)),
        ("kafka", ("kafka", 9092)),  # the client's default port
        ("[::1]:19092", ("::1", 19092)),
        ("::1", ("::1", 9092)),
        ("broker-1.example.org:9093", ("broker-1.example.org", 9093)),
        ("h:99999", None),
        ("h:abc", None),
    ],
)
def test_an_address_is_read_as_a_client_reads_it(address: str, expected: tuple[str, int] | None) -> None:
    assert _host_port(address, 9092) == expected


def test_one_broker_answering_is_enough_and_none_is_one_line() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _require_answer([None, ("127.0.0.1", 1), ("127.0.0.1", port)], "Kafka broker", "VIGIL_KAFKA__BOOTSTRAP")
    with pytest.raises(StackError, match=r"no Kafka broker answers at 127.0.0.1:1: .*VIGIL_KAFKA__BOOTSTRAP"):
        _require_answer([("127.0.0.1", 1)], "Kafka broker", "VIGIL_KAFKA__BOOTSTRAP")


def test_a_redis_socket_file_is_left_to_the_client() -> None:
    settings = Settings().model_copy()
    url = "unix:///run/redis/redis.sock"
    assert require_redis(settings, url) == url
