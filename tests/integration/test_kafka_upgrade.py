"""A Kafka cluster upgraded in place stays at the ``metadata.version`` its storage was formatted
with until an operator finalizes it (docs/operations.md, "Upgrading Kafka"). A node formatted at
release 4.1 (as the broker Vigil ran until 6 December 2026 formatted it) starts under this broker;
``vigil stack status`` says the upgrade awaits finalizing; once finalized, it no longer does, and the
node restarts at the new level."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import own_stack_settings

pytestmark = pytest.mark.integration

OLD_RELEASE = "4.1-IV1"  # what Kafka 4.1.1 formatted a new node at


@pytest.fixture
def old_node() -> Iterator[object]:
    """An embedded home whose node was formatted at ``OLD_RELEASE`` by this broker's own storage tool."""
    from vigil.infra.stack.jars import ensure_kafka_jars, java_cmd
    from vigil.infra.stack.kafka import _cluster_id, node_dir, node_properties, stop_kafka
    from vigil.infra.stack.processes import StackPaths

    with tempfile.TemporaryDirectory(prefix="vigil-upgrade-") as tmp:
        settings = own_stack_settings(Path(tmp))
        paths = StackPaths(settings.home)
        ensure_kafka_jars(paths)
        folder = node_dir(settings, 0)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "server.properties").write_text(node_properties(settings, 0))
        formatted = subprocess.run(  # noqa: S603 - Kafka's storage tool on the stack's jars
            java_cmd(
                paths,
                folder,
                folder / "format.log",
                256,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={_cluster_id(paths)}",
                "-c",
                str(folder / "server.properties"),
                "--release-version",
                OLD_RELEASE,
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert formatted.returncode == 0, formatted.stdout[-2000:] + formatted.stderr[-2000:]
        try:
            yield settings
        finally:
            stop_kafka(settings)


def test_status_shows_an_upgrade_awaiting_finalizing_until_it_is_finalized(old_node) -> None:
    from vigil.infra.connect import kafka_admin
    from vigil.infra.stack import stack_status
    from vigil.infra.stack.kafka import start_kafka, stop_kafka

    settings = old_node
    start_kafka(settings)  # the storage is formatted already: the node starts on it as it is
    before = stack_status(settings)["kafka"]
    assert isinstance(before, dict)
    level = before["metadata_version"]
    assert isinstance(level, dict), level
    assert level["finalize_pending"] is True and "Upgrading Kafka" in str(level["hint"]), level
    assert isinstance(level["finalized_level"], int) and isinstance(level["supported_level"], int)
    assert level["finalized_level"] < level["supported_level"]

    admin = kafka_admin(settings, client_id="test-upgrade")  # what kafka-features.sh upgrade sends
    try:
        assert admin.update_features({"metadata.version": level["supported_level"]}) == {"metadata.version": "OK"}
    finally:
        admin.close()
    after = stack_status(settings)["kafka"]
    assert isinstance(after, dict)
    assert after["metadata_version"] == {
        "finalized_level": level["supported_level"],
        "supported_level": level["supported_level"],
        "finalize_pending": False,
    }
    stop_kafka(settings)  # and the node starts again at the new level
    start_kafka(settings)
    again = stack_status(settings)["kafka"]
    assert isinstance(again, dict) and again["metadata_version"] == after["metadata_version"]
