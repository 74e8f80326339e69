"""Rule-based early-warning scores: NEWS2, qSOFA and SIRS (pure functions, no I/O).

Sources:
- NEWS2: Royal College of Physicians. National Early Warning Score (NEWS) 2: Standardising the
  assessment of acute-illness severity in the NHS. Updated report of a working party. London: RCP, 2017
  (chart 1 "The NEWS scoring system", chart 2 thresholds and triggers).
- qSOFA: Seymour CW et al. Assessment of clinical criteria for sepsis (Sepsis-3). JAMA 2016;315:762-74;
  Singer M et al. The Third International Consensus Definitions for Sepsis and Septic Shock. JAMA 2016.
- SIRS: Bone RC et al. ACCP/SCCM Consensus Conference. Definitions for sepsis and organ failure.
  Chest 1992;101:1644-55.

Conventions shared by the three scores (Vigil's, documented here and in ``docs/treatment.md``):

- **Missing is not normal.** A parameter the data lack scores 0 and is listed in ``missing``; the
  total is then a *lower bound* on the true score (and ``positive=False`` for qSOFA/SIRS means "not
  shown positive", not "negative").
- **Charted precision.** The published charts are written at the precision a nurse records: whole
  numbers for respiration rate, SpO2, blood pressure, pulse, PaCO2; one decimal for temperature and
  WBC. A value between two chart rows (RR 11.5, temp 36.05) is first rounded to that precision,
  half away from zero (11.5 -> 12, 36.05 -> 36.1, using the decimal value as written, not the binary
  float), then looked up. The same charted value feeds NEWS2, qSOFA and SIRS, so the three never
  disagree about whether RR 21.6 is "22".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# charted precision lives in schemas.display, which writes the values the cards show: one rounding
from vigil.schemas.display import charted
from vigil.schemas.scores import News2Band, RuleScore

__all__ = [
    "Observations",
    "observations_from_row",
    "news2",
    "news2_band",
    "qsofa",
    "sirs",
    "charted",
    "NEWS2_PARAMETERS",
]

# Order of the NEWS2 chart (RCP 2017, chart 1).
NEWS2_PARAMETERS: tuple[str, ...] = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

ROOM_AIR_FIO2 = 0.21


@dataclass(frozen=True)
class Observations:
    """One patient's latest observations in canonical units (``None`` = not measured)."""

    resp_rate: float | None = None  # breaths/min
    spo2: float | None = None  # %
    temp_c: float | None = None  # degrees Celsius
    sbp: float | None = None  # mmHg
    hr: float | None = None  # beats/min
    map_mmhg: float | None = None
    fio2: float | None = None  # fraction 0.21-1
    wbc: float | None = None  # 10^3/uL
    paco2: float | None = None  # mmHg
    gcs: float | None = None  # 3-15
    acvpu: int | None = None  # 0=Alert, 1=new Confusion, 2=Voice, 3=Pain, 4=Unresponsive
    on_oxygen: bool | None = None
    hypercapnic: bool = False  # confirmed hypercapnic respiratory failure: NEWS2 SpO2 scale 2
    on_oxygen_inferred: bool = False  # on_oxygen was derived from FiO2, not charted


def _value(row: Mapping[str, float], code: str) -> float | None:
    raw = row.get(code)
    if raw is None:
        return None
    value = float(raw)
    return None if math.isnan(value) else value


def observations_from_row(row: Mapping[str, float]) -> Observations:
    """Observations from a canonical-coded row (PhysioNet column names; NaN or absent = missing).

    Supplemental oxygen: the ``SupplementalO2`` assessment when charted; otherwise inferred from
    ``FiO2`` (a fraction): FiO2 > 0.21 means oxygen is being given, FiO2 = 0.21 means room air
    (``on_oxygen_inferred`` is then set, and NEWS2 lists ``air_or_oxygen`` under ``inferred``).
    With neither, oxygen is unknown. PhysioNet/CinC 2019 has FiO2 but no SupplementalO2, ACVPU or GCS.
    """
    fio2 = _value(row, "FiO2")
    supplemental = _value(row, "SupplementalO2")
    on_oxygen: bool | None
    inferred = False
    if supplemental is not None:
        on_oxygen = supplemental >= 0.5
    elif fio2 is not None:
        on_oxygen = fio2 > ROOM_AIR_FIO2 + 1e-9
        inferred = True
    else:
        on_oxygen = None
    acvpu = _value(row, "ACVPU")
    hypercapnic = _value(row, "HypercapnicRespFailure")
    return Observations(
        resp_rate=_value(row, "Resp"),
        spo2=_value(row, "O2Sat"),
        temp_c=_value(row, "Temp"),
        sbp=_value(row, "SBP"),
        hr=_value(row, "HR"),
        map_mmhg=_value(row, "MAP"),
        fio2=fio2,
        wbc=_value(row, "WBC"),
        paco2=_value(row, "PaCO2"),
        gcs=_value(row, "GCS"),
        acvpu=None if acvpu is None else int(round(acvpu)),
        on_oxygen=on_oxygen,
        hypercapnic=bool(hypercapnic is not None and hypercapnic >= 0.5),
        on_oxygen_inferred=inferred,
    )


# --- NEWS2 (RCP 2017, chart 1) -------------------------------------------------------------------


def _news2_resp_rate(rr: float) -> int:
    # RCP NEWS2 2017: <=8 -> 3, 9-11 -> 1, 12-20 -> 0, 21-24 -> 2, >=25 -> 3
    if rr <= 8:
        return 3
    if rr <= 11:
        return 1
    if rr <= 20:
        return 0
    if rr <= 24:
        return 2
    return 3


def _news2_spo2_scale1(spo2: float) -> int:
    # RCP NEWS2 2017 SpO2 scale 1: <=91 -> 3, 92-93 -> 2, 94-95 -> 1, >=96 -> 0
    if spo2 <= 91:
        return 3
    if spo2 <= 93:
        return 2
    if spo2 <= 95:
        return 1
    return 0


def _news2_spo2_scale2(spo2: float, on_oxygen: bool) -> int:
    # RCP NEWS2 2017 SpO2 scale 2 (target 88-92% in hypercapnic respiratory failure):
    # <=83 -> 3, 84-85 -> 2, 86-87 -> 1, 88-92 (or >=93 on air) -> 0,
    # 93-94 on oxygen -> 1, 95-96 on oxygen -> 2, >=97 on oxygen -> 3
    if spo2 <= 83:
        return 3
    if spo2 <= 85:
        return 2
    if spo2 <= 87:
        return 1
    if spo2 <= 92 or not on_oxygen:
        return 0
    if spo2 <= 94:
        return 1
    if spo2 <= 96:
        return 2
    return 3


def _news2_sbp(sbp: float) -> int:
    # RCP NEWS2 2017: <=90 -> 3, 91-100 -> 2, 101-110 -> 1, 111-219 -> 0, >=220 -> 3
    if sbp <= 90:
        return 3
    if sbp <= 100:
        return 2
    if sbp <= 110:
        return 1
    if sbp <= 219:
        return 0
    return 3


def _news2_pulse(hr: float) -> int:
    # RCP NEWS2 2017: <=40 -> 3, 41-50 -> 1, 51-90 -> 0, 91-110 -> 1, 111-130 -> 2, >=131 -> 3
    if hr <= 40:
        return 3
    if hr <= 50:
        return 1
    if hr <= 90:
        return 0
    if hr <= 110:
        return 1
    if hr <= 130:
        return 2
    return 3


def _news2_temperature(temp_c: float) -> int:
    # RCP NEWS2 2017: <=35.0 -> 3, 35.1-36.0 -> 1, 36.1-38.0 -> 0, 38.1-39.0 -> 1, >=39.1 -> 2
    if temp_c <= 35.0:
        return 3
    if temp_c <= 36.0:
        return 1
    if temp_c <= 38.0:
        return 0
    if temp_c <= 39.0:
        return 1
    return 2


def news2_band(total: int, single_parameter_3: bool) -> News2Band:
    """RCP NEWS2 2017 chart 2: 0-4 low (a single parameter scoring 3: low-medium), 5-6 medium, >=7 high."""
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    return "low-medium" if single_parameter_3 else "low"


def news2(obs: Observations) -> RuleScore:
    """NEWS2 exactly per the RCP 2017 chart, with missing parameters listed (total = lower bound).

    Consciousness: ACVPU when charted (Alert -> 0; new Confusion, Voice, Pain, Unresponsive -> 3).
    Without ACVPU, GCS stands in: GCS 15 -> Alert (0), GCS < 15 -> not alert (3), listed in
    ``inferred``. This is Vigil's mapping, not part of the RCP chart: RCP 2017 scores any new
    confusion/disorientation as 3, and GCS < 15 is the same "altered mentation" cut-off Sepsis-3 uses
    for qSOFA (Seymour 2016); a chronically reduced GCS will be over-called, which errs safe.
    SpO2 scale 2 is used only when ``hypercapnic`` is set (RCP 2017: scale 2 only for patients with
    confirmed hypercapnic respiratory failure, on a clinician's decision). On scale 2 with oxygen
    unknown, SpO2 >= 93 is scored as on air (0) and ``air_or_oxygen`` is listed as missing.
    """
    params: dict[str, int] = {}
    missing: list[str] = []
    inferred: list[str] = []

    def score(name: str, value: float | None, places: int, rule) -> None:  # type: ignore[no-untyped-def]
        if value is None:
            params[name] = 0
            missing.append(name)
        else:
            params[name] = rule(charted(value, places))

    score("respiration_rate", obs.resp_rate, 0, _news2_resp_rate)
    if obs.hypercapnic:
        on_o2 = bool(obs.on_oxygen)
        score("spo2", obs.spo2, 0, lambda v: _news2_spo2_scale2(v, on_o2))
    else:
        score("spo2", obs.spo2, 0, _news2_spo2_scale1)
    # RCP NEWS2 2017: supplemental oxygen -> 2, air -> 0
    if obs.on_oxygen is None:
        params["air_or_oxygen"] = 0
        missing.append("air_or_oxygen")
    else:
        params["air_or_oxygen"] = 2 if obs.on_oxygen else 0
        if obs.on_oxygen_inferred:
            inferred.append("air_or_oxygen")
    score("systolic_bp", obs.sbp, 0, _news2_sbp)
    score("pulse", obs.hr, 0, _news2_pulse)
    if obs.acvpu is not None:
        params["consciousness"] = 0 if obs.acvpu == 0 else 3
    elif obs.gcs is not None:
        params["consciousness"] = 0 if charted(obs.gcs) >= 15 else 3
        inferred.append("consciousness")
    else:
        params["consciousness"] = 0
        missing.append("consciousness")
    score("temperature", obs.temp_c, 1, _news2_temperature)

    total = sum(params.values())
    single3 = any(points == 3 for points in params.values())
    return RuleScore(
        name="NEWS2",
        total=total,
        parameters=params,
        missing=missing,
        inferred=inferred,
        band=news2_band(total, single3),
        single_parameter_3=single3,
    )


# --- qSOFA (Sepsis-3) ----------------------------------------------------------------------------


def _altered_mentation(obs: Observations) -> tuple[bool | None, bool]:
    """(altered, inferred): GCS < 15 (Seymour 2016); without GCS, ACVPU other than Alert."""
    if obs.gcs is not None:
        return charted(obs.gcs) < 15, False
    if obs.acvpu is not None:
        return obs.acvpu != 0, True
    return None, False


def qsofa(obs: Observations) -> RuleScore:
    """qSOFA (Seymour 2016, Sepsis-3): RR >= 22/min, SBP <= 100 mmHg, altered mentation (GCS < 15).

    One point each; ``positive`` when >= 2. Missing criteria score 0 and are listed.
    """
    params: dict[str, int] = {}
    missing: list[str] = []
    inferred: list[str] = []
    if obs.resp_rate is None:
        params["resp_rate"] = 0
        missing.append("resp_rate")
    else:
        params["resp_rate"] = int(charted(obs.resp_rate) >= 22)
    if obs.sbp is None:
        params["sbp"] = 0
        missing.append("sbp")
    else:
        params["sbp"] = int(charted(obs.sbp) <= 100)
    altered, was_inferred = _altered_mentation(obs)
    if altered is None:
        params["mentation"] = 0
        missing.append("mentation")
    else:
        params["mentation"] = int(altered)
        if was_inferred:
            inferred.append("mentation")
    total = sum(params.values())
    return RuleScore(
        name="qSOFA", total=total, parameters=params, missing=missing, inferred=inferred, positive=total >= 2
    )


# --- SIRS (ACCP/SCCM 1992) -----------------------------------------------------------------------


def sirs(obs: Observations) -> RuleScore:
    """SIRS (Bone 1992): temp > 38 or < 36 C; HR > 90; RR > 20 or PaCO2 < 32 mmHg; WBC > 12 or < 4.

    One point per criterion, ``positive`` when >= 2. The WBC criterion's ">10% immature bands" arm
    is unavailable (no band count in the data). A criterion with two inputs is missing only when
    both are.
    """
    params: dict[str, int] = {}
    missing: list[str] = []
    if obs.temp_c is None:
        params["temperature"] = 0
        missing.append("temperature")
    else:
        t = charted(obs.temp_c, 1)
        params["temperature"] = int(t > 38.0 or t < 36.0)
    if obs.hr is None:
        params["heart_rate"] = 0
        missing.append("heart_rate")
    else:
        params["heart_rate"] = int(charted(obs.hr) > 90)
    if obs.resp_rate is None and obs.paco2 is None:
        params["respiratory"] = 0
        missing.append("respiratory")
    else:
        tachypnoea = obs.resp_rate is not None and charted(obs.resp_rate) > 20
        hypocapnia = obs.paco2 is not None and charted(obs.paco2) < 32
        params["respiratory"] = int(tachypnoea or hypocapnia)
    if obs.wbc is None:
        params["wbc"] = 0
        missing.append("wbc")
    else:
        w = charted(obs.wbc, 1)
        params["wbc"] = int(w > 12.0 or w < 4.0)
    total = sum(params.values())
    return RuleScore(name="SIRS", total=total, parameters=params, missing=missing, positive=total >= 2)
