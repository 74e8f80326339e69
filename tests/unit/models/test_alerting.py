import json
from datetime import UTC, datetime, timedelta

from vigil.models.alerting import AlertPolicy, PatientAlertState, escalation_round, on_ack, on_score
from vigil.schemas.alerts import AlertAck
from vigil.schemas.scores import FeatureContribution, ModelScore, RiskScore, RuleScore

T0 = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = AlertPolicy(exit_ratio=0.8, suppress_s=6 * 3600, escalate_after_s=1800)


def score(
    hour: int, news2: int, band: str = "low", single3: bool = False, prob: float | None = None, wall_min: float = 0.0
) -> RiskScore:
    rule = RuleScore(
        name="NEWS2", total=news2, parameters={"respiration_rate": news2}, band=band, single_parameter_3=single3
    )
    models = []
    if prob is not None:
        models = [
            ModelScore(
                model="combined",
                version="t",
                probability=prob,
                threshold=0.5,
                positive=prob >= 0.5,
                top_features=[FeatureContribution(feature="HR_mean", value=120, contribution=0.3)],
            )
        ]
    return RiskScore(
        score_id=f"s{hour}",
        patient_id="p1",
        hour=hour,
        scored_at=T0 + timedelta(minutes=wall_min),
        observed_at=T0 + timedelta(hours=hour),
        event_ids=[f"e{hour}"],
        news2=rule,
        qsofa=RuleScore(name="qSOFA", total=0, parameters={}),
        sirs=RuleScore(name="SIRS", total=0, parameters={}),
        models=models,
    )


def test_band_change_opens_one_alert_not_one_per_event() -> None:
    state = PatientAlertState()
    assert on_score(state, score(0, 2), POLICY) == []
    opened = on_score(state, score(1, 5, "medium"), POLICY)
    assert [a.state for a in opened] == ["open"] and opened[0].severity == "medium"
    assert opened[0].explanation.rule_breakdown == {"respiration_rate": 5}
    # the same band again (every new event re-scores the patient) publishes nothing
    assert on_score(state, score(1, 5, "medium"), POLICY) == []
    assert on_score(state, score(2, 6, "medium"), POLICY) == []


def test_rise_of_a_band_escalates_once() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 5, "medium"), POLICY)
    out = on_score(state, score(1, 8, "high"), POLICY)
    assert [(a.state, a.severity) for a in out] == [("escalated", "high")]
    assert on_score(state, score(2, 9, "high"), POLICY) == []


def test_single_parameter_3_opens_low_medium() -> None:
    state = PatientAlertState()
    out = on_score(state, score(0, 3, "low-medium", single3=True), POLICY)
    assert out[0].severity == "low-medium" and out[0].trigger == "news2_single_parameter_3"


def test_hysteresis_model_enters_at_threshold_leaves_below_exit() -> None:
    state = PatientAlertState()
    assert on_score(state, score(0, 1, prob=0.45), POLICY) == []
    out = on_score(state, score(1, 1, prob=0.55), POLICY)
    assert out[0].state == "open" and out[0].trigger == "model:combined"
    assert out[0].explanation.top_features[0].feature == "HR_mean"
    # hovering just under the threshold (above threshold * exit_ratio) keeps the alert quiet
    assert on_score(state, score(2, 1, prob=0.45), POLICY) == []
    assert on_score(state, score(3, 1, prob=0.52), POLICY) == []
    resolved = on_score(state, score(4, 1, prob=0.30), POLICY)
    assert [a.state for a in resolved] == ["resolved"]


def test_suppression_window_after_resolution() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 5, "medium"), POLICY)
    on_score(state, score(1, 2), POLICY)  # resolves
    assert state.active is None
    assert on_score(state, score(2, 5, "medium"), POLICY) == []  # same level within 6 h: suppressed
    assert [a.state for a in on_score(state, score(3, 7, "high"), POLICY)] == ["open"]  # higher: opens
    state2 = PatientAlertState()
    on_score(state2, score(0, 5, "medium"), POLICY)
    on_score(state2, score(1, 2), POLICY)
    assert [a.state for a in on_score(state2, score(8, 5, "medium"), POLICY)] == ["open"]  # after 6 h


def test_unacknowledged_alert_escalates_after_time() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 5, "medium", wall_min=0), POLICY)
    assert on_score(state, score(0, 5, "medium", wall_min=10), POLICY) == []
    out = on_score(state, score(0, 5, "medium", wall_min=31), POLICY)
    assert [a.state for a in out] == ["escalated"] and "not acknowledged" in out[0].reason


def test_a_damaged_state_is_skipped_and_the_other_patients_escalate() -> None:
    opened = PatientAlertState()
    on_score(opened, score(0, 5, "medium", wall_min=0), POLICY)
    quiet = PatientAlertState()
    blobs = {
        "k-open": opened.to_bytes(),
        "k-damaged": b'{"active": "nonsense',
        "k-quiet": quiet.to_bytes(),
        "k-gone": None,
    }
    now_s = T0.timestamp() + 31 * 60
    done = escalation_round(blobs, now_s, POLICY)
    assert done.unreadable == ["k-damaged"]
    assert [a.state for a in done.alerts] == ["escalated"] and list(done.changed) == ["k-open"]
    assert done.changed["k-open"].active is not None and done.changed["k-open"].active.state == "escalated"


def test_the_timer_looks_only_at_its_partitions_and_two_passes_are_one_transition() -> None:
    """A worker's timer escalates only the patients of the partitions it holds (their answers and
    scores are applied there, under its lock); a state written before partitions were stored is any
    worker's. Two passes over the same stored state, seconds apart (two workers during a rebalance, a
    pass killed before its write), give one transition id, and the escalation names the ward."""
    states = {}
    for key, partition in (("k-mine", 3), ("k-theirs", 5), ("k-old", None)):
        state = PatientAlertState(partition=partition)
        on_score(state, score(0, 5, "medium", wall_min=0).model_copy(update={"ward": "ICU-1"}), POLICY)
        states[key] = state.to_bytes()
    now_s = T0.timestamp() + 31 * 60
    done = escalation_round(states, now_s, POLICY, owned={3})
    assert sorted(done.changed) == ["k-mine", "k-old"]
    assert done.read == {k: states[k] for k in ("k-mine", "k-old")}  # what the write compares with
    assert {a.ward for a in done.alerts} == {"ICU-1"}
    later = escalation_round(states, now_s + 20, POLICY, owned={3})
    assert [a.transition_id for a in later.alerts] == [a.transition_id for a in done.alerts]
    assert [a.at for a in later.alerts] != [a.at for a in done.alerts]
    assert sorted(escalation_round(states, now_s, POLICY).changed) == ["k-mine", "k-old", "k-theirs"]
    assert list(escalation_round(states, now_s, POLICY, owned=set()).changed) == ["k-old"]


def test_an_alert_opened_again_after_its_resolution_has_its_own_id() -> None:
    """Resolved, then opened again by a late result of the same hour (scored as of the hour's newest
    measurement): the new alert had the resolved one's id, and that answer, sent again, resolved it."""
    state = PatientAlertState()
    (first,) = on_score(state, score(3, 7, "high"), POLICY)
    ack = AlertAck(alert_id=first.alert_id, patient_id="p1", action="resolve", by="dr.k", at=T0)
    on_ack(state, ack)
    worse = score(3, 10, "high").model_copy(update={"score_id": "s3-late"})
    (again,) = on_score(state, worse, POLICY)
    assert again.state == "open" and again.alert_id != first.alert_id
    assert on_ack(state, ack) == [] and state.active is not None  # the old answer leaves the new alert


def test_ack_then_resolve_by_clinician() -> None:
    state = PatientAlertState()
    alert = on_score(state, score(0, 7, "high"), POLICY)[0]
    ack = AlertAck(alert_id=alert.alert_id, patient_id="p1", action="acknowledge", by="dr.k", at=T0)
    out = on_ack(state, ack)
    assert out[0].state == "acknowledged" and out[0].by == "dr.k"
    assert on_ack(state, ack) == []  # duplicate ack: no second transition
    # acknowledged alerts do not escalate on time
    assert on_score(state, score(0, 7, "high", wall_min=60), POLICY) == []
    out = on_ack(state, ack.model_copy(update={"action": "resolve"}))
    assert out[0].state == "resolved" and state.active is None


def test_ack_for_unknown_alert_is_ignored() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 7, "high"), POLICY)
    assert on_ack(state, AlertAck(alert_id="nope", patient_id="p1", action="acknowledge", by="x", at=T0)) == []


def test_state_round_trips_through_bytes() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 7, "high", prob=0.9), POLICY)
    back = PatientAlertState.from_bytes(state.to_bytes())
    assert back == state


def test_transition_ids_are_unique_and_stable() -> None:
    s1, s2 = PatientAlertState(), PatientAlertState()
    a1 = on_score(s1, score(0, 7, "high"), POLICY)[0]
    a2 = on_score(s2, score(0, 7, "high"), POLICY)[0]
    assert a1.alert_id == a2.alert_id and a1.transition_id == a2.transition_id  # replay-safe


def scored(hour: int, total: int, band: str, prob: float | None = None, **vitals: float) -> RiskScore:
    s = score(hour, total, band, prob=prob)
    parameters = {"respiration_rate": 3, "spo2": 2, "pulse": max(0, total - 5)}
    news2 = s.news2.model_copy(update={"parameters": parameters, "missing": ["consciousness"]})
    return s.model_copy(update={"news2": news2, "vitals": {"Resp": 30.0, "O2Sat": 91.0, "HR": 112.0, **vitals}})


def test_reason_is_in_clinical_words_with_risk_in_percent() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, scored(0, 7, "high", prob=0.06), POLICY)
    assert opened.reason.startswith("NEWS2 high: NEWS2 7 (high): RR 30 +3, SpO2 91 +2, HR 112 +2")
    assert "model risk 6.0% (alert at 50%)" in opened.reason
    assert "not recorded: consciousness" in opened.reason
    assert "news2_band" not in opened.reason and "respiration_rate" not in opened.reason


def test_alert_carries_its_opening_values_beside_the_current_ones() -> None:
    state = PatientAlertState()
    on_score(state, scored(0, 7, "high", prob=0.6), POLICY)
    (worse,) = on_score(state, scored(1, 9, "high", prob=0.65), POLICY)
    assert (worse.opened_news2, worse.opened_risk, worse.opened_at) == (7, 0.6, T0)
    assert worse.news2.total == 9 and worse.risk == 0.65 and worse.threshold == 0.5
    assert worse.vitals["Resp"] == 30.0


def test_worse_after_escalation_escalates_again_by_a_documented_step() -> None:
    state = PatientAlertState()
    on_score(state, scored(0, 5, "medium"), POLICY)
    (band,) = on_score(state, scored(1, 7, "high"), POLICY)
    assert band.state == "escalated" and band.reason.startswith("risk rose to high")
    assert on_score(state, scored(2, 8, "high"), POLICY) == []  # +1: below the step
    (again,) = on_score(state, scored(3, 9, "high"), POLICY)  # +2 over the last raise
    assert again.state == "escalated" and "worse since the alert was last raised (NEWS2 7 → 9)" in again.reason
    assert again.transition_id != band.transition_id
    assert on_score(state, scored(4, 10, "high"), POLICY) == []  # measured from the new raise (9)
    (third,) = on_score(state, scored(5, 13, "high"), POLICY)
    assert "NEWS2 9 → 13" in third.reason


def test_worse_model_risk_re_escalates_an_acknowledged_alert() -> None:
    state = PatientAlertState()
    opened = on_score(state, scored(0, 7, "high", prob=0.55), POLICY)[0]
    on_ack(state, AlertAck(alert_id=opened.alert_id, patient_id="p1", action="acknowledge", by="ann", at=T0))
    assert on_score(state, scored(1, 7, "high", prob=0.60), POLICY) == []
    (again,) = on_score(state, scored(2, 7, "high", prob=0.66), POLICY)
    assert again.state == "escalated" and "model risk 55% → 66%" in again.reason


def test_snooze_needs_a_reason_and_opens_again_when_it_ends() -> None:
    import pytest
    from pydantic import ValidationError

    from vigil.models.alerting import check_escalation, needs_timer

    with pytest.raises(ValidationError):
        AlertAck(alert_id="a", patient_id="p1", action="snooze", by="ann", at=T0, snooze_min=30)
    state = PatientAlertState()
    opened = on_score(state, scored(0, 7, "high"), POLICY)[0]
    snooze = AlertAck(
        alert_id=opened.alert_id, patient_id="p1", action="snooze", by="ann", at=T0, snooze_min=30, note="lab pending"
    )
    (snoozed,) = on_ack(state, snooze)
    assert snoozed.state == "acknowledged" and snoozed.note == "lab pending"
    assert snoozed.snoozed_until == T0 + timedelta(minutes=30) and needs_timer(state)
    assert on_ack(state, snooze) == []  # redelivered
    assert check_escalation(state, (T0 + timedelta(minutes=29)).timestamp(), POLICY) == []
    (back,) = check_escalation(state, (T0 + timedelta(minutes=31)).timestamp(), POLICY)
    assert back.state == "open" and "snooze ended (lab pending)" in back.reason


def test_old_state_blobs_still_load() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 7, "high"), POLICY)
    raw = json.loads(state.to_bytes())
    for key in ("opened_news2", "raised_news2", "snoozed_until_s"):
        raw["active"].pop(key)
    back = PatientAlertState.from_bytes(json.dumps(raw).encode())
    assert back.active is not None and back.active.raised_news2 is None
