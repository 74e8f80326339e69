"""A damaged alert state in Redis (a value that does not parse: a bad restore, a foreign write) is
skipped by the escalation timer, named once in the log, and every other patient's alert still
escalates; the worker stays up. Before, the timer raised into Faust, which crashes the whole worker
for it: every worker of the group, every 30 s."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from vigil.infra.redis import OPEN_ALERTS_KEY, alert_key
from vigil.models.alerting import ActiveAlert, PatientAlertState

pytestmark = pytest.mark.reliability


def test_a_damaged_alert_state_stops_no_escalation_and_no_worker(
    stack, stack_home, started_worker, reader, redis_admin
) -> None:
    damaged, pid = alert_key(unique_patient("damaged")), unique_patient("escalate")
    # an alert nobody acknowledged, open for a minute: the timer's next pass escalates it (an alert
    # raised through the stream may escalate first by the rise of its band, which the timer leaves be)
    waiting = PatientAlertState(
        patient_id=pid,
        ward="ICU-T",
        active=ActiveAlert("a-damaged-test", "open", "high", "news2", time.time() - 3600, 0, time.time() - 60),
    )
    before = set((stack_home / "logs").glob("escalate-*.log"))
    worker = started_worker("escalate", {"VIGIL_ALERTS__ESCALATE_AFTER_S": "10"})
    logs = sorted(set((stack_home / "logs").glob("escalate-*.log")) - before)
    r = reader()
    try:
        redis_admin.set(damaged, b'{"patient_id": "x", "active": {"state": ')
        redis_admin.set(alert_key(pid), waiting.to_bytes())
        redis_admin.sadd(OPEN_ALERTS_KEY, damaged, alert_key(pid))

        def escalated() -> bool:
            return any(
                a["patient_id"] == pid and a["state"] == "escalated" and "not acknowledged" in a["reason"]
                for a in r.snapshot().alert_records
            )

        # the timer runs every 30 s on every worker; this one's escalates after 10 s
        assert wait_for(escalated, timeout=75), "the escalation timer did not escalate the waiting alert"
        assert worker.poll() is None, "the worker ended"
        named = [
            json.loads(line)
            for log in logs
            for line in Path(log).read_text(errors="replace").splitlines()
            if '"alert_state.unreadable"' in line
        ]
        assert [n["key"] for n in named] == [damaged]  # once, however many passes
    finally:
        redis_admin.srem(OPEN_ALERTS_KEY, damaged, alert_key(pid))
        redis_admin.delete(damaged, alert_key(pid))
