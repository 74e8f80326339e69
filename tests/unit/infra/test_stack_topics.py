"""Reading the topics' min.insync.replicas back (infra.stack.topics): a broker that has not applied a
new topic's metadata yet answers without its configs; the reader asks again instead of reporting None."""

from __future__ import annotations

from typing import Any

from vigil.infra.stack.topics import _int_or_none, _min_insync_configs


class _Admin:
    """Answers DescribeConfigs as kafka-python returns it, without the configs for the first ``lagging`` calls."""

    def __init__(self, lagging: int) -> None:
        self.calls, self.lagging = 0, lagging

    def describe_configs(
        self, resources: list[Any], config_filter: str = "modified"
    ) -> dict[str, dict[str, dict[str, Any]]]:
        self.calls += 1
        entry = {} if self.calls <= self.lagging else {"min.insync.replicas": {"value": "2"}}
        return {"topic": {r.name: dict(entry) for r in resources}}


def test_a_lagging_broker_is_asked_again_until_every_topic_has_its_config() -> None:
    admin = _Admin(lagging=2)
    configs = _min_insync_configs(admin, ("a", "b"), wait_s=5.0)
    assert admin.calls == 3
    assert [_int_or_none(configs[t].get("min.insync.replicas")) for t in ("a", "b")] == [2, 2]


def test_a_topic_without_the_config_is_reported_as_none_after_the_wait() -> None:
    admin = _Admin(lagging=10**6)
    configs = _min_insync_configs(admin, ("a",), wait_s=0.6)
    assert 2 <= admin.calls <= 4 and _int_or_none(configs["a"].get("min.insync.replicas")) is None


def test_what_an_existing_topic_lacks_against_the_spec() -> None:
    from vigil.infra.stack.topics import TopicSpec, topic_findings

    spec = TopicSpec(partitions=12, replication_factor=3, min_insync_replicas=2)
    assert topic_findings(spec, 12, 3, 2) == []
    assert topic_findings(spec, 24, 5, 3) == []  # more than asked is no shortfall
    assert topic_findings(spec, 12, 3, None) == []  # unknown (not readable): not claimed short
    found = topic_findings(spec, 4, 1, 1)
    assert [f.split(",")[0] for f in found] == ["4 partitions", "1 replica", "min.insync.replicas 1"]
    assert "at most 4 workers share it" in found[0] and "can lose accepted events" in found[1]
    assert "at most 1 worker shares it" in topic_findings(spec, 1, 3, 2)[0]


def test_the_spec_is_the_settings_one() -> None:
    from vigil.infra.settings import KafkaSettings, Settings
    from vigil.infra.stack.topics import TopicSpec, wanted_spec

    external = Settings(kafka=KafkaSettings(bootstrap="kafka-1:9093", partitions=12))
    assert wanted_spec(external) == TopicSpec(12, 3, 2)
    one = Settings(kafka=KafkaSettings(bootstrap="kafka:9092", replication_factor=1))
    assert wanted_spec(one) == TopicSpec(4, 1, 1)
