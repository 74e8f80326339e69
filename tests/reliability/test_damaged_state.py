"""A damaged alert state in Redis (a value that does not parse: a bad restore, a foreign write) is
skipped by the escalation timer, named once in the log, and every other patient's alert still
escalates; the worker stays up. Before, the timer raised into Faust, which crashes the whole worker
for it: every worker of the group, every 30 s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from tests.reliability.helpers import event_payloads, ward_stream
from vigil.infra.redis import OPEN_ALERTS_KEY, alert_key
from vigil.schemas import topics

pytestmark = pytest.mark.reliability


def test_a_damaged_alert_state_stops_no_escalation_and_no_worker(
    stack, stack_home, started_worker, producer, reader, redis_admin
) -> None:
    damaged = alert_key(unique_patient("damaged"))
    before = set((stack_home / "logs").glob("escalate-*.log"))
    worker = started_worker("escalate", {"VIGIL_ALERTS__ESCALATE_AFTER_S": "10"})
    logs = sorted(set((stack_home / "logs").glob("escalate-*.log")) - before)
    r = reader()
    try:
        redis_admin.set(damaged, b'{"patient_id": "x", "active": {"state": ')
        redis_admin.sadd(OPEN_ALERTS_KEY, damaged)
        events = ward_stream("escalate", patients=1, hours=8, deteriorate_every=1)  # NEWS2 >= 7 by the end
        pid = events[0].patient_id
        for key, value in event_payloads(events):
            producer.send(topics.EVENTS_RAW, key=key, value=value)
        producer.flush()

        def states() -> list[str]:
            return [a["state"] for a in r.snapshot().alert_records if a["patient_id"] == pid]

        assert wait_for(lambda: "open" in states(), timeout=60), "the deteriorating patient raised no alert"
        # nobody acknowledges it: the timer (every 30 s) escalates it 10 s after it opened
        assert wait_for(lambda: "escalated" in states(), timeout=75), "the escalation timer stopped"
        assert worker.poll() is None, "the worker ended"
        named = [
            json.loads(line)
            for log in logs
            for line in Path(log).read_text(errors="replace").splitlines()
            if '"alert_state.unreadable"' in line
        ]
        assert [n["key"] for n in named] == [damaged]  # once, however many passes
    finally:
        redis_admin.srem(OPEN_ALERTS_KEY, damaged)
        redis_admin.delete(damaged)
