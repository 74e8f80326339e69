"""The workers' bounded fetch wait (agents/transport.py): it reaches the aiokafka consumer that Faust
builds for a Vigil worker, and a renamed aiokafka attribute fails loudly instead of silently
leaving Faust's 1.5 s in place."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aiokafka
import pytest

from vigil.agents.transport import BoundedWaitApp, BoundedWaitTransport, bound_fetch_wait
from vigil.infra.settings import KafkaSettings, get_settings


def test_bound_fetch_wait_sets_what_the_fetcher_reads_at_start() -> None:
    async def build() -> Any:
        return aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")

    consumer = asyncio.run(build())
    assert bound_fetch_wait(consumer, 7)._fetch_max_wait_ms == 7


def test_a_renamed_aiokafka_attribute_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="_fetch_max_wait_ms"):
        bound_fetch_wait(SimpleNamespace(_fetch_min_bytes=1), 50)


def test_the_wait_is_bounded_and_defaults_far_below_fausts() -> None:
    assert KafkaSettings().fetch_max_wait_ms == 50
    for bad in (0, 60_000):
        with pytest.raises(ValueError):
            KafkaSettings(fetch_max_wait_ms=bad)


def test_a_vigil_worker_consumer_is_built_with_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_KAFKA__FETCH_MAX_WAIT_MS", "25")
    get_settings.cache_clear()
    try:

        async def build() -> Any:
            app = BoundedWaitApp("vigil-transport-test", broker="kafka://127.0.0.1:1", autodiscover=False)
            assert isinstance(app.transport, BoundedWaitTransport)
            return app.consumer._thread._create_worker_consumer(app.transport)

        consumer = asyncio.run(build())
    finally:
        get_settings.cache_clear()
    assert consumer._fetch_max_wait_ms == 25
