"""kill -9 a worker while patients are discharged and admitted again: nothing is lost, each stay
ends once, and each readmission is scored from its own hour 0 with nothing of the stay before; and
while discharges entered in error are cancelled: each stay resumes once, whole."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import PacedProducer, alert_duplicates, event_payloads, report, ward_stream
from vigil.infra.redis import alert_key, carry_key, held_keys, unpack_state, window_key
from vigil.models.alerting import PatientAlertState
from vigil.models.window import PatientWindow
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.reliability

NORMAL = (("HR", "/min", 80.0), ("Resp", "/min", 16.0), ("SBP", "mm[Hg]", 122.0), ("O2Sat", "%", 97.0))


def readmission(pid: str, start: datetime, hours: int) -> list[PatientEvent]:
    return [
        PatientEvent(
            patient_id=pid,
            encounter="enc-2",
            observed_at=start + timedelta(hours=hour, minutes=15),
            kind="vital",
            code=code,
            value=value,
            unit=unit,
            source="reliability",
        )
        for hour in range(hours)
        for code, unit, value in NORMAL
    ]


def adt(pid: str, code: str, at: datetime, encounter: str | None = None) -> PatientEvent:
    """A ``discharge`` or ``cancel_discharge`` from the ADT feed."""
    return PatientEvent(
        patient_id=pid, encounter=encounter, observed_at=at, kind="encounter", code=code, value=1, source="adt"
    )


def kill_and_take_over(
    worker: subprocess.Popen, restart: Callable[[], object], r: Any, ids: set[str], stream: PacedProducer
) -> tuple[float, Callable[[], set[str]]]:
    """kill -9 the worker, start the next (the supervisor's restart), wait until every event is
    scored, named by a stay's record or dead-lettered; (seconds from the kill, what is accounted)."""
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    killed_at = time.monotonic()
    restart()

    def accounted() -> set[str]:
        rb = r.snapshot()
        return ids & (rb.scored_ids | rb.ended_ids | rb.dead_ids)

    assert wait_for(lambda: accounted() == ids, timeout=180), "events lost after kill -9"
    recovered_s = time.monotonic() - killed_at
    stream.done.wait(timeout=30)
    time.sleep(2)  # late copies of replayed records
    return recovered_s, accounted


def test_kill_9_amid_discharges_and_readmissions_loses_nothing(
    stack, started_worker, spawn, producer, reader, redis_admin, results_dir
) -> None:
    worker = started_worker("stays-a")
    r = reader(keep_scores=True)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=16)
    first = ward_stream("stays", patients=60, hours=6, start=base)  # every third patient deteriorates
    patients = sorted({e.patient_id for e in first})
    leaving = patients[::2]
    ended_at = base + timedelta(hours=6, minutes=55)
    discharges = [adt(p, "discharge", ended_at, encounter="enc-1") for p in leaving]
    back = base + timedelta(hours=9)
    second = [e for p in leaving for e in readmission(p, back, hours=4)]
    events = first + discharges + sorted(second, key=lambda e: e.observed_at)
    ids = {e.event_id for e in events}
    discharge_ids = {e.event_id for e in discharges}
    stream = PacedProducer(producer, event_payloads(events), rate_per_s=400).start()

    # kill -9 once the first stays have ended: discharges in flight, states half written
    assert wait_for(lambda: discharge_ids & r.snapshot().ended_ids, timeout=120), "no stay ended"
    recovered_s, accounted = kill_and_take_over(worker, lambda: spawn("stays-b"), r, ids, stream)
    rb = r.snapshot()

    # each stay ended once (copies of the record share the discharge's event id)
    mine = [s for s in rb.stay_records if s["patient_id"] in set(leaving)]
    ended_once = {s["patient_id"] for s in mine}
    # every readmission scored from its own hour 0, as the second encounter
    second_hours = {
        p: sorted(h for (q, h), s in rb.last_scores.items() if q == p and s["encounter"] == "enc-2") for p in leaving
    }
    restarted_at_zero = sum(1 for hours in second_hours.values() if hours == [0, 1, 2, 3])
    # Redis: the next stay's window anchored at the readmission, its carry present, no first-stay alert
    windows = [PatientWindow.from_bytes(unpack_state(b)) for b in redis_admin.mget([window_key(p) for p in leaving])]
    anchored = sum(1 for w in windows if w.anchor_s == int(back.timestamp()) and w.ended_s is None)
    carries = sum(1 for b in redis_admin.mget([carry_key(p) for p in leaving]) if b)
    first_alerts = {
        a["alert_id"]
        for a in rb.alert_records
        if a["patient_id"] in set(leaving) and datetime.fromisoformat(a["at"]) < back
    }
    states = [PatientAlertState.from_bytes(b) for b in redis_admin.mget([alert_key(p) for p in leaving])]
    stale_alerts = sum(1 for s in states if s.active is not None and s.active.alert_id in first_alerts)
    resolved_by_discharge = sum(
        1 for a in rb.alert_records if a["patient_id"] in set(leaving) and "discharged" in a["reason"]
    )
    counts = {
        "events": len(ids),
        "discharges": len(discharges),
        "lost": len(ids - accounted()),
        "duplicate_score_mentions": rb.duplicates(ids),  # > 0: the restart replayed scored events
        "dead_letters_of_these_patients": len(ids & rb.dead_ids),
        "stays_ended": len(ended_once),
        "stay_records_with_copies": len(mine),
        "distinct_stay_records": len({s["event_id"] for s in mine}),
        "readmissions_scored_from_hour_0": restarted_at_zero,
        "windows_of_the_next_stay": anchored,
        "carries_of_the_next_stay": carries,
        "first_stay_alerts_still_active": stale_alerts,
        "alerts_resolved_by_discharge": resolved_by_discharge,
        "recovered_all_accounted_s": round(recovered_s, 1),
        **alert_duplicates(rb.alert_records, set(patients)),
    }
    report(results_dir, "stays_crash", counts)
    assert counts["lost"] == 0 and counts["dead_letters_of_these_patients"] == 0
    assert counts["stays_ended"] == counts["distinct_stay_records"] == len(leaving)
    assert restarted_at_zero == anchored == carries == len(leaving)
    assert stale_alerts == 0 and resolved_by_discharge >= 1
    assert counts["duplicate_alerts_after_dedup"] == 0


def test_kill_9_amid_cancelled_discharges_resumes_each_stay_whole(
    stack, started_worker, spawn, producer, reader, redis_admin, results_dir
) -> None:
    """Half the ward is discharged in error; the monitors send on (a next stay, from hour 0); ADT^A13
    cancels each discharge two hours later. kill -9 as the first stay resumes: every stay resumes
    once, whole (hours 0..10 in one window from the first admission), and nothing is lost."""
    worker = started_worker("resume-a")
    r = reader(keep_scores=True)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=13)
    monitors = ward_stream("resume", patients=60, hours=11, start=base)  # the monitors never stop
    patients = sorted({e.patient_id for e in monitors})
    in_error = patients[::2]

    discharges = [adt(p, "discharge", base + timedelta(hours=6, minutes=55)) for p in in_error]
    cancels = [adt(p, "cancel_discharge", base + timedelta(hours=8, minutes=55)) for p in in_error]
    events = sorted(monitors + discharges + cancels, key=lambda e: e.observed_at)
    ids = {e.event_id for e in events}
    stream = PacedProducer(producer, event_payloads(events), rate_per_s=400).start()

    def resumed() -> list[dict]:
        return [s for s in r.snapshot().stay_records if s.get("record") == "stay_resumed"]

    assert wait_for(lambda: resumed(), timeout=180), "no stay resumed"
    recovered_s, accounted = kill_and_take_over(worker, lambda: spawn("resume-b"), r, ids, stream)
    rb = r.snapshot()
    mine = set(in_error)
    windows = [PatientWindow.from_bytes(unpack_state(b)) for b in redis_admin.mget([window_key(p) for p in in_error])]
    whole = sum(
        1
        for w in windows
        if w.ended_s is None and w.anchor_s == int(base.timestamp()) and sorted(w.rows) == list(range(11))
    )
    held_left = sum(1 for p in in_error for b in redis_admin.mget(list(held_keys(p))) if b)
    last_hour = {p: max(h for (q, h), _ in rb.last_scores.items() if q == p) for p in in_error}
    counts = {
        "events": len(ids),
        "discharges_in_error": len(discharges),
        "lost": len(ids - accounted()),
        "duplicate_score_mentions": rb.duplicates(ids),
        "dead_letters_of_these_patients": len(ids & rb.dead_ids),
        "stays_ended": len(
            {s["event_id"] for s in rb.stay_records if s["patient_id"] in mine} & {e.event_id for e in discharges}
        ),
        "stays_resumed": len({s["event_id"] for s in resumed() if s["patient_id"] in mine}),
        "resumed_records_with_copies": len([s for s in resumed() if s["patient_id"] in mine]),
        "windows_whole_from_first_admission": whole,
        "held_keys_left": held_left,
        "scored_on_to_hour_10": sum(1 for h in last_hour.values() if h == 10),
        "recovered_all_accounted_s": round(recovered_s, 1),
        **alert_duplicates(rb.alert_records, set(patients)),
    }
    report(results_dir, "stays_resume_crash", counts)
    assert counts["lost"] == 0 and counts["dead_letters_of_these_patients"] == 0
    assert counts["stays_ended"] == counts["stays_resumed"] == len(in_error)
    assert whole == counts["scored_on_to_hour_10"] == len(in_error) and held_left == 0
    assert counts["duplicate_alerts_after_dedup"] == 0
