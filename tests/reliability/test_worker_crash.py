"""kill -9 a worker mid-stream; a restarted worker takes over from the committed offsets."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import PacedProducer, alert_duplicates, event_payloads, report, ward_stream
from vigil.infra.redis import alert_key, unpack_state, window_key
from vigil.models.alerting import PatientAlertState
from vigil.models.window import VAR_INDEX, PatientWindow

pytestmark = pytest.mark.reliability


def test_kill_9_mid_stream_loses_nothing(
    stack, started_worker, spawn, producer, reader, redis_admin, results_dir
) -> None:
    worker = started_worker("crash-a")
    r = reader()
    events = ward_stream("crash", patients=80, hours=10)  # 4,000 events, a third deteriorating
    ids = {e.event_id for e in events}
    patients = {e.patient_id for e in events}
    stream = PacedProducer(producer, event_payloads(events), rate_per_s=500).start()

    # kill -9 once the worker is well into the stream (state written, offsets half committed)
    assert wait_for(lambda: len(ids & r.snapshot().scored_ids) >= len(ids) // 3, timeout=90)
    scored_at_kill = len(ids & r.snapshot().scored_ids)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    killed_at = time.monotonic()
    started_worker_again = spawn("crash-b")  # the supervisor's restart

    assert wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=150), "events lost after kill -9"
    recovered_s = time.monotonic() - killed_at
    stream.done.wait(timeout=30)
    time.sleep(2)  # late copies of replayed scores and alerts
    rb = r.snapshot()
    lost = len(ids - rb.scored_ids)
    dupes = rb.duplicates(ids)
    alerts = alert_duplicates(rb.alert_records, patients)

    # exactly one alert state per patient in Redis, consistent with what was published
    published_ids = {a["alert_id"] for a in rb.alert_records if a["patient_id"] in patients}
    blobs = redis_admin.mget([alert_key(p) for p in sorted(patients)])
    states = [PatientAlertState.from_bytes(b) for b in blobs]
    active_ids = {s.active.alert_id for s in states if s.active is not None}
    unpublished_active = active_ids - published_ids

    # every accepted event is in its patient's Redis window, once (one cell per hour and variable)
    windows = {
        p: PatientWindow.from_bytes(unpack_state(b))
        for p, b in zip(sorted(patients), redis_admin.mget([window_key(p) for p in sorted(patients)]), strict=True)
    }
    missing_in_state = 0
    for e in events:
        w = windows[e.patient_id]
        hour, _second = w.hour_of(e.observed_at)
        cell = w.rows.get(hour, {}).get(VAR_INDEX[e.code])
        if cell is None or abs(cell[0] - e.value) > 1e-3:
            missing_in_state += 1

    counts = {
        "missing_in_redis_state": missing_in_state,
        "events": len(ids),
        "scored_before_kill": scored_at_kill,
        "lost": lost,
        "duplicate_score_mentions": dupes,
        "events_mentioned_twice_or_more": sum(1 for i in ids if rb.score_event_counts[i] > 1),
        "recovered_all_scored_s": round(recovered_s, 1),
        "patients_with_alert_state": sum(1 for b in blobs if b),
        "active_alerts_in_redis": len(active_ids),
        "active_alerts_not_published": len(unpublished_active),
        **alerts,
    }
    report(results_dir, "worker_crash", counts)
    assert lost == 0
    assert missing_in_state == 0
    assert alerts["duplicate_alerts_after_dedup"] == 0
    assert alerts["alerts_opened"] >= 1, "deteriorating patients must raise alerts"
    assert unpublished_active == set(), "an alert held open in Redis was never published"
    assert started_worker_again.poll() is None
