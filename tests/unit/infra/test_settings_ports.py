"""The embedded stack's ports are checked when the settings are read, with the number of brokers
wherever it is given (the environment or ``stack up --brokers``): node i listens on
``EMBEDDED_PORT + 2i``, its controller on ``EMBEDDED_CONTROLLER_PORT + 2i``, and Redis beside them.
A port given twice bound one port twice; one over 65535 was a broker that could not start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from vigil.infra.ports import free_port_block
from vigil.infra.settings import KafkaSettings, Settings
from vigil.infra.stack import kafka
from vigil.infra.stack.processes import StackError
from vigil.schemas.errors import UserError


@pytest.mark.parametrize(
    ("kafka_settings", "words"),
    [
        # the port the "port 19092 is taken" hint led to: the controller's
        ({"embedded_port": 19093}, "VIGIL_KAFKA__EMBEDDED_PORT=19093 and VIGIL_KAFKA__EMBEDDED_CONTROLLER_PORT=19093"),
        ({"brokers": 3, "embedded_controller_port": 19094}, "give port 19094 to a broker and a controller"),
        ({"brokers": 3, "embedded_port": 65535}, "VIGIL_KAFKA__EMBEDDED_PORT=65535 puts node 2 of 3 on port 65539"),
        ({"brokers": 2, "embedded_controller_port": 65534}, "EMBEDDED_CONTROLLER_PORT=65534 puts node 1 of 2"),
    ],
)
def test_embedded_kafka_ports_that_collide_or_overflow_are_refused(kafka_settings: dict, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError, match=words):
        KafkaSettings(**kafka_settings)


def test_ports_that_fit_are_accepted_and_an_outside_cluster_is_not_checked() -> None:
    assert KafkaSettings(brokers=3, embedded_port=65530, embedded_controller_port=65531).brokers == 3
    assert KafkaSettings(brokers=5).embedded_port == 19092  # the defaults, 19092 + 2i and 19093 + 2i
    assert KafkaSettings(bootstrap="k:9092", embedded_port=19093).embedded_port == 19093


def test_the_embedded_redis_may_not_take_a_kafka_nodes_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.cli.errors import explain

    with pytest.raises(ValidationError) as caught:
        Settings(redis={"embedded_port": 19093})
    line, _ = explain(caught.value)
    assert "VIGIL_REDIS__EMBEDDED_PORT=19093 is a port of embedded Kafka node 0" in line and "\n" not in line
    assert Settings(redis={"embedded_port": 19093, "url": "redis://r:6379/0"}).redis.embedded_port == 19093
    # the number of brokers given on the command line: `stack up --brokers 3` puts node 2 on 19096
    settings = Settings(redis={"embedded_port": 19096})
    with pytest.raises(UserError, match="VIGIL_REDIS__EMBEDDED_PORT=19096 is a port of embedded Kafka node 2"):
        settings.with_kafka(brokers=3)
    with pytest.raises(UserError, match="puts node 2 of 3 on port 65539"):
        Settings(kafka={"embedded_port": 65535}).with_kafka(brokers=3)
    assert settings.with_kafka(brokers=2).kafka.brokers == 2


def test_a_suggested_port_is_free_and_clashes_with_none_of_the_stacks_others() -> None:
    from vigil.infra.stack.processes import free_port_series

    taken = {19094}
    # one node: 19093 is the controller's, 19094 taken: 19095
    assert free_port_series(19093, 1, {19093, 16379}, taken.__contains__) == 19095
    # three nodes: an odd start meets the controllers' 19093 + 2i, 19094 is taken: 19096, 19098, 19100
    assert free_port_series(19093, 3, {19093, 19095, 19097}, taken.__contains__) == 19096
    assert free_port_series(65534, 2, set(), lambda port: False) is None  # 65534 + 2 is no port


def test_a_taken_controller_port_stops_the_start_with_a_free_port_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port_block(4)
    settings = Settings(home=tmp_path, kafka={"embedded_port": port, "embedded_controller_port": port + 1})
    monkeypatch.setattr(kafka, "ensure_kafka_jars", lambda paths: paths.libs)
    monkeypatch.setattr(kafka, "_prepare_node", lambda *args: pytest.fail("a node started on a taken port"))
    with socket.socket() as other:  # another program on the controller's port
        other.bind(("127.0.0.1", port + 1))
        other.listen()
        with pytest.raises(
            StackError, match=rf"port {port + 1} is taken .* VIGIL_KAFKA__EMBEDDED_CONTROLLER_PORT=(\d+)"
        ) as caught:
            kafka.start_kafka(settings, timeout_s=1)
    suggested = int(str(caught.value).rsplit("=", 1)[1])
    assert suggested not in (port, port + 1, settings.redis.embedded_port)
    assert KafkaSettings(embedded_port=port, embedded_controller_port=suggested)  # a setting the settings accept


@pytest.mark.parametrize(
    ("kafka_settings", "setting", "busy"),
    [
        ({}, "EMBEDDED_CONTROLLER_PORT", {19093}),  # the hint named 19094, the clients' parity
        ({}, "EMBEDDED_PORT", {19092, 19094}),  # it named 19095, the controllers' parity
        ({"brokers": 3}, "EMBEDDED_CONTROLLER_PORT", {19093, 19097}),  # it named 19098: 5 nodes met
    ],
)
def test_a_taken_port_hint_names_a_base_of_the_other_listeners_opposite_parity(
    monkeypatch: pytest.MonkeyPatch, kafka_settings: dict[str, object], setting: str, busy: set[int]
) -> None:
    """An even client base and an odd controller base never meet, whatever the number of nodes: a
    suggestion of the other listener's parity fitted one node, and ``stack up --brokers 3`` refused it."""
    from vigil.infra.stack import processes

    monkeypatch.setattr(kafka, "port_open", lambda host, port, timeout=0.5: port in busy)
    monkeypatch.setattr(processes, "port_open", lambda host, port, timeout=0.5: port in busy)
    settings = Settings(kafka=kafka_settings)
    taken = min(busy)
    hint = kafka.port_taken_hint(settings, taken, setting)
    assert hint.startswith(f"port {taken} is taken by another process; set VIGIL_KAFKA__{setting}=")
    suggested = int(hint.rsplit("=", 1)[1])
    k = settings.kafka
    other = k.embedded_port if setting == "EMBEDDED_CONTROLLER_PORT" else k.embedded_controller_port
    assert (suggested - other) % 2 == 1 and suggested not in busy
    for brokers in (1, 3, 5):  # the setting holds whatever the cluster's size
        assert settings.with_kafka(brokers=brokers, **{setting.lower(): suggested}).kafka.brokers == brokers
