"""``stack status`` and ``stack down`` take no --brokers or --secure: they read what ``stack up``
started from ``<home>/stack.json``. After ``up --brokers 3`` status listed node 0 alone, and after
``up --secure`` it read the brokers' metadata over PLAINTEXT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vigil.infra.stack as stack
from vigil.infra.ports import free_port_block
from vigil.infra.settings import Settings


def _started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kafka: object) -> Settings:
    """``stack up`` with these options, its servers stood in for (nothing listens on the ports)."""
    base = free_port_block(6)
    environment = Settings(
        home=tmp_path,
        kafka={"embedded_port": base, "embedded_controller_port": base + 1},
        redis={"embedded_port": free_port_block(1)},
    )
    for name in ("start_redis", "start_kafka", "ensure_topics"):
        monkeypatch.setattr(stack, name, lambda *args: None)
    stack.stack_up(environment.with_kafka(**kafka))
    return environment


def test_status_after_up_with_options_reports_what_up_started_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = _started(tmp_path, monkeypatch, brokers=3, security_protocol="SASL_SSL")
    status = stack.stack_status(environment)  # the environment's settings: one node, PLAINTEXT
    kafka = status["kafka"]
    assert isinstance(kafka, dict)
    assert kafka["brokers"] == 3 and kafka["security_protocol"] == "SASL_SSL"
    assert len(str(kafka["bootstrap"]).split(",")) == 3 and kafka["listening"] == [False, False, False]
    assert kafka["replication_factor"] == 3


def test_down_forgets_what_up_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = _started(tmp_path, monkeypatch, brokers=3)
    stack.stack_down(environment)
    kafka = stack.stack_status(environment)["kafka"]
    assert isinstance(kafka, dict)
    assert kafka["brokers"] == 1 and len(str(kafka["bootstrap"]).split(",")) == 1


def test_an_unreadable_record_leaves_status_to_the_environment(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{not json")
    kafka = stack.stack_status(Settings(home=tmp_path, kafka={"embedded_port": free_port_block(2)}))["kafka"]
    assert isinstance(kafka, dict) and kafka["brokers"] == 1


def test_the_stack_commands_take_only_the_options_the_readme_names() -> None:
    """README's command table said `vigil stack up/down/status [--secure] [--brokers 3]`."""
    from typer.testing import CliRunner

    from vigil.cli.stack import stack_app

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    runner = CliRunner()
    for command, options in (("up", {"--secure", "--brokers"}), ("down", {"--wipe"}), ("status", set())):
        shown = runner.invoke(stack_app, [command, "--help"], terminal_width=200).output
        for option in ("--secure", "--brokers", "--wipe"):
            assert (option in shown) == (option in options), (command, option)
    assert "`vigil stack up [--secure] [--brokers 3]`" in readme and "`vigil stack down [--wipe]`" in readme


@pytest.mark.parametrize(
    ("recorded", "cluster_planned", "brokers"),
    [
        ({"brokers": 1}, True, 3),  # `up` started one node; the environment now plans a cluster (factor 3)
        ({"brokers": 3}, False, 1),  # `up --brokers 3`; the environment's Redis port is now node 2's
    ],
)
def test_a_record_that_no_longer_fits_the_environment_leaves_status_to_it(
    tmp_path: Path, recorded: dict[str, object], cluster_planned: bool, brokers: int
) -> None:
    """``status`` stopped in a UserError where the docstring promised the environment's settings."""
    (tmp_path / "stack.json").write_text(json.dumps({**recorded, "security_protocol": "PLAINTEXT"}))
    base = free_port_block(6)  # nothing listens: no broker of another stack is asked
    kafka_settings = {"embedded_port": base, "embedded_controller_port": base + 1}
    if cluster_planned:
        settings = Settings(
            home=tmp_path,
            kafka={**kafka_settings, "brokers": 3, "replication_factor": 3},
            redis={"embedded_port": free_port_block(1)},
        )
    else:
        settings = Settings(home=tmp_path, kafka=kafka_settings, redis={"embedded_port": base + 4})
    assert stack.as_started(settings).kafka.brokers == brokers
    kafka = stack.stack_status(settings)["kafka"]
    assert isinstance(kafka, dict) and kafka["brokers"] == brokers
    assert "does not fit" in str(kafka["settings_from"]) and "stack.json" in str(kafka["settings_from"])
