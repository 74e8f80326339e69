"""`vigil stack topics` on a broker Vigil did not set up (its own, started without Vigil's topics, reached
as an external cluster through VIGIL_KAFKA__BOOTSTRAP): a worker and the MLLP listener refuse to start
without them, in one line; the command lists what is missing, refuses in one line a replication the
cluster cannot hold, creates the missing topics with the asked partitions, and reports, without
changing it, a topic someone made with fewer partitions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, free_port_block, link_cached_kafka_jars

pytestmark = pytest.mark.integration
VIGIL = str(Path(sys.executable).parent / "vigil")


@pytest.fixture(scope="module")
def bare_broker() -> Iterator[str]:
    from vigil.infra.settings import KafkaSettings, Settings
    from vigil.infra.stack.kafka import start_kafka, stop_kafka

    with tempfile.TemporaryDirectory(prefix="vigil-topics-") as tmp:
        home = Path(tmp)
        link_cached_kafka_jars(home)
        base = free_port_block(2)
        settings = Settings(home=home, kafka=KafkaSettings(embedded_port=base, embedded_controller_port=base + 1))
        bootstrap = start_kafka(settings)  # the broker alone: no topic of Vigil's
        try:
            yield bootstrap
        finally:
            stop_kafka(settings)


def run(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {"VIGIL_KAFKA__BOOTSTRAP": bootstrap, "VIGIL_KAFKA__PARTITIONS": "4"}
    return subprocess.run(
        [VIGIL, "stack", "topics", *args, "--json"], env=env, capture_output=True, text=True, timeout=120
    )


def summary(done: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_worker_and_the_mllp_listener_refuse_to_start_without_the_topics(bare_broker: str) -> None:
    """(First in this module: the next test creates the topics.) A worker would make those it reads
    itself, with its own partition count and no min.insync.replicas; it stops in one line instead."""
    from vigil.schemas import topics

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {"VIGIL_KAFKA__BOOTSTRAP": bare_broker, "VIGIL_LOG_HASH_KEY": "not-the-default-key"}
    for command in (["worker"], ["mllp", "--port", str(free_port())]):
        done = subprocess.run([VIGIL, *command], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
        (line,) = done.stderr.strip().splitlines()
        n = len(topics.ALL_TOPICS)
        assert line.startswith(f"error: {n} of Vigil's {n} topics are missing on {bare_broker}"), line
        assert line.endswith("create them with `vigil stack topics --apply`, then start this again"), line


def test_missing_topics_are_listed_then_created_and_an_existing_one_is_kept(bare_broker: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    from vigil.schemas import topics

    first = summary(run(bare_broker))
    assert set(first["missing"]) == set(topics.ALL_TOPICS) and first["created"] == [] and not first["applied"]
    assert first["spec"] == {"partitions": 4, "replication_factor": 3, "min_insync_replicas": 2}  # a cluster's

    # an external cluster's default is 3 replicas; this one has 1 broker: one line, nothing created
    refused = run(bare_broker, "--apply")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refused 3 replicas" in refused.stderr and "--replication-factor" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert set(summary(run(bare_broker))["missing"]) == set(topics.ALL_TOPICS)

    admin = KafkaAdminClient(bootstrap_servers=bare_broker)  # someone made one with 2 partitions
    try:
        admin.create_topics([NewTopic(topics.ALERTS, 2, 1)], wait_for_metadata=True)
    finally:
        admin.close()

    made = summary(run(bare_broker, "--apply", "--replication-factor", "1", "--partitions", "6"))
    assert made["applied"] and made["missing"] == []
    assert set(made["created"]) == set(topics.ALL_TOPICS) - {topics.ALERTS}
    by_name = {t["name"]: t for t in made["topics"]}
    assert by_name[topics.EVENTS_RAW] == {
        "name": topics.EVENTS_RAW,
        "state": "created",
        "partitions": 6,
        "replication_factor": 1,
        "min_insync_replicas": 1,
        "findings": [],
    }
    alerts = by_name[topics.ALERTS]
    assert alerts["state"] == "present" and alerts["partitions"] == 2  # kept as it was
    assert alerts["min_insync_replicas"] == 1  # the broker's default: no value on the topic, still read
    assert made["short"] == [topics.ALERTS]
    assert alerts["findings"] == [
        "2 partitions, fewer than 6: at most 2 workers share it "
        "(adding partitions moves patients between them: stop the workers and let them finish first)"
    ]

    again = summary(run(bare_broker, "--apply", "--replication-factor", "1", "--partitions", "6"))
    assert again["created"] == [] and again["missing"] == []
    assert all(t["state"] == "present" for t in again["topics"])


def test_a_min_insync_above_the_replicas_is_refused_before_the_cluster_is_asked(bare_broker: str) -> None:
    done = run(bare_broker, "--apply", "--replication-factor", "2", "--min-insync-replicas", "3")
    assert done.returncode == 2 and "no write could ever be acknowledged" in done.stderr
