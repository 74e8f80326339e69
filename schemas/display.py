"""How Vigil writes values for people: one wording for the dashboard, the terminal and alert reasons.

- risk as a percent (never a 0-1 probability), with the alert threshold beside it;
- times with date and zone, in the ward's time zone (``Settings.ward_timezone``);
- NEWS2 parameters and model features in clinical words ("RR 30 +3", "SBP 101 lowers risk"), each
  value written at the chart's precision with the rounding NEWS2 scores it with (``charted``), so a
  card never reads "RR 24 +3" for the RR 24.5 that scored as 25;
- explanations that are only about missing data or measurement habits are left out: they say how
  often a patient was measured, not what is wrong with them (PhysioNet 2019 README: sampling habits
  differ between hospitals).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from vigil.schemas.times import iana_zone

# --- charted precision (RCP NEWS2 2017, chart 1) -------------------------------------------------
# The published charts are written at the precision a nurse records: whole numbers for respiration
# rate, SpO2, blood pressure and pulse, one decimal for temperature. A value between two chart rows is
# rounded to that precision half away from zero on the decimal value as written (models.early_warning
# scores with these two functions; they live here, below models, so what is shown is what was scored).

_SINGLE = struct.Struct("f")


def as_written(value: float) -> str:
    """The decimal ``value`` was written as. The stream's window and the offline matrix keep values as
    float32, which come back widened: 35.05 returns as 35.04999923706055, and would chart as 35.0 (3
    points) instead of 35.1 (1). A float32 value reads as the decimal of at most 6 significant digits
    that stores as it, when there is one (FLT_DIG: such a decimal survives float32 unchanged)."""
    v = float(value)
    if not math.isfinite(v):
        return repr(v)
    try:
        packed = _SINGLE.pack(v)
    except OverflowError:  # beyond float32: never stored as one
        return repr(v)
    if _SINGLE.unpack(packed)[0] == v:
        short = f"{v:.6g}"
        if _SINGLE.pack(float(short)) == packed:
            return short
    return repr(v)


def charted(value: float, places: int = 0) -> float:
    """Round to the chart's precision, half away from zero, on the decimal value as written.

    ``Decimal(as_written(x))`` keeps 36.05 as 36.05 (the float is 36.04999...), so it charts as 36.1.
    """
    quantum = Decimal(1).scaleb(-places)
    try:
        return float(Decimal(as_written(value)).quantize(quantum, rounding=ROUND_HALF_UP))
    except InvalidOperation:  # past Decimal's 28 digits (1e28) or not finite: no chart row is there
        return float(value)


def charted_text(value: float | None, places: int = 0) -> str:
    """``value`` as the chart writes it: 24.5 -> "25", 38.05 (float32) -> "38.1"; "–" when absent."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{charted(value, places):.{places}f}"


# NEWS2 chart precision of a vital sign's code: one decimal for temperature, whole numbers otherwise
CHART_PLACES: dict[str, int] = {"Temp": 1}


def vital_text(code: str, value: float | None) -> str:
    """A vital sign as charted ("RR 25" for 24.5; temperature with one decimal)."""
    return charted_text(value, CHART_PLACES.get(code, 0))


# --- risk ----------------------------------------------------------------------------------------


def percent(probability: float | None) -> str:
    """0.243 -> "24%"; below 10 % one decimal ("3.1%") so a 3 % threshold is not read as 0 %."""
    if probability is None or not math.isfinite(probability):
        return "–"
    value = 100.0 * probability
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def risk_text(probability: float | None, threshold: float | None) -> str:
    """ "risk 24% (alert at 3.1%)": the one way risk is written."""
    text = f"risk {percent(probability)}"
    return f"{text} (alert at {percent(threshold)})" if threshold is not None else text


# --- time ----------------------------------------------------------------------------------------


def ward_zone(name: str) -> tzinfo:
    """The ward's time zone from its IANA name ("Europe/London"); a bad name is a user error."""
    return iana_zone(name, "VIGIL_WARD_TIMEZONE")


def clock(at: datetime | None, zone: tzinfo = UTC) -> str:
    """ "1 Dec 2026 09:30 CET": date, time and zone, in the ward's zone."""
    if at is None:
        return "–"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(zone)
    return f"{local.day} {local:%b %H:%M} {local.tzname() or ''}".rstrip()


def iso_local(at: datetime | None, zone: tzinfo = UTC) -> str | None:
    """ISO 8601 with the ward's offset (machines read this; people read ``clock``)."""
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(zone).isoformat(timespec="minutes")


def duration(minutes: float) -> str:
    """45 -> "45 min", 135 -> "2 h 15 min", 3000 -> "2 d 2 h"."""
    m = int(round(abs(minutes)))
    if m < 60:
        return f"{m} min"
    if m < 24 * 60:
        h, rest = divmod(m, 60)
        return f"{h} h {rest} min" if rest else f"{h} h"
    d, rest = divmod(m, 24 * 60)
    return f"{d} d {rest // 60} h" if rest // 60 else f"{d} d"


def until(minutes: float) -> str:
    """Time left before a deadline: "in 25 min", or "overdue by 1 h 5 min"."""
    return f"in {duration(minutes)}" if minutes >= 0 else f"overdue by {duration(minutes)}"


# --- NEWS2 in clinical words (RCP NEWS2 2017 chart 1) --------------------------------------------

# NEWS2 parameter -> (short clinical label, the vital-sign code its value comes from)
NEWS2_PARAMETERS: dict[str, tuple[str, str | None]] = {
    "respiration_rate": ("RR", "Resp"),
    "spo2": ("SpO2", "O2Sat"),
    "air_or_oxygen": ("on oxygen", None),
    "systolic_bp": ("SBP", "SBP"),
    "pulse": ("HR", "HR"),
    "consciousness": ("not alert (ACVPU/GCS)", None),
    "temperature": ("Temp", "Temp"),
}


def _value(v: float | None, code: str | None) -> str:
    if v is None or not math.isfinite(v) or code is None:
        return ""
    return f" {vital_text(code, v)}"


def news2_parts(parameters: Mapping[str, int], vitals: Mapping[str, float | None] | None = None) -> list[str]:
    """The parameters that scored, highest first: ["RR 30 +3", "SpO2 91 +2", "on oxygen +2"]."""
    vitals = vitals or {}
    scored = sorted(((p, n) for p, n in parameters.items() if n > 0), key=lambda pn: -pn[1])
    out = []
    for name, points in scored:
        label, code = NEWS2_PARAMETERS.get(name, (name, None))
        out.append(f"{label}{_value(vitals.get(code) if code else None, code)} +{points}")
    return out


def news2_text(
    total: int, band: str | None, parameters: Mapping[str, int], vitals: Mapping[str, float | None] | None = None
) -> str:
    """ "NEWS2 7 (high): RR 30 +3, SpO2 91 +2"."""
    parts = news2_parts(parameters, vitals)
    head = f"NEWS2 {total} ({band or 'unknown'})"
    return f"{head}: {', '.join(parts)}" if parts else head


def missing_text(missing: Iterable[str]) -> str:
    """ "not recorded: consciousness (NEWS2 may be higher)"; empty when nothing is missing."""
    names = [NEWS2_PARAMETERS.get(m, (m, None))[0].split(" (")[0] for m in missing]
    names = ["consciousness" if n == "not alert" else "oxygen" if n == "on oxygen" else n for n in names]
    return f"not recorded: {', '.join(names)} (NEWS2 may be higher)" if names else ""


# --- model features in clinical words ------------------------------------------------------------

CODE_LABELS: dict[str, str] = {
    "HR": "HR",
    "O2Sat": "SpO2",
    "Temp": "Temp",
    "SBP": "SBP",
    "MAP": "MAP",
    "DBP": "DBP",
    "Resp": "RR",
    "EtCO2": "EtCO2",
    "BaseExcess": "base excess",
    "HCO3": "bicarbonate",
    "FiO2": "FiO2",
    "pH": "pH",
    "PaCO2": "PaCO2",
    "SaO2": "SaO2",
    "AST": "AST",
    "BUN": "urea (BUN)",
    "Alkalinephos": "alkaline phosphatase",
    "Calcium": "calcium",
    "Chloride": "chloride",
    "Creatinine": "creatinine",
    "Bilirubin_direct": "direct bilirubin",
    "Glucose": "glucose",
    "Lactate": "lactate",
    "Magnesium": "magnesium",
    "Phosphate": "phosphate",
    "Potassium": "potassium",
    "Bilirubin_total": "bilirubin",
    "TroponinI": "troponin I",
    "Hct": "haematocrit",
    "Hgb": "haemoglobin",
    "PTT": "PTT",
    "WBC": "WBC",
    "Fibrinogen": "fibrinogen",
    "Platelets": "platelets",
    "Age": "age",
    "Gender": "sex",
    "shock_index": "shock index (HR/SBP)",
    "pulse_pressure": "pulse pressure",
    "spo2_fio2": "SpO2/FiO2 ratio",
    "bun_creatinine": "urea/creatinine ratio",
}
# explanation groups (whole measured panels, no single value)
GROUP_LABELS: dict[str, str] = {
    "blood_gas": "blood gas",
    "renal": "renal panel",
    "liver": "liver panel",
    "electrolytes": "electrolytes",
    "blood_count": "blood count",
    "coagulation": "coagulation",
}
# a model feature's statistic (models.stay_features: every variable's, the vital signs' window
# statistics) in words; the longest suffix that names a code before it wins ("Bilirubin_direct_max_stay")
STAT_LABELS: dict[str, str] = {
    "last": "",
    "max_stay": "highest this stay",
    "min_stay": "lowest this stay",
    "delta": "change since previous value",
    "from_baseline": "change from own baseline",
    "mean6h": "6 h mean",
    "mean24h": "24 h mean",
    "min24h": "24 h lowest",
    "max24h": "24 h highest",
    "std24h": "24 h variability (SD)",
    "slope12h": "12 h trend per hour",
    "diff1h": "change over 1 h",
    "diff6h": "change over 6 h",
    "diff12h": "change over 12 h",
    "trend24h": "change over 24 h",
}
# statistics that are a change or a spread, not a value as charted: written with a sign (a change) and
# to two significant digits, so a slope of 0.004 per hour is not "0.00"
CHANGE_STATS: frozenset[str] = frozenset(
    {"delta", "from_baseline", "slope12h", "diff1h", "diff6h", "diff12h", "trend24h"}
)
SPREAD_STATS: frozenset[str] = frozenset({"std24h", "slope12h"})
# the decimals a value is read at where the general rule misleads: a pH of 7.26 (acidaemia) must not
# read as a near-normal "7.3"; a shock index is read against 1.0 (1.05 is not "1.1"); lactate is
# reported in mmol/L to one decimal (Surviving Sepsis Campaign 2021: 2 mmol/L), not "1.00"
CODE_PLACES: dict[str, int] = {**CHART_PLACES, "pH": 2, "shock_index": 2, "Lactate": 1}
# about how often a patient is measured, not about the patient (site habits)
HABIT_PREFIX = "habit_"
_STATS_LONGEST_FIRST = tuple(sorted(STAT_LABELS, key=len, reverse=True))


def _split_feature(feature: str) -> tuple[str, str] | None:
    """ "Resp_min24h" -> ("Resp", "min24h"); None for a name that is not a code and a known statistic."""
    for stat in _STATS_LONGEST_FIRST:
        code = feature.removesuffix(f"_{stat}")
        if code != feature and code in CODE_LABELS:
            return code, stat
    return None


def feature_label(feature: str) -> str:
    """ "Resp_min24h" -> "RR 24 h lowest"; "HR" -> "HR"; unknown names are kept as they are."""
    if feature in CODE_LABELS:
        return CODE_LABELS[feature]
    if feature in GROUP_LABELS:
        return GROUP_LABELS[feature]
    split = _split_feature(feature)
    if split is not None:
        code, stat = split
        return f"{CODE_LABELS[code]} {STAT_LABELS[stat]}".strip()
    return feature.replace("_", " ")


def about_missing_data(feature: str, value: float | None) -> bool:
    """True for a contribution that only says something was not measured, or how often it was.
    (A panel group carries no single value, but the model saw it measured.)"""
    if feature.startswith(HABIT_PREFIX):
        return True
    if value is None:
        return feature not in GROUP_LABELS
    return not math.isfinite(value)


def _significant(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` significant digits, as many whole digits as it has, no trailing zeros:
    0.00423 -> "0.0042", 0.004 -> "0.004", 1.25 -> "1.3", 12.3 -> "12", 168 -> "168"."""
    if value == 0:
        return "0"
    places = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = charted_text(value, places)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _number(value: float, feature: str = "") -> str:
    """168 -> "168", 39.5 -> "39.5", 0.42 -> "0.42": enough digits to read a bedside value, rounded
    half away from zero as the chart is (100.5 -> "101", as NEWS2 scores it). A code's own decimals
    where it has them (pH 7.26), a spread or slope to two significant digits, a change with its sign."""
    split = _split_feature(feature)
    code, stat = split if split is not None else (feature, "")
    if not math.isfinite(value):
        return charted_text(value)
    if stat in SPREAD_STATS:
        text = _significant(value)
    elif code in CODE_PLACES:
        text = charted_text(value, CODE_PLACES[code])
    elif abs(value) >= 100 or value == int(value):
        text = charted_text(value, 0)
    else:
        text = charted_text(value, 1 if abs(value) >= 1 else 2)
    if float(text) == 0:
        # a small value (troponin 0.004, a pH change of 0.004, a lactate change of -0.03) is not "0.00"
        # or "-0.0", whatever the code's own decimals; a zero has no sign
        text = _significant(value) if value else text.lstrip("-")
    return f"+{text}" if stat in CHANGE_STATS and value > 0 and text.strip("0.") else text


def feature_parts(top_features: Iterable[Mapping[str, Any]], limit: int = 4) -> list[dict[str, Any]]:
    """The measured contributions in clinical words: [{"text": "SBP 101", "direction": "lowers risk"}].
    Two models may name the same measurement ("Temp" and "Temp_last"): it is shown once."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for f in top_features:
        name, value, contribution = f["feature"], f.get("value"), float(f.get("contribution") or 0.0)
        if about_missing_data(name, value) or contribution == 0:
            continue
        text = feature_label(name) + ("" if value is None else f" {_number(value, name)}")
        if text in seen:
            continue
        seen.add(text)
        out.append(
            {
                "text": text,
                "direction": "raises risk" if contribution > 0 else "lowers risk",
                "raises": contribution > 0,
            }
        )
        if len(out) >= limit:
            break
    return out
