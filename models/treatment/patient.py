"""What the patient's state implies for the guidelines: hypotension, hypoperfusion, the antibiotic
window, the vasopressor's deadline and the NEWS2 response band (SSC 2018/2021, RCP NEWS2 2017)."""

from __future__ import annotations

from vigil.models.early_warning import news2_band
from vigil.models.treatment.guidelines import ANTIBIOTIC_POSSIBLE_SEPSIS_MIN, CONTINUOUS_MONITORING_MIN, HOUR1_MIN
from vigil.schemas.scores import News2Band
from vigil.schemas.treatment import PatientState


def hypotensive(state: PatientState) -> bool:
    # SSC 2018 hour-1 bundle: 30 mL/kg "for hypotension": MAP < 65 mmHg or SBP < 90 mmHg (either)
    return (state.map_mmhg is not None and state.map_mmhg < 65) or (state.sbp_mmhg is not None and state.sbp_mmhg < 90)


def below_map_target(state: PatientState) -> bool:
    # SSC 2018 / 2021 rec 13: vasopressors "to maintain MAP >= 65 mmHg": a MAP at or above it meets the
    # target whatever the SBP; SBP < 90 stands in only where MAP is not known
    if state.map_mmhg is not None:
        return state.map_mmhg < 65
    return state.sbp_mmhg is not None and state.sbp_mmhg < 90


def hypoperfusion(state: PatientState) -> bool:
    # SSC 2018 hour-1 bundle: 30 mL/kg crystalloid "for hypotension or lactate >= 4 mmol/L"
    return hypotensive(state) or (state.lactate_mmol_l is not None and state.lactate_mmol_l >= 4.0)


def antibiotic_window_min(state: PatientState) -> float:
    # SSC 2021 recs 20-21: possible septic shock or probable sepsis -> within 1 h; possible sepsis
    # without shock -> within 3 h. Vigil reads hypotension or lactate >= 4 as possible shock.
    if state.sepsis_likelihood == "probable" or hypoperfusion(state):
        return HOUR1_MIN
    return ANTIBIOTIC_POSSIBLE_SEPSIS_MIN


def hypotension_onset_at_target(state: PatientState) -> float | None:
    """The fall below the MAP target during or after fluids (``hypotension_onset_min``) of a patient
    at the target at time zero: the vasopressor is indicated from it on (SSC 2018: vasopressors "if
    hypotensive during or after fluid resuscitation"); a pressor given shortly before it is taken as
    running, an older one is not the bundle's answer to it (``rules._rule_vasopressor``). None below the
    target at time zero (indicated from time zero) or without an onset."""
    onset = state.hypotension_onset_min
    return None if onset is None or below_map_target(state) else onset


def vasopressor_deadline_min(state: PatientState) -> float:
    """When the vasopressor falls due. SSC 2018: vasopressors "if hypotensive during or after fluid
    resuscitation", every hour-1 element begun within the hour: an hour from time zero, or, for a
    patient at the target at time zero, from when the MAP first fell below it after fluids
    (``hypotension_onset_at_target``): noradrenaline 10 min after a fall at T+2 h 30 min was "late"."""
    onset = hypotension_onset_at_target(state)
    if onset is None:
        return HOUR1_MIN  # below the target at time zero: the hour runs from it
    return max(HOUR1_MIN, onset + HOUR1_MIN)


def response_band(state: PatientState) -> News2Band | None:
    if state.news2_band == "low" and state.news2_single_parameter_3:
        return "low-medium"  # RCP 2017 chart 3: a single parameter scoring 3 asks for an urgent response
    if state.news2_band is not None:
        return state.news2_band
    if state.news2_total is None:
        return None
    return news2_band(state.news2_total, state.news2_single_parameter_3)


def required_observation_interval_min(state: PatientState) -> float | None:
    """RCP NEWS2 2017 chart 3 minimum observation frequency, as the longest allowed gap in minutes.

    0 -> 12-hourly; 1-4 -> 4-6-hourly (the 6 h end is the limit); 3 in one parameter or 5-6 ->
    hourly; >= 7 -> continuous monitoring (Vigil: a set at least every 15 minutes).
    """
    band = response_band(state)
    if band is None:
        return None
    if band == "high":
        return CONTINUOUS_MONITORING_MIN
    if band in ("medium", "low-medium"):
        return 60.0
    total = state.news2_total
    return 720.0 if total == 0 else 360.0


def pathways(state: PatientState) -> list[str]:
    """The care pathways the patient's state triggers: the SSC hour-1 bundle (suspected sepsis) and
    the NEWS2 clinical response (RCP 2017 chart 3: a single 3, 5-6 or >= 7; a low score 0-4 calls for
    ward-based care only). With none triggered the care score is not applicable."""
    out = []
    if state.suspected_sepsis:
        out.append("sepsis hour-1 bundle")
    if response_band(state) in ("low-medium", "medium", "high"):
        out.append("NEWS2 clinical response")
    return out
