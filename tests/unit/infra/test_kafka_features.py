"""``metadata_version``: the finalized against the highest supported level, from kafka-python's
``describe_features`` (tests/integration/test_kafka_upgrade.py reads a real upgraded node)."""

from __future__ import annotations

from vigil.infra.kafka_features import FINALIZE_HINT, metadata_version


def test_a_cluster_below_what_its_brokers_support_awaits_finalizing() -> None:
    features = {
        "metadata.version": {"supported": (7, 30), "finalized": (27, 27), "finalized_epoch": 12},
        "kraft.version": {"supported": (0, 1), "finalized": (0, 0)},
    }
    assert metadata_version(features) == {
        "finalized_level": 27,
        "supported_level": 30,
        "finalize_pending": True,
        "hint": FINALIZE_HINT,
    }


def test_a_finalized_cluster_does_not() -> None:
    features = {"metadata.version": {"supported": (7, 30), "finalized": (30, 30)}}
    assert metadata_version(features) == {"finalized_level": 30, "supported_level": 30, "finalize_pending": False}


def test_a_broker_that_reports_no_metadata_version_is_not_called_pending() -> None:
    assert metadata_version({}) == {"finalized_level": None, "supported_level": None, "finalize_pending": False}
    only_supported = {"metadata.version": {"supported": (7, 30)}}
    assert metadata_version(only_supported)["finalize_pending"] is False
