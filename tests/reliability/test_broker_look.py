"""vigil_broker_look_age_seconds on a real broker outage: it grows while the broker is stopped, with
no event flowing, and falls back once the broker answers again; the worker lives through it. (What
VigilBrokerUnreachable makes of it is promtool's test, tests/unit/infra/test_alert_rules_promtool.py.)"""

from __future__ import annotations

import time
from urllib.request import urlopen

import pytest

from tests.conftest import wait_for
from vigil.infra.ports import free_port

pytestmark = pytest.mark.reliability


def look_age(port: int) -> float | None:
    try:
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("vigil_broker_look_age_seconds "):
            return float(line.split()[1])
    return None


def fresh(port: int) -> bool:
    age = look_age(port)
    return age is not None and age < 6


def test_the_look_age_grows_while_the_broker_is_away(stack, stack_settings, started_worker, results_dir) -> None:
    from tests.reliability.helpers import report
    from vigil.infra.stack.kafka import start_kafka, stop_kafka

    port = free_port()
    worker = started_worker("look", {"VIGIL_METRICS_PORT": str(port)})
    assert wait_for(lambda: fresh(port), timeout=20), look_age(port)  # a look every 5 s
    stop_kafka(stack_settings)
    stopped_at = time.monotonic()
    try:
        assert wait_for(lambda: (look_age(port) or 0) > 20, timeout=40), look_age(port)
        grown_s = time.monotonic() - stopped_at
    finally:
        start_kafka(stack_settings)
    started_at = time.monotonic()
    assert wait_for(lambda: fresh(port), timeout=90), look_age(port)
    back_s = time.monotonic() - started_at
    assert worker.poll() is None, "the worker did not live through the outage"
    report(
        results_dir,
        "broker_look",
        {"stopped_to_age_over_20_s": round(grown_s, 1), "started_to_fresh_s": round(back_s, 1)},
    )
