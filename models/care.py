"""From a patient's stream state to the inputs of treatment scoring (pure).

The treatment agent keeps per patient a care clock (``CareClock``) for the current *episode*: it
starts at the first score that finds the patient at risk (``at_risk``) and keeps two time zeros, each
with the patient's state at it (``CareZero``):

- **sepsis**: the first score of the episode with suspected sepsis (``suspected_sepsis``). The SSC
  hour-1 bundle runs from it (SSC 2018 update: time zero is the recognition of sepsis), and it is the
  published score's ``time_zero``.
- **NEWS2**: the score whose NEWS2 the clinical response answers (RCP NEWS2 2017 chart 3): the one
  that started the clock, or the first score of a higher response band since (a rise from 5-6 to
  >= 7 calls for the emergency response). The NEWS2 items run from it (``news2_at_min``).

The state at a time zero stands for the episode: a blood pressure recovering on its own does not
take the fluid and vasopressor items away. Later values are read only where a rule asks about later:
whether the patient was hypotensive during or after fluids (``hypotension_after_fluids``).

Care is judged as of the newest observation, never earlier than the clock was judged before (a batch
of a late-charted result must not turn a "missing" item back into "pending"). Vigil's conventions,
documented in docs/treatment.md ("Streaming"): ``EPISODE_GAP``, ``FOLLOW_UP``, ``CARE_LOOKBACK``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from vigil.models.early_warning import news2_band
from vigil.models.treatment.guidelines import FLUID_WINDOW_MIN, HOUR1_MIN
from vigil.models.treatment.patient import below_map_target
from vigil.models.treatment.timeline import minutes_after
from vigil.models.window import PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES, TREATMENTS
from vigil.schemas.scores import News2Band, RiskScore
from vigil.schemas.treatment import PatientState

# A bedside observation set: at least three of the NEWS2 vital signs recorded in the hour.
OBSERVATION_CODES = ("Resp", "O2Sat", "SBP", "HR", "Temp")
OBSERVATION_MIN_PARAMS = 3

# At risk again after this long without an at-risk score: a new episode, a new clock (new time zeros).
# A day: past every deadline of the bundle (<= 5 h) and of ``FOLLOW_UP`` and ``CARE_LOOKBACK``, so the
# care of one episode is never credited to the next nor judged twice; a patient whose scores dip below
# the threshold for some hours is still in the same episode, and its deadlines stand.
EPISODE_GAP = timedelta(hours=24)
# When the scores no longer find the patient at risk, the care score is still published for this long
# after the later time zero: every item of the bundle falls due within it (the last, the repeat
# lactate, by T+5 h), and it is the default plan horizon (360 min). Then the clock waits silently.
FOLLOW_UP = timedelta(hours=6)
# Care given more than this before time zero is not care of this episode: an antibiotic the day
# before was given for another indication, and read as "met at T-1 d 6 h". Six hours, one dosing
# interval of the usual broad-spectrum agents (piperacillin-tazobactam every 6 h; meropenem every
# 8 h), keeps what the ED gave just before Vigil's first scores (SSC 2021 counts it: antimicrobials
# "immediately", however recognized) and drops an earlier course.
CARE_LOOKBACK = timedelta(hours=6)
# What the NEWS2 items read (RCP 2017 chart 3): they answer the NEWS2 score, which may be hours before
# sepsis recognition, so their care is read from ``CARE_LOOKBACK`` before the earliest time zero
# (``CareClock.news2_care_since``), not before the sepsis time zero
NEWS2_CARE = ("clinician_review", "observation_set")
# ``last_at_risk`` is written when it moves on by this much: the gap above is measured to the hour,
# and the clock is not written to Redis on every at-risk score.
AT_RISK_STEP = timedelta(hours=1)
# Care seen in the window is kept in the clock (``remember_care``) as evidence of the episode: the
# window holds 48 h and 64 treatments, and an ICU's vasopressor titrations every 30 min pushed the
# antibiotic, the cultures and the fluids out of it within a day ("missing" while the clock stayed).
# Per action the first few from ``CARE_LOOKBACK`` before time zero on (the rules read the first, and
# the lactate its repeat); more of the crystalloid, whose volumes are summed; reviews from the NEWS2
# score on (only those answer it).
KEEP_PER_ACTION = 4
KEEP_FLUIDS = 16
# The initial lactate is a sample within an hour either side of the sepsis time zero
# (``rules.initial_lactate_min``); one from the day before does not show this episode's perfusion.
INITIAL_LACTATE = timedelta(minutes=HOUR1_MIN)

_RESPONSE_RANK: dict[str, int] = {"low": 0, "low-medium": 1, "medium": 2, "high": 3}
_LACTATE = DYNAMIC_CODES.index("Lactate")
_MAP = DYNAMIC_CODES.index("MAP")
_SBP = DYNAMIC_CODES.index("SBP")


class CareZero(BaseModel):
    """A time zero and what the score at it said (the state the guidelines are applied to)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    map_mmhg: float | None = None
    sbp_mmhg: float | None = None
    news2_total: int = 0
    news2_band: News2Band | None = None
    news2_single_parameter_3: bool = False

    @classmethod
    def of(cls, score: RiskScore) -> CareZero:
        return cls(
            at=score.observed_at,
            map_mmhg=score.vitals.get("MAP"),
            sbp_mmhg=score.vitals.get("SBP"),
            news2_total=min(score.news2.total, 20),
            news2_band=score.news2.band,
            news2_single_parameter_3=score.news2.single_parameter_3,
        )

    def response_rank(self) -> int:
        """RCP 2017 chart 3: low 0, a single 3 (low-medium) 1, medium 2, high 3."""
        band = self.news2_band or news2_band(self.news2_total, self.news2_single_parameter_3)
        rank = _RESPONSE_RANK.get(band, 0)
        return max(rank, 1) if self.news2_single_parameter_3 else rank


class CareClock(BaseModel):
    """What the treatment agent keeps per patient (Redis ``vigil:t:<hash>``, JSON): when the episode
    started, its time zeros, when its care was last judged, and digests of the inputs and of the last
    published care score (so an unchanged score is neither recomputed nor re-published).

    Fields after ``inputs`` were added later, with defaults: a clock written before them still reads
    (``advance_clock`` fills the time zeros from the first score read after)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    time_zero: datetime  # the episode's first at-risk score (``models.stays.in_stay`` checks it)
    digest: str = ""
    inputs: str = ""
    sepsis: CareZero | None = None  # the first score of the episode with suspected sepsis
    news2: CareZero | None = None  # the NEWS2 score the clinical response answers
    as_of: datetime | None = None  # when the care was last judged: never judged earlier again
    last_at_risk: datetime | None = None  # the latest at-risk score (to ``AT_RISK_STEP``)
    # the episode's early care as seen in the window (code, time, value; "Lactate": a result, its draw):
    # still counted after it leaves the window (``remember_care``)
    kept: list[tuple[str, datetime, float]] = []

    def care_time_zero(self) -> datetime:
        """The published score's time zero: sepsis recognition, else the episode's first trigger (a
        NEWS2 rise to a higher band moves the NEWS2 items' zero, ``news2_at_min``, not the episode's:
        it moved time zero, and the card's score vanished)."""
        return self.sepsis.at if self.sepsis is not None else self.time_zero

    def zeros_at(self) -> list[datetime]:
        return [self.time_zero, *(z.at for z in (self.sepsis, self.news2) if z is not None)]

    def news2_care_since(self) -> datetime:
        """From when care counts for the NEWS2 items (``NEWS2_CARE``): ``CARE_LOOKBACK`` before the
        earliest time zero. Their zero, the NEWS2 score, may be hours before sepsis recognition (NEWS2 5
        at 10:00, sepsis at 16:30): measured from the sepsis zero, the urgent review at 10:20 was
        dropped and read "missing", and the hourly observation sets before the look-back as one gap."""
        return min(self.zeros_at()) - CARE_LOOKBACK

    def follows(self, now: datetime) -> bool:
        """Whether a score that does not find the patient at risk still brings the care score: until
        ``FOLLOW_UP`` after the later time zero, while items fall due."""
        return now <= max(self.zeros_at()) + FOLLOW_UP

    def judged_at(self, observed_at: datetime) -> datetime:
        """When to judge the care: the newest observation, never before the clock was last judged nor
        before its time zeros (a batch of a late-charted result is no step back in time)."""
        return max([observed_at, *self.zeros_at(), *([self.as_of] if self.as_of else [])])


def at_risk(score: RiskScore) -> bool:
    """Patients for whom a care score is published: NEWS2 medium/high or a single 3
    (RCP 2017 clinical response), qSOFA >= 2 (Sepsis-3), or a positive model."""
    n = score.news2
    model_positive = any(m.positive for m in score.models if m.model == "combined")
    return n.band in ("medium", "high") or n.single_parameter_3 or bool(score.qsofa.positive) or model_positive


def suspected_sepsis(score: RiskScore) -> bool:
    model_positive = any(m.positive for m in score.models if m.model == "combined")
    return bool(score.qsofa.positive) or bool(score.sirs.positive) or model_positive


def advance_clock(clock: CareClock | None, score: RiskScore) -> CareClock | None:
    """The care clock after ``score`` (a patient's scores are applied oldest first). None: no
    episode (not at risk, and no clock)."""
    t = score.observed_at
    risky = at_risk(score)
    # a clock written before ``last_at_risk`` was kept: its last judgement, else its time zero (None
    # kept an old episode open for good, and its next episode was judged from days before)
    last = None if clock is None else clock.last_at_risk or clock.as_of or clock.time_zero
    if clock is not None and risky and last is not None and t - last >= EPISODE_GAP:
        clock = None  # at risk again after a day without: a new episode
    if clock is None:
        if not risky:
            return None
        zero = CareZero.of(score)
        return CareClock(time_zero=t, news2=zero, sepsis=zero if suspected_sepsis(score) else None, last_at_risk=t)
    if clock.news2 is None:
        # written before the time zeros were kept: its time zero, with the state of the first score
        # read since (what the clock of that release judged by)
        zero = CareZero.of(score).model_copy(update={"at": clock.time_zero})
        clock = clock.model_copy(update={"news2": zero, "sepsis": zero if suspected_sepsis(score) else None})
    if t < clock.time_zero:
        return clock  # a late score from before the episode began moves none of its time zeros
    update: dict[str, Any] = {}
    if risky and (clock.last_at_risk is None or t - clock.last_at_risk >= AT_RISK_STEP):
        update["last_at_risk"] = t
    if clock.sepsis is None and suspected_sepsis(score):
        update["sepsis"] = CareZero.of(score)
    zero = CareZero.of(score)
    assert clock.news2 is not None
    if zero.response_rank() > clock.news2.response_rank() and t >= clock.news2.at:
        update["news2"] = zero
    return clock.model_copy(update=update) if update else clock


def care_categories(state: dict[str, Any]) -> dict[str, Any]:
    """What the treatment rules actually compare (thresholds of SSC 2021 and RCP NEWS2 2017):
    a new blood pressure that keeps the patient on the same side of MAP 65 / SBP 90, or a NEWS2
    total in the same response band, cannot change the care score."""
    news2 = state["news2_total"]
    band = (
        "zero"
        if news2 == 0
        else "single3"
        if state["news2_single_parameter_3"] and news2 < 5
        else "low"
        if news2 < 5
        else "medium"
        if news2 < 7
        else "high"
    )
    map_mmhg, sbp = state["map_mmhg"], state["sbp_mmhg"]
    return {
        "hypotensive": (map_mmhg is not None and map_mmhg < 65) or (sbp is not None and sbp < 90),
        "hypotension_after_fluids": state.get("hypotension_after_fluids"),
        "hypotension_onset_min": state.get("hypotension_onset_min"),
        "lactate": state["lactate_mmol_l"],
        "weight": state["weight_kg"],
        "news2": band,
        "news2_at_min": state.get("news2_at_min", 0.0),
        "suspected_sepsis": state["suspected_sepsis"],
        "time_zero": state["time_zero"],
    }


def remember_care(clock: CareClock, window: PatientWindow) -> CareClock:
    """The clock with the episode's care in ``window`` kept (``KEEP_PER_ACTION``, ``KEEP_FLUIDS``),
    so that care which leaves the window (48 h, 64 treatments) still counts while the clock stays."""
    time_zero = clock.care_time_zero()
    since = time_zero - CARE_LOOKBACK
    news2_zero = clock.news2.at if clock.news2 is not None else clock.time_zero
    kept: list[tuple[str, datetime, float]] = []
    counts: dict[str, int] = {}
    for code, at, value in _evidence(clock, window):
        start = since
        if code == "Lactate":
            # only from the initial one's reach on: four hourly blood gases before it filled the
            # lactate's places, and the initial lactate and its repeat were lost with the window
            start = time_zero - INITIAL_LACTATE
        elif code == "clinician_review":
            # only from the NEWS2 score on, however long before sepsis time zero it was: a review
            # before it answered another score (RCP 2017 chart 3) and must not take the places of one
            # that answers it
            start = news2_zero
        if at < start or code == "observation_set":
            continue  # observation sets are counted over the window, to now
        limit = KEEP_FLUIDS if code == "crystalloid_ml" else KEEP_PER_ACTION
        if counts.get(code, 0) < limit:
            kept.append((code, at, value))
            counts[code] = counts.get(code, 0) + 1
    weight = _latest_weight(clock, window)  # 30 mL/kg needs it
    if weight is not None:
        kept.append(weight)
    return clock if kept == clock.kept else clock.model_copy(update={"kept": kept})


def _latest_weight(clock: CareClock, window: PatientWindow) -> tuple[str, datetime, float] | None:
    weights = [(datetime.fromtimestamp(ts, tz=UTC), v) for code, ts, v in window.treatments if code == "weight_kg"]
    weights += [(at, v) for code, at, v in clock.kept if code == "weight_kg"]
    return ("weight_kg", *max(weights)) if weights else None


def _evidence(clock: CareClock, window: PatientWindow) -> list[tuple[str, datetime, float]]:
    """The care in the window and kept in the clock, oldest first, each once: treatments (the weight
    apart: ``_latest_weight``) and lactate results ("Lactate", at its draw)."""
    seen = {(code, datetime.fromtimestamp(ts, tz=UTC), value) for code, ts, value in window.treatments}
    seen.update(e for e in clock.kept if e[0] != "Lactate")
    # a lactate is one result per draw: the window's value replaces the one kept (a correction of
    # 1.5 to 4.5 at the same draw kept both, and the lower was read as the initial lactate)
    lactates = {at: value for code, at, value in clock.kept if code == "Lactate"}
    for hour, row in window.rows.items():
        if _LACTATE in row:
            value, second = row[_LACTATE]
            lactates[window.hour_start(hour) + timedelta(seconds=second)] = value
    seen.update(("Lactate", at, value) for at, value in lactates.items())
    return sorted((e for e in seen if e[0] != "weight_kg"), key=lambda e: (e[1], e[0], e[2]))


def clock_inputs(clock: CareClock, window: PatientWindow, now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(PatientState fields, treatment items) for ``models.treatment.score_patient_care``: the state
    at the clock's time zeros, the care in the window (and kept in the clock) from ``CARE_LOOKBACK``
    before time zero on, for the NEWS2 items before the earliest time zero (``news2_care_since``)."""
    time_zero = clock.care_time_zero()
    since = time_zero - CARE_LOOKBACK
    news2_since = clock.news2_care_since()
    items: list[dict[str, Any]] = []
    lactates: list[tuple[datetime, float]] = []
    for code, at, value in _evidence(clock, window):
        if code == "Lactate":
            lactates.append((at, value))
            code = "lactate_ordered"  # a lactate result counts as lactate measured (the lab was drawn)
        if at < (news2_since if code in NEWS2_CARE else since):
            continue
        item: dict[str, Any] = {"action": code, "at": at}
        # no rule reads a vasopressor's rate, only its start; a rate sent in a unit not per kg per
        # minute is kept as 0 (schemas.units), so it is not passed on as a dose
        if code in ("crystalloid_ml", "oxygen"):
            item["dose"] = {"value": value, "unit": TREATMENTS[code][0]}
        items.append(item)
    for hour, row in sorted(window.rows.items()):
        recorded = sum(1 for code in OBSERVATION_CODES if DYNAMIC_CODES.index(code) in row)
        if recorded >= OBSERVATION_MIN_PARAMS and window.hour_start(hour) >= news2_since:
            items.append({"action": "observation_set", "at": window.hour_start(hour)})
    weight = _latest_weight(clock, window)
    initial = next(
        (v for drawn, v in lactates if abs(drawn - time_zero) <= INITIAL_LACTATE and drawn <= now),
        None,
    )
    sepsis, news2 = clock.sepsis, clock.news2 or clock.sepsis
    watched_from = _hypotension_watched_from(items, sepsis, time_zero, now) if sepsis else None
    onset = _hypotension_onset(window, watched_from, time_zero, now)
    state = {
        "weight_kg": weight[2] if weight else None,
        "lactate_mmol_l": initial,
        "map_mmhg": sepsis.map_mmhg if sepsis else None,
        "sbp_mmhg": sepsis.sbp_mmhg if sepsis else None,
        "suspected_sepsis": sepsis is not None,
        "hypotension_after_fluids": _hypotension_after_fluids(window, items, watched_from, onset, now),
        "hypotension_onset_min": None if onset is None else minutes_after(onset, time_zero),
        "news2_total": news2.news2_total if news2 else None,
        "news2_band": news2.news2_band if news2 else None,
        "news2_single_parameter_3": news2.news2_single_parameter_3 if news2 else False,
        "news2_at_min": minutes_after(news2.at, time_zero) if news2 else 0.0,
        "time_zero": time_zero,
    }
    return state, items


def care_inputs(
    score: RiskScore, window: PatientWindow, time_zero: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``clock_inputs`` of a clock started at ``time_zero`` in the state ``score`` gives, judged as of
    ``score`` (a one-off look at a window, as the tests and scripts take one)."""
    zero = CareZero.of(score).model_copy(update={"at": time_zero})
    clock = CareClock(time_zero=time_zero, news2=zero, sepsis=zero if suspected_sepsis(score) else None)
    return clock_inputs(clock, window, max(score.observed_at, time_zero))


def _first_fluid(items: list[dict[str, Any]], now: datetime) -> datetime | None:
    return min((i["at"] for i in items if i["action"] == "crystalloid_ml" and i["at"] <= now), default=None)


def _hypotension_watched_from(
    items: list[dict[str, Any]], zero: CareZero, time_zero: datetime, now: datetime
) -> datetime | None:
    """From when a reading below the MAP target is hypotension "during or after fluid resuscitation"
    (SSC 2018 hour-1 bundle): the first crystalloid; for a patient at the target at time zero, not
    before time zero either. A dip during an ED bolus before time zero, the pressure back at the target
    by time zero, is no fall to answer: read from the first fluid, it became a negative onset and a
    patient falling at T+150 had the vasopressor due at T+60 again (graded late at T+160). None: no
    fluid yet."""
    first_fluid = _first_fluid(items, now)
    if first_fluid is None:
        return None
    at_target = not below_map_target(PatientState(map_mmhg=zero.map_mmhg, sbp_mmhg=zero.sbp_mmhg))
    return max(first_fluid, time_zero) if at_target else first_fluid


def _hypotension_onset(
    window: PatientWindow, watched_from: datetime | None, time_zero: datetime, now: datetime
) -> datetime | None:
    """When the patient was first hypotensive during or after fluid resuscitation (SSC 2018 hour-1
    bundle): the first reading below the MAP target (SBP < 90 where MAP is unknown) from
    ``_hypotension_watched_from`` on, within the 3 h of resuscitation (``FLUID_WINDOW_MIN``). The
    vasopressor of a patient at the target at time zero falls due an hour after it
    (``hypotension_onset_min``)."""
    if watched_from is None:
        return None
    resuscitation_end = min(now, time_zero + timedelta(minutes=FLUID_WINDOW_MIN))
    readings = _pressure_readings(window)
    return next((t for t, below in readings if below and watched_from <= t <= resuscitation_end), None)


def _hypotension_after_fluids(
    window: PatientWindow,
    items: list[dict[str, Any]],
    watched_from: datetime | None,
    onset: datetime | None,
    now: datetime,
) -> bool | None:
    """SSC 2018 hour-1 bundle: vasopressors "if hypotensive during or after fluid resuscitation".
    True: hypotensive during resuscitation (``onset``, from ``_hypotension_onset``); False: every
    reading since ``watched_from``, and before any vasopressor (a MAP held on one is not a MAP restored
    by fluids), at the target; None: no fluid, or no reading after it (the rule then reads time zero's
    pressure as persisting). True exactly when there is an onset: the plan's schema refuses an onset
    with false."""
    if watched_from is None:
        return None
    if onset is not None:
        return True
    pressor = min((i["at"] for i in items if i["action"] == "vasopressor"), default=None)
    readings = [(t, below) for t, below in _pressure_readings(window) if watched_from <= t <= now]
    off_pressors = [below for t, below in readings if pressor is None or t < pressor]
    if off_pressors and not any(off_pressors):
        return False
    return None


def _pressure_readings(window: PatientWindow) -> list[tuple[datetime, bool]]:
    """(time, below the MAP target) of each hour's blood pressure: its MAP, else its SBP."""
    out = []
    for hour, row in sorted(window.rows.items()):
        cell = row.get(_MAP) or row.get(_SBP)
        if cell is None:
            continue
        value, second = cell
        pressure = PatientState(map_mmhg=value) if _MAP in row else PatientState(sbp_mmhg=value)
        out.append((window.hour_start(hour) + timedelta(seconds=second), below_map_target(pressure)))
    return out
