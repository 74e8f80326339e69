"""A Redis URL's password never reaches a terminal, a log line or the audit trail: ``vigil stack up``
and ``stack status`` printed ``VIGIL_REDIS__URL`` as set, and every worker start wrote it to
``vigil.audit`` (a replicated topic kept for days) while the SecretStr settings were masked."""

from __future__ import annotations

import json

import pytest

from vigil.infra.audit import effective_config
from vigil.infra.connect import redacted_url
from vigil.infra.settings import Settings
from vigil.infra.stack import StackInfo, stack_status

SECRET = "S3cretPassw0rd"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        (f"rediss://vigil:{SECRET}@redis:6379/0", "rediss://***@redis:6379/0"),
        (f"rediss://vigil:p@ss{SECRET}@redis:6379/0", "rediss://***@redis:6379/0"),  # an @ in the password
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        (f"unix:///tmp/r.sock?db=0&password={SECRET}", "unix:///tmp/r.sock?db=0&password=***"),
        (f"redis://h:6379/0?password={SECRET}&username=vigil", "redis://h:6379/0?password=***&username=***"),
        ("redis://h/0#a@b", "redis://h/0#a@b"),  # an @ in the fragment is no user
        (None, None),
    ],
)
def test_a_urls_user_and_password_are_never_shown(url: str | None, shown: str | None) -> None:
    assert redacted_url(url) == shown


def test_the_audit_record_the_stack_and_its_status_carry_no_redis_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"rediss://vigil:{SECRET}@redis:6379/0"
    settings = Settings(home=tmp_path, redis={"url": url})
    assert SECRET not in json.dumps(effective_config(settings))
    assert SECRET not in json.dumps(StackInfo("k:9092", url, False, False).as_dict())
    assert SECRET not in json.dumps(stack_status(settings), default=str)


def test_log_level_and_format_are_checked_with_the_other_settings() -> None:
    """``VIGIL_LOG_LEVEL=verbose`` passed the settings and ended ``vigil worker`` after its preflight as
    an unexpected error; ``VIGIL_LOG_FORMAT=jsonn`` was taken as json."""
    from pydantic import ValidationError

    assert (Settings(log_level="debug").log_level, Settings(log_format="JSON").log_format) == ("DEBUG", "json")
    assert (Settings(log_level="warn").log_level, Settings(log_level="FATAL").log_level) == ("WARNING", "CRITICAL")
    for bad in ({"log_level": "verbose"}, {"log_format": "jsonn"}):
        with pytest.raises(ValidationError):
            Settings(**bad)


@pytest.mark.parametrize(
    ("kafka", "words"),
    [
        ({"min_insync_replicas": 2}, "no write could ever be acknowledged"),  # one embedded broker
        ({"bootstrap": "k:9092", "replication_factor": 2, "min_insync_replicas": 3}, "more than the 2 replicas"),
        ({"replication_factor": 3}, "more than the embedded stack's 1 brokers"),
        ({"security_protocol": "SSL"}, "not SSL"),
    ],
)
def test_kafka_settings_no_cluster_could_serve_are_refused_when_read(kafka: dict, words: str) -> None:  # type: ignore[type-arg]
    """min.insync.replicas over the replicas took no acks=all write (Kafka does not check it at topic
    creation); more replicas than embedded brokers failed as 'Kafka is not reachable'; SSL without
    SASL is no listener the embedded stack opens (stack up waited 120 s)."""
    from pydantic import ValidationError

    from vigil.infra.settings import KafkaSettings

    with pytest.raises(ValidationError, match=words):
        KafkaSettings(**kafka)
    assert KafkaSettings(brokers=3, replication_factor=3, min_insync_replicas=2).in_sync_replicas == 2
    assert KafkaSettings(bootstrap="k:9092").replicas == 3 and KafkaSettings().replicas == 1
