"""The treatment agent's care clock over the stream (agents/treat.py): when time zero starts, when the
care score is published again, as of when it is judged, and what a plan request's dead letter says.
Redis is an in-memory store with the agent's compare-and-set; each test names the defect it holds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from vigil.agents import runtime as runtime_module
from vigil.agents import treat
from vigil.agents.runtime import Publisher
from vigil.infra.redis import care_key, window_key
from vigil.models.care import FOLLOW_UP, CareClock
from vigil.models.stays import end_stay, next_stay
from vigil.models.window import PatientWindow
from vigil.schemas import topics
from vigil.schemas.codes import CATALOGUE
from vigil.schemas.deadletter import Rejected, invalid_record
from vigil.schemas.events import PatientEvent
from vigil.schemas.scores import RiskScore, RuleScore
from vigil.schemas.treatment import TreatmentScore

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
PID = "p1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(code: str, minutes: float, value: float, kind: str | None = None) -> PatientEvent:
    return PatientEvent(
        patient_id=PID,
        observed_at=at(minutes),
        kind=kind or CATALOGUE[code][0],  # type: ignore[arg-type]
        code=code,
        value=value,
        unit=CATALOGUE[code][1],
    )


def vitals(window: PatientWindow, minutes: float, hr: float = 120, resp: float = 26, sbp: float = 85) -> None:
    for code, value in (("HR", hr), ("Resp", resp), ("SBP", sbp)):
        window.apply(event(code, minutes, value))


def score(
    minutes: float,
    *,
    news2: int = 7,
    band: str = "high",
    qsofa: bool = True,
    sirs: bool = True,
    sbp: float = 85.0,
    map_mmhg: float = 60.0,
    hour: int = 0,
) -> RiskScore:
    return RiskScore(
        score_id=f"s{minutes}",
        patient_id=PID,
        hour=hour,
        scored_at=at(minutes),
        observed_at=at(minutes),
        event_ids=[],
        news2=RuleScore(name="NEWS2", total=news2, parameters={}, band=band),  # type: ignore[arg-type]
        qsofa=RuleScore(name="qSOFA", total=2 if qsofa else 0, parameters={}, positive=qsofa),
        sirs=RuleScore(name="SIRS", total=2 if sirs else 0, parameters={}, positive=sirs),
        vitals={"SBP": sbp, "MAP": map_mmhg},
    )


def well(minutes: float, hour: int = 0) -> RiskScore:
    """A score that does not find the patient at risk: NEWS2 4, qSOFA 1 (SIRS still positive)."""
    return score(minutes, news2=4, band="low", qsofa=False, sirs=True, sbp=100, map_mmhg=70, hour=hour)


class Store:
    """The Redis keys the agent reads and writes, in memory, with its compare-and-set. ``windows``:
    the blobs the window key holds at successive reads (the scoring step writing it meanwhile)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.windows: list[bytes] = []

    async def load_blobs(self, keys: list[str]) -> list[bytes | None]:
        out = []
        for key in keys:
            if key == window_key(PID) and self.windows:
                self.blobs[key] = self.windows.pop(0)
            out.append(self.blobs.get(key))
        return out

    async def save_blobs_if_unchanged(self, items: dict[str, tuple[bytes | None, bytes]]) -> list[str]:
        moved = []
        for key, (read, blob) in items.items():
            if self.blobs.get(key) == read:
                self.blobs[key] = blob
            else:
                moved.append(key)
        return moved

    def clock(self) -> CareClock:
        return CareClock.model_validate_json(self.blobs[care_key(PID)])


class Capture(Publisher):
    def __init__(self) -> None:
        super().__init__(SimpleNamespace(get_topic_name=lambda: topics.DEADLETTER))  # type: ignore[arg-type]
        self.sent: list[tuple[str, bytes]] = []
        self.rejected: list[Rejected] = []

    async def send(self, topic: Any, key: str | bytes | None, value: bytes) -> None:
        self.sent.append((topic.get_topic_name(), value))

    async def dead_letter(self, event: Any, rejected: Rejected) -> None:  # type: ignore[override]
        self.rejected.append(rejected)

    async def flush(self) -> None:
        pass

    def scores(self) -> list[TreatmentScore]:
        return [TreatmentScore.model_validate_json(v) for t, v in self.sent if t == topics.TREATMENT_SCORES]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    store = Store()
    monkeypatch.setattr(runtime_module, "_runtime", SimpleNamespace(store=store))
    monkeypatch.setattr(treat, "WINDOW_WAIT_S", 0.2)
    return store


def put(store: Store, window: PatientWindow) -> None:
    store.blobs[window_key(PID)] = window.to_bytes()


def care(scores: list[RiskScore]) -> list[TreatmentScore]:
    publisher = Capture()
    asyncio.run(treat.care_batch(scores, publisher))
    return publisher.scores()


def status(result: TreatmentScore, name: str) -> str:
    return next(i.status for i in result.items if i.name == name)


def test_time_zero_is_the_first_at_risk_score_of_the_batch(store: Store) -> None:
    # defect 3: at risk from 10:00, antibiotics at 11:40; the batch's last score (12:10) was time zero,
    # and the antibiotics read "met"
    w = PatientWindow()
    for m in (0, 20, 45, 70, 95, 130):
        vitals(w, m)
    w.apply(event("antibiotic", 100, 1))
    put(store, w)
    (result,) = care([score(m, hour=m // 60) for m in (0, 20, 45, 70, 95, 130)])
    assert result.time_zero == T0 and store.clock().time_zero == T0
    assert status(result, "antibiotics") == "late" and result.as_of_min == 130


def test_a_batch_that_ends_not_at_risk_keeps_the_time_zero_of_its_at_risk_score(store: Store) -> None:
    # defect 3: [at risk 10:00, not at risk 10:30] started the clock at 10:30 and said "not applicable"
    w = PatientWindow()
    vitals(w, 0)
    vitals(w, 30, hr=88, resp=18, sbp=110)
    put(store, w)
    (result,) = care([score(0), well(30)])
    assert result.time_zero == T0 and result.status != "not_applicable"
    assert status(result, "news2_escalation") == "missing"  # NEWS2 7 at 10:00: due by 10:30


def test_the_care_score_is_published_again_when_an_item_falls_due(store: Store) -> None:
    # defect 2: elapsed time was not in the inputs digest; the items stayed "pending" until the hour changed
    w = PatientWindow()
    vitals(w, 5)
    put(store, w)
    care([score(5)])
    vitals(w, 61, hr=118)
    put(store, w)
    (before,) = care([score(61, hour=1)])
    assert status(before, "antibiotics") == "pending"  # due at 11:05
    vitals(w, 70, hr=117)
    put(store, w)
    (after,) = care([score(70, hour=1)])  # the same hour of the stay, the same care: due now
    assert status(after, "antibiotics") == "missing" and after.as_of_min == 65


def test_care_is_never_judged_as_of_before_it_was_judged(store: Store) -> None:
    # defect 1: a batch of a late result (drawn before time zero) judged the care as of then: "missing"
    # turned "pending" again
    w = PatientWindow()
    vitals(w, 0)
    put(store, w)
    care([score(0)])
    vitals(w, 90)
    put(store, w)
    (judged,) = care([score(90, hour=1)])
    assert status(judged, "antibiotics") == "missing" and store.clock().as_of == at(90)
    w.apply(event("WBC", -15, 14.0))
    w.apply(event("blood_culture", 80, 1))  # charted late too: the care did change
    put(store, w)
    (late,) = care([score(-15, hour=1)])
    assert late.as_of_min == 90 and status(late, "antibiotics") == "missing"
    assert status(late, "blood_cultures_before_antibiotics") == "met"  # at T+80: counted, not "after now"


def test_a_readmissions_first_score_waits_for_its_window(store: Store) -> None:
    # defect 7: the ended stay's window still in Redis made the readmission's first at-risk score
    # "of the stay before": dropped, and time zero became the next score's
    old = PatientWindow()
    old.apply(event("HR", -3000, 80))
    ended = end_stay(old, event("discharge", -2900, 1, kind="encounter"))
    new = next_stay(ended)
    vitals(new, 0)
    store.windows = [ended.to_bytes(), ended.to_bytes(), new.to_bytes()]  # written while the agent waits
    (result,) = care([score(0)])
    assert result.time_zero == T0 and store.clock().time_zero == T0


def test_an_open_clock_is_scored_after_the_patient_is_no_longer_at_risk(store: Store) -> None:
    # defect 8: below the at-risk threshold the care score was never published again, items falling due
    w = PatientWindow()
    vitals(w, 0)
    put(store, w)
    care([score(0)])
    vitals(w, 70, hr=100, resp=20, sbp=100)
    put(store, w)
    (result,) = care([well(70, hour=1)])
    assert result.time_zero == T0 and status(result, "antibiotics") == "missing"
    # bounded: once every deadline has passed (FOLLOW_UP after time zero), the clock waits silently
    later = FOLLOW_UP.total_seconds() / 60 + 30
    vitals(w, later, hr=100, resp=20, sbp=100)
    put(store, w)
    assert care([well(later, hour=int(later // 60))]) == []


def test_state_at_time_zero_stands_when_the_blood_pressure_recovers_on_its_own(store: Store) -> None:
    # defect 5: MAP/SBP, suspected sepsis and the NEWS2 band came from the latest score: a pressure
    # recovering without care took the fluid and vasopressor items away and the score rose
    w = PatientWindow()
    vitals(w, 0, sbp=82)
    w.apply(event("weight_kg", 0, 70))
    put(store, w)
    care([score(0, sbp=82, map_mmhg=58)])
    vitals(w, 200, sbp=100)
    put(store, w)
    (recovered,) = care([score(200, hour=3, news2=6, band="medium", sbp=100, map_mmhg=70)])
    assert status(recovered, "crystalloid_30ml_kg") == "missing"
    assert status(recovered, "vasopressor_map_65") == "missing"
    vitals(w, 260, hr=88, resp=18, sbp=105)
    put(store, w)
    (negative,) = care([score(260, hour=4, news2=5, band="medium", qsofa=False, sirs=False, sbp=105, map_mmhg=72)])
    assert status(negative, "antibiotics") == "missing" and negative.score == recovered.score


def test_sepsis_has_its_own_time_zero_after_a_news2_trigger(store: Store) -> None:
    # defect 4: NEWS2 5 at 10:00 started the clock; sepsis suspected at 16:30 with antibiotics at 16:20
    # was judged from 10:00 ("late"); the NEWS2 response keeps 10:00
    w = PatientWindow()
    vitals(w, 0, hr=95, resp=22, sbp=115)
    put(store, w)
    (first,) = care([score(0, news2=5, band="medium", qsofa=False, sirs=False, sbp=115, map_mmhg=80)])
    assert status(first, "antibiotics") == "not_applicable"
    w.apply(event("blood_culture", 370, 1))
    w.apply(event("antibiotic", 380, 1))
    vitals(w, 390, sbp=90)
    put(store, w)
    (result,) = care([score(390, hour=6, news2=6, band="medium", sbp=90, map_mmhg=66)])
    assert result.time_zero == at(390) and store.clock().time_zero == T0
    assert status(result, "antibiotics") == "met" and status(result, "blood_cultures_before_antibiotics") == "met"
    escalation = next(i for i in result.items if i.name == "news2_escalation")
    assert escalation.status == "missing" and escalation.due_min == -330  # the 10:00 trigger's hour


def test_a_clock_written_before_the_time_zeros_were_kept_still_reads(store: Store) -> None:
    w = PatientWindow()
    vitals(w, 0)
    vitals(w, 45)
    put(store, w)
    store.blobs[care_key(PID)] = json.dumps({"time_zero": T0.isoformat(), "digest": "d", "inputs": "i"}).encode()
    (result,) = care([score(45)])
    clock = store.clock()
    assert result.time_zero == T0 and clock.sepsis is not None and clock.sepsis.at == T0
    assert clock.news2 is not None and clock.as_of == at(45)


def plan_events(*plans: bytes) -> list[Any]:
    return [
        SimpleNamespace(
            message=SimpleNamespace(topic=topics.TREATMENT_REQUESTS, partition=0, offset=n, key=b"p1", value=p)
        )
        for n, p in enumerate(plans)
    ]


def requested(*plans: bytes) -> Capture:
    publisher = Capture()
    asyncio.run(treat.plan_requests(plan_events(*plans), publisher))  # type: ignore[arg-type]
    return publisher


def test_a_plan_dead_letter_names_the_field_and_never_the_value() -> None:
    # defect 16: "treatment plan: Value error, crystalloid_ml dose 25000.0 mL outside 0.0-20000.0"
    dose = {"action": "crystalloid_ml", "at": 5, "dose": {"value": 25000, "unit": "mL"}}
    missing = {"action": "antibiotic"}
    publisher = requested(
        json.dumps({"state": {"weight_kg": 70}, "items": [dose]}).encode(),
        json.dumps({"state": {}, "items": [missing]}).encode(),
        json.dumps({"state": {"weight_kg": 70}, "items": [{**dose, "dose": {"value": 3, "unit": "L"}}]}).encode(),
    )
    out_of_range, no_time, wrong_unit = publisher.rejected
    assert out_of_range.reason == "schema" and out_of_range.detail.startswith("treatment plan: items.0: ")
    assert "25000" not in out_of_range.detail and "0-20000 mL" in out_of_range.detail
    assert no_time.detail == "treatment plan: items.0.at: Field required"
    assert "'L'" not in wrong_unit.detail and "must be in 'mL'" in wrong_unit.detail


def test_a_plan_whose_time_zero_is_past_the_calendar_is_a_schema_dead_letter() -> None:
    # 9999-12-31T23:00Z raised OverflowError while the suggestions were timed: dead-lettered `internal`
    plan = {"time_zero": "9999-12-31T23:00:00Z", "state": {"weight_kg": 70, "map_mmhg": 58, "suspected_sepsis": True}}
    publisher = requested(json.dumps({**plan, "items": [{"action": "blood_culture", "at": 5}]}).encode())
    (rejected,) = publisher.rejected
    assert rejected.reason == "schema" and publisher.scores() == []
    assert rejected.detail == "treatment plan: time_zero: a time zero must fall within the years 1900-9000"


def test_a_plan_with_an_onset_and_no_hypotension_after_fluids_is_a_schema_dead_letter() -> None:
    # the onset was silently ignored, and the vasopressor scored not applicable
    state = {"weight_kg": 70, "map_mmhg": 72, "suspected_sepsis": True}
    state |= {"hypotension_after_fluids": False, "hypotension_onset_min": 150}
    publisher = requested(json.dumps({"state": state, "items": [{"action": "blood_culture", "at": 5}]}).encode())
    (rejected,) = publisher.rejected
    assert rejected.reason == "schema" and publisher.scores() == []
    assert rejected.detail.startswith("treatment plan: state: hypotension_onset_min ")
    assert "hypotension_after_fluids false" in rejected.detail and "150" not in rejected.detail


def test_a_plan_with_too_much_to_score_is_dead_lettered_too_large() -> None:
    # defect 13: observation sets every 0.01 min over a week stalled the worker for hours
    sets = [{"action": "observation_set", "at": 0, "every_min": 5}] * 5
    publisher = requested(json.dumps({"horizon_min": 10080, "state": {}, "items": sets}).encode())
    (rejected,) = publisher.rejected
    assert rejected.reason == "too_large" and "10000" in rejected.detail and publisher.scores() == []
    fine = [{"action": "observation_set", "at": 0, "every_min": 15}]
    assert requested(json.dumps({"state": {"news2_total": 7}, "items": fine}).encode()).scores()


def test_a_plans_suggestion_search_runs_off_the_event_loop_and_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # defect 13: the greedy search ran on the event loop (Faust's timers and heartbeats stopped) for hours
    monkeypatch.setattr(treat, "PLAN_SEARCH_S", 0.5)
    sets = [{"action": "observation_set", "at": i * 0.01, "every_min": 5} for i in range(4)]
    labs = [{"action": "lactate_ordered", "at": i * 0.5} for i in range(496)]
    big = {"horizon_min": 10080, "state": {"suspected_sepsis": True, "news2_total": 9}, "items": sets + labs}
    ticks = 0

    async def main() -> Capture:
        nonlocal ticks
        publisher = Capture()
        task = asyncio.create_task(treat.plan_requests(plan_events(json.dumps(big).encode()), publisher))  # type: ignore[arg-type]
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.01)
        await task
        return publisher

    publisher = asyncio.run(main())
    assert len(publisher.scores()) == 1
    # the loop ran while the plan was scored (a search bounded to 0.5 s: a loop tick every 10 ms, 50
    # unloaded, fewer on a loaded machine as the search's thread holds the GIL; on the loop, 1 or 2);
    # the bound itself is tested on a clock of its own (test_the_suggestion_search_is_bounded_in_time)
    assert ticks >= 8


def test_care_that_leaves_the_window_still_counts_while_the_clock_stays(store: Store) -> None:
    # defect 9: vasopressor titrations every 30 min pushed the antibiotic, the cultures and the fluid out
    # of the window's 64 treatments: "missing" a day later, the score from 90 to 41
    w = PatientWindow()
    vitals(w, 0)
    w.apply(event("weight_kg", 0, 70))
    w.apply(event("Lactate", 10, 4.5))
    for code, minutes, value in (("blood_culture", 10, 1), ("antibiotic", 20, 1), ("crystalloid_ml", 25, 2100)):
        w.apply(event(code, minutes, value))
    w.apply(event("vasopressor", 40, 0.1))
    put(store, w)
    care([score(0)])
    vitals(w, 60)
    put(store, w)
    (early,) = care([score(60, hour=1)])
    vitals(w, 18 * 60)  # at risk throughout: the same episode
    put(store, w)
    care([score(18 * 60, hour=18)])
    for k in range(1, 70):
        w.apply(event("vasopressor", 40 + 30 * k, 0.1 + 0.01 * (k % 5)))
    vitals(w, 36 * 60)
    put(store, w)
    assert not any(code == "antibiotic" for code, _, _ in w.treatments)  # gone from the window
    (later,) = care([score(36 * 60, hour=36)])
    for name in ("antibiotics", "blood_cultures_before_antibiotics", "crystalloid_30ml_kg", "lactate_measured"):
        assert status(later, name) == status(early, name) == "met", name


def test_the_lactates_kept_with_the_clock_are_those_the_rules_read(store: Store) -> None:
    """Review of this stop's diff: the first four lactates from 6 h before time zero were kept (hourly
    blood gases), so the initial lactate and its repeat were lost with the window after 48 h."""
    w = PatientWindow()
    result = None
    for hr in range(-6, 50):
        vitals(w, hr * 60)
        if hr <= 1:
            w.apply(event("Lactate", hr * 60 + 5, 3.0 if hr < 0 else 4.5))
        put(store, w)
        if hr >= 0:
            result = (care([score(hr * 60 + 10, hour=w.last_hour)]) or [result])[-1]
    assert result is not None
    assert status(result, "lactate_measured") == "met" and status(result, "lactate_remeasured") == "met"


def test_a_corrected_lactate_replaces_the_one_kept(store: Store) -> None:
    """A lactate 1.5 corrected to 4.5 at the same draw: both were kept, and the lower was read."""
    from vigil.models.care import advance_clock, clock_inputs, remember_care

    w = PatientWindow()
    vitals(w, 0)
    w.apply(event("Lactate", 10, 1.5))
    clock = remember_care(advance_clock(None, score(0)), w)  # type: ignore[arg-type]
    w.apply(event("Lactate", 10, 4.5))
    state, _ = clock_inputs(remember_care(clock, w), w, at(30))
    assert state["lactate_mmol_l"] == 4.5


def test_a_clock_of_the_release_before_starts_a_new_episode_after_a_day(store: Store) -> None:
    """A clock written before ``last_at_risk`` was kept held its episode open for good: the next at-risk
    score, five days on, was judged from five days before, every item missing."""
    from vigil.models.care import advance_clock

    old = CareClock.model_validate_json(json.dumps({"time_zero": at(-5 * 24 * 60).isoformat(), "digest": "d"}))
    clock = advance_clock(old, score(0))
    assert clock is not None and clock.time_zero == T0


def test_a_news2_rise_without_sepsis_keeps_the_episodes_time_zero(store: Store) -> None:
    """NEWS2 5, then 7 without sepsis: time zero jumped to the rise, and the card's care score vanished."""
    from vigil.models.care import advance_clock

    clock = None
    for minutes, news2, band in ((0, 5, "medium"), (90, 7, "high")):
        s = score(minutes, news2=news2, band=band, qsofa=False, sirs=False, sbp=110, map_mmhg=80)
        clock = advance_clock(clock, s)
    assert clock is not None and clock.care_time_zero() == T0
    assert clock.news2 is not None and clock.news2.at == at(90)  # the NEWS2 items run from the rise


def test_a_plans_unknown_key_is_not_in_its_dead_letter() -> None:
    """A key the plan does not know is the sender's text, an MRN at worst: it reached the detail."""
    from pydantic import ValidationError

    from vigil.schemas.treatment import TreatmentPlan

    with pytest.raises(ValidationError) as caught:
        TreatmentPlan.model_validate_json('{"state": {}, "Jane Doe MRN 4455": 1}')
    rejected = invalid_record(caught.value, "treatment plan")
    assert "Jane" not in rejected.detail and "unexpected field" in rejected.detail
