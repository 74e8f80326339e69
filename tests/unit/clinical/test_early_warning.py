"""NEWS2 / qSOFA / SIRS against the published tables (RCP NEWS2 2017 chart 1; Seymour 2016; Bone 1992)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.models.early_warning import (
    NEWS2_PARAMETERS,
    Observations,
    charted,
    news2,
    news2_band,
    observations_from_row,
    qsofa,
    sirs,
)

# A patient with every NEWS2 parameter in the 0 row (RCP 2017 chart 1).
NORMAL = dict(resp_rate=16, spo2=98, temp_c=37.0, sbp=120, hr=70, acvpu=0, on_oxygen=False)


def obs(**overrides) -> Observations:
    return Observations(**{**NORMAL, **overrides})


def points(parameter: str, **overrides) -> int:
    return news2(obs(**overrides)).parameters[parameter]


# --- every boundary of every NEWS2 parameter ---------------------------------------------------


@pytest.mark.parametrize(
    "rr,expected",
    [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)],
)
def test_news2_respiration_rate(rr, expected):
    assert points("respiration_rate", resp_rate=rr) == expected


@pytest.mark.parametrize("spo2,expected", [(70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)])
@pytest.mark.parametrize("on_oxygen", [False, True])
def test_news2_spo2_scale1_ignores_oxygen(spo2, expected, on_oxygen):
    assert points("spo2", spo2=spo2, on_oxygen=on_oxygen) == expected


@pytest.mark.parametrize(
    "spo2,on_oxygen,expected",
    [
        (75, False, 3),
        (83, True, 3),
        (84, False, 2),
        (85, True, 2),
        (86, False, 1),
        (87, True, 1),
        (88, False, 0),
        (88, True, 0),
        (92, False, 0),
        (92, True, 0),
        (93, False, 0),  # >= 93 on air -> 0
        (97, False, 0),
        (100, False, 0),
        (93, True, 1),
        (94, True, 1),
        (95, True, 2),
        (96, True, 2),
        (97, True, 3),
        (100, True, 3),
    ],
)
def test_news2_spo2_scale2(spo2, on_oxygen, expected):
    assert points("spo2", spo2=spo2, on_oxygen=on_oxygen, hypercapnic=True) == expected


def test_news2_scale2_only_when_hypercapnic():
    # SpO2 88% scores 3 on scale 1 but 0 on scale 2.
    assert points("spo2", spo2=88) == 3
    assert points("spo2", spo2=88, hypercapnic=True) == 0


@pytest.mark.parametrize("on_oxygen,expected", [(False, 0), (True, 2)])
def test_news2_air_or_oxygen(on_oxygen, expected):
    assert points("air_or_oxygen", on_oxygen=on_oxygen) == expected


@pytest.mark.parametrize(
    "sbp,expected",
    [(50, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (260, 3)],
)
def test_news2_systolic_bp(sbp, expected):
    assert points("systolic_bp", sbp=sbp) == expected


@pytest.mark.parametrize(
    "hr,expected",
    [
        (20, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
        (200, 3),
    ],
)
def test_news2_pulse(hr, expected):
    assert points("pulse", hr=hr) == expected


@pytest.mark.parametrize("acvpu,expected", [(0, 0), (1, 3), (2, 3), (3, 3), (4, 3)])
def test_news2_consciousness_acvpu(acvpu, expected):
    assert points("consciousness", acvpu=acvpu) == expected


@pytest.mark.parametrize(
    "temp,expected",
    [
        (30.0, 3),
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (42.0, 2),
    ],
)
def test_news2_temperature(temp, expected):
    assert points("temperature", temp_c=temp) == expected


# --- values between chart rows: rounded to the chart's precision first ----------------------------


@pytest.mark.parametrize(
    "field,value,parameter,expected",
    [
        ("resp_rate", 11.5, "respiration_rate", 0),  # -> 12
        ("resp_rate", 11.49, "respiration_rate", 1),  # -> 11
        ("resp_rate", 8.4, "respiration_rate", 3),  # -> 8
        ("resp_rate", 20.5, "respiration_rate", 2),  # -> 21
        ("spo2", 95.5, "spo2", 0),  # -> 96
        ("spo2", 91.4, "spo2", 3),  # -> 91
        ("sbp", 90.5, "systolic_bp", 2),  # -> 91
        ("sbp", 219.4, "systolic_bp", 0),  # -> 219
        ("hr", 90.5, "pulse", 1),  # -> 91
        ("hr", 50.4, "pulse", 1),  # -> 50
        ("temp_c", 36.05, "temperature", 0),  # -> 36.1 (decimal half-up, not the float 36.0499...)
        ("temp_c", 36.04, "temperature", 1),  # -> 36.0
        ("temp_c", 35.05, "temperature", 1),  # -> 35.1
        ("temp_c", 38.04, "temperature", 0),  # -> 38.0
        ("temp_c", 39.05, "temperature", 2),  # -> 39.1
    ],
)
def test_news2_rounds_to_chart_precision(field, value, parameter, expected):
    assert points(parameter, **{field: value}) == expected


def test_charted_half_up():
    assert charted(11.5) == 12
    assert charted(12.5) == 13  # not banker's rounding
    assert charted(36.05, 1) == 36.1
    assert charted(36.15, 1) == 36.2


@pytest.mark.parametrize(("temp", "expected"), [(35.05, 1), (36.05, 0), (38.05, 1), (39.05, 2), (36.04, 1)])
def test_a_value_stored_as_float32_charts_as_written(temp, expected):
    # the stream's window and the offline matrix keep float32: 35.05 came back as 35.04999923706055
    # and charted 35.0 (3 points, low-medium) instead of 35.1 (1 point)
    stored = float(np.float32(temp))
    assert stored != temp and charted(stored, 1) == charted(temp, 1)
    assert points("temperature", temp_c=stored) == expected
    assert sirs(obs(temp_c=float(np.float32(38.05)))).parameters["temperature"] == 1
    assert charted(float(np.float32(123456.5)), 1) == 123456.5  # no 6-digit decimal: the value itself


# --- bands and the single-parameter-3 rule (RCP 2017 chart 2) ---------------------------------


def test_news2_all_normal_is_low_zero():
    s = news2(obs())
    assert (s.name, s.total, s.band, s.single_parameter_3) == ("NEWS2", 0, "low", False)
    assert s.missing == [] and s.inferred == []
    assert tuple(s.parameters) == NEWS2_PARAMETERS


@pytest.mark.parametrize(
    "total,single3,band",
    [
        (0, False, "low"),
        (4, False, "low"),
        (3, True, "low-medium"),
        (4, True, "low-medium"),
        (5, False, "medium"),
        (6, True, "medium"),
        (7, False, "high"),
        (20, True, "high"),
    ],
)
def test_news2_band_table(total, single3, band):
    assert news2_band(total, single3) == band


def test_single_parameter_3_gives_low_medium():
    s = news2(obs(resp_rate=7))  # RR <= 8 -> 3, everything else 0
    assert s.total == 3 and s.single_parameter_3 and s.band == "low-medium"


def test_total_four_without_a_three_is_low():
    s = news2(obs(resp_rate=22, hr=115))  # 2 + 2
    assert s.total == 4 and not s.single_parameter_3 and s.band == "low"


def test_medium_and_high():
    assert news2(obs(resp_rate=22, hr=115, temp_c=38.5)).band == "medium"  # 5
    s = news2(obs(resp_rate=22, hr=115, temp_c=39.5, on_oxygen=True))  # 2+2+2+2 = 8
    assert s.total == 8 and s.band == "high"


def test_single_three_flag_kept_in_higher_bands():
    s = news2(obs(sbp=85, hr=115))  # 3 + 2
    assert s.total == 5 and s.band == "medium" and s.single_parameter_3


def test_worked_example_septic_patient():
    # RR 24 (2), SpO2 93 (2), O2 (2), SBP 98 (2), HR 118 (2), confused (3), temp 38.6 (1) = 14
    s = news2(Observations(resp_rate=24, spo2=93, on_oxygen=True, sbp=98, hr=118, acvpu=1, temp_c=38.6))
    assert s.parameters == {
        "respiration_rate": 2,
        "spo2": 2,
        "air_or_oxygen": 2,
        "systolic_bp": 2,
        "pulse": 2,
        "consciousness": 3,
        "temperature": 1,
    }
    assert s.total == 14 and s.band == "high"


# --- missing and inferred ------------------------------------------------------------------------


def test_all_missing_is_a_lower_bound_not_normal():
    s = news2(Observations())
    assert s.total == 0
    assert s.missing == list(NEWS2_PARAMETERS)
    assert all(v == 0 for v in s.parameters.values())


def test_missing_parameters_listed_and_score_zero():
    s = news2(obs(resp_rate=None, temp_c=None))
    assert s.missing == ["respiration_rate", "temperature"]
    assert s.parameters["respiration_rate"] == 0 and s.parameters["temperature"] == 0


def test_gcs_stands_in_for_acvpu_and_is_inferred():
    s = news2(obs(acvpu=None, gcs=14))
    assert s.parameters["consciousness"] == 3 and "consciousness" in s.inferred
    s = news2(obs(acvpu=None, gcs=15))
    assert s.parameters["consciousness"] == 0 and "consciousness" in s.inferred
    # ACVPU wins when both are charted
    s = news2(obs(acvpu=0, gcs=13))
    assert s.parameters["consciousness"] == 0 and s.inferred == []


def test_row_from_physionet_lacks_consciousness_and_infers_oxygen():
    row = {
        "HR": 95.0,
        "O2Sat": 94.0,
        "Temp": 38.3,
        "SBP": 105.0,
        "Resp": 22.0,
        "FiO2": 0.4,
        "MAP": 70.0,
        "WBC": float("nan"),
    }
    o = observations_from_row(row)
    assert o.on_oxygen is True and o.on_oxygen_inferred and o.wbc is None and o.gcs is None
    s = news2(o)
    assert "consciousness" in s.missing
    assert s.inferred == ["air_or_oxygen"] and s.parameters["air_or_oxygen"] == 2
    # 2 (RR 22) + 1 (SpO2 94) + 2 (O2) + 1 (SBP 105) + 1 (HR 95) + 0 + 1 (38.3) = 8
    assert s.total == 8


def test_row_fio2_room_air_is_inferred_air():
    o = observations_from_row({"FiO2": 0.21})
    assert o.on_oxygen is False and o.on_oxygen_inferred
    s = news2(o)
    assert s.parameters["air_or_oxygen"] == 0 and "air_or_oxygen" in s.inferred


def test_row_supplemental_o2_wins_over_fio2():
    o = observations_from_row({"SupplementalO2": 0.0, "FiO2": 0.5})
    assert o.on_oxygen is False and not o.on_oxygen_inferred
    assert news2(o).inferred == []


def test_row_without_oxygen_information_is_missing():
    o = observations_from_row({"FiO2": math.nan})
    assert o.on_oxygen is None
    assert "air_or_oxygen" in news2(o).missing


def test_row_assessments():
    o = observations_from_row({"ACVPU": 2.0, "GCS": 12.0, "HypercapnicRespFailure": 1.0, "SupplementalO2": 1})
    assert o.acvpu == 2 and o.gcs == 12 and o.hypercapnic and o.on_oxygen is True


def test_scale2_oxygen_unknown_scores_as_air_and_lists_missing():
    s = news2(obs(spo2=97, on_oxygen=None, hypercapnic=True))
    assert s.parameters["spo2"] == 0 and "air_or_oxygen" in s.missing


# --- qSOFA (Seymour 2016) ------------------------------------------------------------------------


@pytest.mark.parametrize("rr,expected", [(21, 0), (21.4, 0), (21.5, 1), (22, 1), (30, 1)])
def test_qsofa_resp_rate(rr, expected):
    assert qsofa(obs(resp_rate=rr, gcs=15)).parameters["resp_rate"] == expected


@pytest.mark.parametrize("sbp,expected", [(100, 1), (100.4, 1), (100.5, 0), (101, 0), (80, 1)])
def test_qsofa_sbp(sbp, expected):
    assert qsofa(obs(sbp=sbp, gcs=15)).parameters["sbp"] == expected


@pytest.mark.parametrize("gcs,expected", [(15, 0), (14, 1), (3, 1)])
def test_qsofa_mentation(gcs, expected):
    assert qsofa(obs(gcs=gcs)).parameters["mentation"] == expected


def test_qsofa_positive_at_two():
    assert not qsofa(obs(resp_rate=22, gcs=15)).positive
    s = qsofa(obs(resp_rate=22, sbp=100, gcs=15))
    assert s.total == 2 and s.positive
    assert qsofa(obs(resp_rate=22, sbp=90, gcs=10)).total == 3


def test_qsofa_mentation_from_acvpu_is_inferred_and_missing_listed():
    s = qsofa(Observations(acvpu=1))
    assert s.parameters["mentation"] == 1 and s.inferred == ["mentation"]
    assert s.missing == ["resp_rate", "sbp"] and s.positive is False


# --- SIRS (Bone 1992) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "temp,expected", [(35.9, 1), (36.0, 0), (37.0, 0), (38.0, 0), (38.04, 0), (38.05, 1), (38.1, 1)]
)
def test_sirs_temperature(temp, expected):
    assert sirs(Observations(temp_c=temp)).parameters["temperature"] == expected


@pytest.mark.parametrize("hr,expected", [(90, 0), (90.4, 0), (91, 1)])
def test_sirs_heart_rate(hr, expected):
    assert sirs(Observations(hr=hr)).parameters["heart_rate"] == expected


@pytest.mark.parametrize(
    "rr,paco2,expected",
    [(20, None, 0), (21, None, 1), (None, 32, 0), (None, 31, 1), (18, 31, 1), (18, 40, 0), (24, 40, 1)],
)
def test_sirs_respiratory(rr, paco2, expected):
    s = sirs(Observations(resp_rate=rr, paco2=paco2))
    assert s.parameters["respiratory"] == expected and "respiratory" not in s.missing


@pytest.mark.parametrize("wbc,expected", [(3.9, 1), (4.0, 0), (12.0, 0), (12.1, 1), (25, 1)])
def test_sirs_wbc(wbc, expected):
    assert sirs(Observations(wbc=wbc)).parameters["wbc"] == expected


def test_sirs_positive_at_two_and_missing():
    s = sirs(Observations(temp_c=38.5))
    assert s.total == 1 and s.positive is False
    assert s.missing == ["heart_rate", "respiratory", "wbc"]
    s = sirs(Observations(temp_c=38.5, hr=100))
    assert s.total == 2 and s.positive
    assert sirs(Observations(temp_c=35, hr=120, resp_rate=25, wbc=2)).total == 4


# --- properties ----------------------------------------------------------------------------------

maybe = lambda lo, hi: st.none() | st.floats(lo, hi, allow_nan=False)  # noqa: E731

observations = st.builds(
    Observations,
    resp_rate=maybe(0, 80),
    spo2=maybe(50, 100),
    temp_c=maybe(25, 45),
    sbp=maybe(40, 300),
    hr=maybe(0, 250),
    gcs=st.none() | st.integers(3, 15).map(float),
    acvpu=st.none() | st.integers(0, 4),
    on_oxygen=st.none() | st.booleans(),
    hypercapnic=st.booleans(),
    wbc=maybe(0, 60),
    paco2=maybe(5, 120),
)


@given(observations)
def test_totals_are_sums_of_parameters(o):
    for score in (news2(o), qsofa(o), sirs(o)):
        assert score.total == sum(score.parameters.values())
        assert set(score.missing) <= set(score.parameters)
        assert all(score.parameters[m] == 0 for m in score.missing)
    n = news2(o)
    assert 0 <= n.total <= 20 and all(0 <= p <= 3 for p in n.parameters.values())
    assert n.single_parameter_3 == (3 in n.parameters.values())
    assert n.band == news2_band(n.total, n.single_parameter_3)


@given(observations, st.floats(0, 40), st.floats(0, 40))
def test_news2_monotone_away_from_the_normal_row(o, a, b):
    lo, hi = sorted((a, b))
    # Rising above the normal row never lowers the score; falling below it never lowers it either.
    rr = lambda v: news2(Observations(resp_rate=v)).total  # noqa: E731
    assert rr(16 + lo) <= rr(16 + hi) and rr(16 - lo / 3) <= rr(16 - hi / 3)
    hr = lambda v: news2(Observations(hr=v)).total  # noqa: E731
    assert hr(70 + lo * 3) <= hr(70 + hi * 3) and hr(70 - lo) <= hr(70 - hi)
    t = lambda v: news2(Observations(temp_c=v)).total  # noqa: E731
    assert t(37 + lo / 8) <= t(37 + hi / 8) and t(37 - lo / 8) <= t(37 - hi / 8)
    sp = lambda v: news2(Observations(spo2=v)).total  # noqa: E731
    assert sp(100 - lo) <= sp(100 - hi)
    bp = lambda v: news2(Observations(sbp=v)).total  # noqa: E731
    assert bp(150 - lo * 2) <= bp(150 - hi * 2)


@given(observations)
def test_news2_oxygen_never_lowers_the_score(o):
    from dataclasses import replace

    on_air = news2(replace(o, on_oxygen=False, on_oxygen_inferred=False))
    on_o2 = news2(replace(o, on_oxygen=True, on_oxygen_inferred=False))
    assert on_o2.total >= on_air.total + 2


@given(observations)
def test_filling_a_missing_parameter_never_lowers_news2(o):
    from dataclasses import replace

    base = news2(replace(o, resp_rate=None))
    for v in (5, 10, 16, 22, 30):
        assert news2(replace(o, resp_rate=v)).total >= base.total
