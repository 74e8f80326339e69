"""The published risk score of one patient-hour (``models.scoring.build_risk_score``): what a final
score reads, and its id."""

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.models.offline import rule_scores
from vigil.models.scoring import PendingUpdate, build_risk_score
from vigil.models.window import PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def hr(at: datetime, value: float, pid: str = "MRN1", event_id: str | None = None) -> PatientEvent:
    extra = {"event_id": event_id} if event_id else {}
    return PatientEvent(patient_id=pid, observed_at=at, kind="vital", code="HR", value=value, **extra)


def applied(window: PatientWindow, events: list[PatientEvent]) -> PendingUpdate:
    update = PendingUpdate(events[0].patient_id)
    for e in events:
        if window.apply(e):
            update.add(e.event_id, e.observed_at, None, "enc", None)
    return update


def test_the_final_scores_of_a_backlog_equal_the_offline_rule_scores_of_every_hour() -> None:
    # one batch moves the patient on by 60 hours: hours 0-11 leave the window before their final
    # scores are built, which read NEWS2 0 with every vital sign missing (a patient at NEWS2 14)
    window, matrix, events = PatientWindow(), np.full((60, len(DYNAMIC_CODES)), np.nan, np.float32), []
    for h in range(60):
        bad = h < 10
        vitals: dict[str, float] = {"HR": 140 if bad else 80, "Resp": 30 if bad else 16, "O2Sat": 88 if bad else 97}
        vitals |= {"SBP": 85 if bad else 120, "Temp": 39.5 if bad else 37.0}
        for k, (code, value) in enumerate(vitals.items()):
            at = T0 + timedelta(hours=h, minutes=5 + k)
            events.append(PatientEvent(patient_id="p", observed_at=at, kind="vital", code=code, value=value))
            matrix[h, DYNAMIC_CODES.index(code)] = value
    update = applied(window, events)
    assert window.evicted
    offline = rule_scores(matrix)
    for h in range(59):
        final = build_risk_score(window, update, [], NOW, h, "final")
        assert final.news2.total == offline["NEWS2"][h], h
        assert (final.qsofa.total, final.sirs.total) == (offline["qSOFA"][h], offline["SIRS"][h]), h
        assert final.vitals["HR"] == matrix[h, DYNAMIC_CODES.index("HR")], h
        assert final.observed_at == T0 + timedelta(hours=h, minutes=9), h
    assert offline["NEWS2"][0] >= 12


def stay(start: datetime, value: float) -> tuple[PatientWindow, PendingUpdate]:
    window = PatientWindow()
    return window, applied(window, [hr(start + timedelta(hours=h, minutes=1), value) for h in range(3)])


def test_final_scores_of_two_stays_have_their_own_ids() -> None:
    # hour 1 of a stay and hour 1 of a readmission two months later had one id: a consumer that
    # deduplicates on it (docs/integration.md) dropped the second stay's score
    first, second = stay(T0, 80), stay(T0 + timedelta(days=60), 150)
    a = build_risk_score(*first, [], NOW, 1, "final")
    b = build_risk_score(*second, [], NOW, 1, "final")
    assert a.hour == b.hour == 1 and a.vitals["HR"] != b.vitals["HR"]
    assert a.score_id != b.score_id
    pa, pb = build_risk_score(*first, [], NOW), build_risk_score(*second, [], NOW)
    assert pa.score_id != a.score_id and pb.score_id != b.score_id and pa.score_id != pb.score_id


def test_a_batch_delivered_again_gives_the_same_ids() -> None:
    saved = PatientWindow()
    applied(saved, [hr(T0 + timedelta(minutes=5), 80, event_id="e0")])
    blob = saved.to_bytes()
    batch = [hr(T0 + timedelta(hours=h, minutes=7), 90 + h, event_id=f"e{h}") for h in (1, 2)]
    ids = []
    for _ in range(2):  # the worker died before it committed: the batch again, on the window as saved
        window = PatientWindow.from_bytes(blob)
        update = applied(window, batch)
        scores = [build_risk_score(window, update, [], NOW, h, "final") for h in (0, 1)]
        ids.append([s.score_id for s in [*scores, build_risk_score(window, update, [], NOW)]])
    assert ids[0] == ids[1] and len(set(ids[0])) == 3


def test_a_final_score_of_a_clock_hour_keeps_its_id_when_the_stay_is_re_anchored() -> None:
    # an observation older than the stay's first moves every hour's index: the hour finalized again
    # is the same clock hour, and replaces the earlier final (docs/integration.md)
    window, update = stay(T0, 80)
    before = build_risk_score(window, update, [], NOW, 1, "final")
    update = applied(window, [hr(T0 - timedelta(hours=2), 85)])
    after = build_risk_score(window, update, [], NOW, 3, "final")
    assert (before.hour, after.hour) == (1, 3) and after.observed_at == before.observed_at
    assert after.score_id == before.score_id
    assert build_risk_score(window, update, [], NOW, 1, "final").score_id != before.score_id


def test_a_batch_of_only_a_late_result_is_scored_as_of_the_hours_newest_measurement() -> None:
    """A provisional score was as of its batch's newest event: a batch holding only a lab drawn hours
    before made the current hour's score hours old (the ward card, the care score's "as of")."""
    window = PatientWindow()
    applied(window, [hr(T0 + timedelta(hours=h, minutes=54), 80.0 + h) for h in range(21)])
    late = PatientEvent(
        patient_id="MRN1", observed_at=T0 + timedelta(hours=11, minutes=30), kind="lab", code="WBC", value=12.0
    )
    score = build_risk_score(window, applied(window, [late]), [], NOW)
    assert score.hour == 20 and score.observed_at == T0 + timedelta(hours=20, minutes=54)
    later = hr(T0 + timedelta(hours=20, minutes=58), 101.0)  # the batch's own newest event, when newer
    assert build_risk_score(window, applied(window, [later]), [], NOW).observed_at == later.observed_at
