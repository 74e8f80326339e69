"""Unit normalization: every value is converted once, at ingest, to its code's canonical unit.

Conversion factors: temperature (exact), kPa->mmHg 7.50062, lactate mg/dL->mmol/L /9.008
(molar mass 90.08 g/mol), creatinine umol/L->mg/dL /88.42, bilirubin umol/L->mg/dL /17.1,
glucose mmol/L->mg/dL *18.016, BUN(urea nitrogen) mmol/L->mg/dL *2.801, calcium mmol/L->mg/dL *4.008,
magnesium mmol/L->mg/dL *2.431, phosphate mmol/L->mg/dL *3.097, hemoglobin g/L->g/dL /10;
mEq/L->mmol/L /2 for calcium and magnesium, 1:1 for the monovalent ions, refused for the others.

Vasopressor rates (canonical ug/kg/min): any rate is accepted, since no rule reads the rate, only when
the infusion started (``_vasopressor_rate``). A rate per kg per time converts (mg/kg/h, mcg/kg/min,
ug/(kg.min)...); any other (a weight-free 10 ug/min or 2 mg/h, vasopressin in U/min, a pump's mL/h)
cannot be put per kg per minute and is stored as 0 ug/kg/min: "running, rate not known per kg".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vigil.schemas.codes import CATALOGUE
from vigil.schemas.errors import VigilError


class UnitError(VigilError, ValueError):
    """The unit is unknown for this code, or cannot be converted to the canonical one."""


def _norm(unit: str) -> str:
    u = unit.strip().replace(" ", "")
    return {
        "°C": "Cel",
        "C": "Cel",
        "degC": "Cel",
        "cel": "Cel",
        "celsius": "Cel",
        "°F": "[degF]",
        "F": "[degF]",
        "degF": "[degF]",
        "fahrenheit": "[degF]",
        "mmHg": "mm[Hg]",
        "mmhg": "mm[Hg]",
        "bpm": "/min",
        "beats/min": "/min",
        "breaths/min": "/min",
        "min-1": "/min",
        "1/min": "/min",
        "{beats}/min": "/min",
        "{breaths}/min": "/min",
        "percent": "%",
        "pct": "%",
        "mmol/l": "mmol/L",
        "mEq/L": "meq/L",
        "meq/l": "meq/L",
        "mEq/l": "meq/L",
        "meq/L": "meq/L",
        "mg/dl": "mg/dL",
        "umol/l": "umol/L",
        "µmol/L": "umol/L",
        "μmol/L": "umol/L",
        "g/dl": "g/dL",
        "g/l": "g/L",
        "U/l": "U/L",
        "IU/L": "U/L",
        "[IU]/L": "U/L",
        "K/uL": "10*3/uL",
        "10^3/uL": "10*3/uL",
        "x10^9/L": "10*3/uL",
        "10*9/L": "10*3/uL",
        "10^9/L": "10*3/uL",
        "/nL": "10*3/uL",
        "thou/uL": "10*3/uL",
        "ml": "mL",
        "l": "L",
        "L/min": "L/min",
        "l/min": "L/min",
        "sec": "s",
        "seconds": "s",
        "fraction": "1",
        "pH": "[pH]",
        "": "",
    }.get(u, u)


# (code, from_unit) -> converter into the canonical unit
_CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("Temp", "[degF]"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("Temp", "K"): lambda v: v - 273.15,
    ("O2Sat", "1"): lambda v: v * 100.0,
    ("SaO2", "1"): lambda v: v * 100.0,
    ("FiO2", "%"): lambda v: v / 100.0,
    ("Hct", "1"): lambda v: v * 100.0,
    ("Lactate", "mg/dL"): lambda v: v / 9.008,
    ("Creatinine", "umol/L"): lambda v: v / 88.42,
    ("Bilirubin_total", "umol/L"): lambda v: v / 17.1,
    ("Bilirubin_direct", "umol/L"): lambda v: v / 17.1,
    ("Glucose", "mmol/L"): lambda v: v * 18.016,
    ("BUN", "mmol/L"): lambda v: v * 2.801,
    ("Calcium", "mmol/L"): lambda v: v * 4.008,
    ("Magnesium", "mmol/L"): lambda v: v * 2.431,
    ("Phosphate", "mmol/L"): lambda v: v * 3.097,
    ("Hgb", "g/L"): lambda v: v / 10.0,
    ("Hgb", "mmol/L"): lambda v: v * 1.611,
    ("Fibrinogen", "g/L"): lambda v: v * 100.0,
    ("TroponinI", "ng/L"): lambda v: v / 1000.0,
    ("PaCO2", "kPa"): lambda v: v * 7.50062,
    ("EtCO2", "kPa"): lambda v: v * 7.50062,
    ("SBP", "kPa"): lambda v: v * 7.50062,
    ("DBP", "kPa"): lambda v: v * 7.50062,
    ("MAP", "kPa"): lambda v: v * 7.50062,
    ("crystalloid_ml", "L"): lambda v: v * 1000.0,
}

# Body weight in kg per unit, looked up in any case: US charts weigh in pounds, neonatal ones in grams
# or ounces (UCUM [lb_av], g, [oz_av]; an avoirdupois pound is 0.45359237 kg exactly, an ounce 1/16 of
# it), and charts write them as they please ('Lbs', 'Lb', 'kgs', 'gm' were refused). No other code's
# units are read without case: 'M' and 'm' differ there.
_KG_PER_WEIGHT_UNIT = {
    **dict.fromkeys(("kg", "kgs"), 1.0),
    **dict.fromkeys(("g", "gm"), 1e-3),
    **dict.fromkeys(("lb", "lbs", "[lb_av]", "[lb_us]"), 0.45359237),
    **dict.fromkeys(("oz", "[oz_av]"), 0.028349523),
}


# Milliequivalents count charges: one mmol of a divalent ion is 2 mEq (calcium 5 mEq/L is 2.5 mmol/L,
# 10.0 mg/dL); of a monovalent one (potassium, chloride, bicarbonate, lactate, base) 1 mEq.
_CHARGE = {"Calcium": 2, "Magnesium": 2}
_MONOVALENT = {"Potassium", "Chloride", "HCO3", "Lactate", "BaseExcess"}


def _from_milliequivalents(code: str, value: float, unit: str) -> tuple[float, str]:
    """``value`` mEq/L as mmol/L; refused where the charge per molecule is not one the code has."""
    if code in _CHARGE:
        return value / _CHARGE[code], "mmol/L"
    if code in _MONOVALENT:
        return value, "mmol/L"
    raise UnitError(f"cannot convert {code} from {unit!r}: milliequivalents need the ion's charge")


# Vasopressor rates: micrograms per unit of mass, minutes per unit of time; amounts that are no mass
# (international units of vasopressin, a pump's volume) are rates too, not convertible per kg.
_MASS_UG = {"ng": 1e-3, "ug": 1.0, "mcg": 1.0, "µg": 1.0, "μg": 1.0, "mg": 1e3, "g": 1e6}
_NOT_MASS = {"u", "[iu]", "iu", "[u]", "mu", "units", "unit", "{units}", "ml", "l"}
_PER_MIN = {
    **dict.fromkeys(("min", "minute", "minutes"), 1.0),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 1.0 / 60.0),
    **dict.fromkeys(("s", "sec", "second", "seconds"), 60.0),
}


def _vasopressor_rate(value: float, unit: str) -> float | None:
    """A vasopressor rate in ug/kg/min: converted when per kg, 0 for any other rate (the start of the
    infusion is what the SSC 2018 hour-1 bundle item reads, and no rule reads the rate); None when
    ``unit`` is no rate. A noradrenaline infusion charted in mcg/min was refused, and the patient
    read as never started on a vasopressor."""
    # any case (MCG/MIN as mcg/min); UCUM ug/(kg.min)
    u = re.sub(r"\(kg\.(\w+)\)", r"kg/\1", unit.strip().replace(" ", "").lower())
    parts = u.split("/")
    if len(parts) == 3 and "kg" in (parts[1], parts[2]):
        amount, time = parts[0], parts[2] if parts[1] == "kg" else parts[1]
        per_kg = True
    elif len(parts) == 2:
        (amount, time), per_kg = parts, False
    else:
        return None
    per_min = _PER_MIN.get(time.lower())
    if per_min is None:
        return None
    if amount in _MASS_UG:
        return value * _MASS_UG[amount] * per_min if per_kg else 0.0
    return 0.0 if amount.lower() in _NOT_MASS else None


def to_canonical(code: str, value: float, unit: str) -> float:
    """Return ``value`` (given in ``unit``) in the canonical unit of ``code``.

    An empty unit is accepted only where the canonical unit is dimensionless or a count
    (EHR feeds often omit "1"), or a pH (HL7 labs send it with an empty OBX-6: a pH has no other
    unit to mistake it for); any other unknown unit raises ``UnitError``.
    """
    if code not in CATALOGUE:
        raise UnitError(f"unknown code {code!r}")
    canonical = CATALOGUE[code][1]
    u = _norm(unit)
    if u == "meq/L":
        value, u = _from_milliequivalents(code, value, unit)
    if u == canonical or (u == "" and canonical in ("1", "{score}", "{ACVPU}", "a", "h", "[pH]")):
        return value
    if code == "vasopressor" and (rate := _vasopressor_rate(value, unit)) is not None:
        return rate
    if code == "weight_kg" and (per_unit := _KG_PER_WEIGHT_UNIT.get(unit.strip().replace(" ", "").lower())):
        return value * per_unit
    try:
        return _CONVERSIONS[(code, u)](value)
    except KeyError:
        raise UnitError(f"cannot convert {code} from {unit!r} to {canonical!r}") from None
