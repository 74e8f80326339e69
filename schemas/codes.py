"""Canonical observation codes and their canonical units.

Vigil's canonical code for a vital sign or lab is the PhysioNet/CinC 2019 column name, so one
feature path serves training (PhysioNet files), offline prediction and the stream. Every event is
normalized to the canonical unit of its code once, at ingest (see ``schemas.units``).
"""

from __future__ import annotations

from typing import Final, Literal

EventKind = Literal["vital", "lab", "demographic", "treatment", "assessment", "encounter"]

# code -> (kind, canonical UCUM-ish unit, plausible physiological range in canonical unit)
# Ranges reject impossible values (sensor faults, unit mix-ups) at ingest; they are wide on
# purpose: an extreme-but-real value must reach the clinician, an impossible one the dead letters.
VITALS: Final[dict[str, tuple[str, tuple[float, float]]]] = {
    "HR": ("/min", (0.0, 350.0)),
    "O2Sat": ("%", (0.0, 100.0)),
    "Temp": ("Cel", (15.0, 46.0)),
    "SBP": ("mm[Hg]", (0.0, 350.0)),
    "MAP": ("mm[Hg]", (0.0, 300.0)),
    "DBP": ("mm[Hg]", (0.0, 300.0)),
    "Resp": ("/min", (0.0, 120.0)),
    "EtCO2": ("mm[Hg]", (0.0, 150.0)),
}

LABS: Final[dict[str, tuple[str, tuple[float, float]]]] = {
    "BaseExcess": ("mmol/L", (-60.0, 60.0)),
    "HCO3": ("mmol/L", (0.0, 80.0)),
    "FiO2": ("1", (0.21, 1.0)),
    "pH": ("[pH]", (6.0, 8.0)),
    "PaCO2": ("mm[Hg]", (0.0, 200.0)),
    "SaO2": ("%", (0.0, 100.0)),
    "AST": ("U/L", (0.0, 50000.0)),
    "BUN": ("mg/dL", (0.0, 400.0)),
    "Alkalinephos": ("U/L", (0.0, 10000.0)),
    "Calcium": ("mg/dL", (0.0, 30.0)),
    "Chloride": ("mmol/L", (0.0, 200.0)),
    "Creatinine": ("mg/dL", (0.0, 40.0)),
    "Bilirubin_direct": ("mg/dL", (0.0, 80.0)),
    "Glucose": ("mg/dL", (0.0, 2000.0)),
    "Lactate": ("mmol/L", (0.0, 40.0)),
    "Magnesium": ("mg/dL", (0.0, 20.0)),
    "Phosphate": ("mg/dL", (0.0, 30.0)),
    "Potassium": ("mmol/L", (0.0, 15.0)),
    "Bilirubin_total": ("mg/dL", (0.0, 80.0)),
    "TroponinI": ("ng/mL", (0.0, 500.0)),
    "Hct": ("%", (0.0, 80.0)),
    "Hgb": ("g/dL", (0.0, 30.0)),
    "PTT": ("s", (0.0, 300.0)),
    "WBC": ("10*3/uL", (0.0, 500.0)),
    "Fibrinogen": ("mg/dL", (0.0, 2000.0)),
    "Platelets": ("10*3/uL", (0.0, 3000.0)),
}

# Dynamic (hourly) variables in PhysioNet column order: the row layout of a patient window.
DYNAMIC_CODES: Final[tuple[str, ...]] = tuple(VITALS) + tuple(LABS)

DEMOGRAPHICS: Final[dict[str, tuple[str, tuple[float, float]]]] = {
    "Age": ("a", (0.0, 120.0)),
    "Gender": ("1", (0.0, 1.0)),  # PhysioNet: 1 male, 0 female
    "Unit1": ("1", (0.0, 1.0)),
    "Unit2": ("1", (0.0, 1.0)),
    "HospAdmTime": ("h", (-100000.0, 100000.0)),
}

# Bedside assessments that PhysioNet lacks but a real EHR sends (NEWS2 needs them).
ASSESSMENTS: Final[dict[str, tuple[str, tuple[float, float]]]] = {
    # ACVPU coded 0=Alert, 1=new Confusion, 2=Voice, 3=Pain, 4=Unresponsive (RCP NEWS2 2017)
    "ACVPU": ("{ACVPU}", (0.0, 4.0)),
    "GCS": ("{score}", (3.0, 15.0)),
    # 1 = on supplemental oxygen (any device), 0 = room air
    "SupplementalO2": ("1", (0.0, 1.0)),
    # 1 = patient has confirmed hypercapnic respiratory failure: use NEWS2 SpO2 scale 2
    "HypercapnicRespFailure": ("1", (0.0, 1.0)),
}

# Treatments (Surviving Sepsis Campaign 2021 hour-1 bundle, NEWS2 clinical response).
# value is the dose in the canonical unit (1 for events without a dose).
TREATMENTS: Final[dict[str, tuple[str, tuple[float, float]]]] = {
    "antibiotic": ("1", (0.0, 1.0e6)),
    "blood_culture": ("1", (0.0, 1.0e6)),
    "lactate_ordered": ("1", (0.0, 1.0e6)),
    "crystalloid_ml": ("mL", (0.0, 20000.0)),
    # up to dopamine's 20 ug/kg/min and beyond (a high dose is a dose, not a typing error): 15 was refused
    "vasopressor": ("ug/kg/min", (0.0, 50.0)),
    "oxygen": ("L/min", (0.0, 80.0)),
    "clinician_review": ("1", (0.0, 1.0e6)),
    "observation_set": ("1", (0.0, 1.0e6)),
    "weight_kg": ("kg", (0.3, 500.0)),
}

# The patient's stay (ADT). ``discharge``: the stay Vigil scores has ended (discharged, died; HL7v2
# ADT^A03, FHIR Encounter ``finished``). ``transfer_out``: the patient left the monitored units for a
# ward (HL7v2 ADT^A02 out of them, or out of theatre after them): it ends an open stay as a
# discharge does, and ends nothing (a ``no_open_stay`` dead letter, no error) for a patient Vigil
# holds no open stay of. Either way the stay's alert is resolved and its state ended
# (``models.stays``). ``cancel_discharge``: the discharge was an error (HL7v2 ADT^A13): the stay goes
# on, with its history. ``cancel_transfer``: the transfer was (HL7v2 ADT^A12 back into the units): it
# resumes the stay a ``transfer_out`` ended, and resumes nothing (``no_open_stay``) where that
# transfer ended no stay. ``cancel_admit``: the admission was entered in error, or the patient was
# not admitted after all (HL7v2 ADT^A11, FHIR Encounter ``cancelled`` / ``entered-in-error``): it ends
# the stay whose events name the visit it cancels, and no other. The value is 1: the event is the fact.
ENCOUNTERS: Final[dict[str, tuple[str, tuple[float, float]]]] = {
    "discharge": ("1", (1.0, 1.0)),
    "transfer_out": ("1", (1.0, 1.0)),
    "cancel_admit": ("1", (1.0, 1.0)),
    "cancel_discharge": ("1", (1.0, 1.0)),
    "cancel_transfer": ("1", (1.0, 1.0)),
}
DISCHARGE: Final = "discharge"
TRANSFER_OUT: Final = "transfer_out"
CANCEL_ADMIT: Final = "cancel_admit"
CANCEL_DISCHARGE: Final = "cancel_discharge"
CANCEL_TRANSFER: Final = "cancel_transfer"
STAY_ENDS: Final = frozenset({DISCHARGE, TRANSFER_OUT, CANCEL_ADMIT})  # the codes that end a stay
STAY_CANCELS: Final = frozenset({CANCEL_DISCHARGE, CANCEL_TRANSFER})  # and those that undo an end

CATALOGUE: Final[dict[str, tuple[EventKind, str, tuple[float, float]]]] = {
    **{c: ("vital", u, r) for c, (u, r) in VITALS.items()},
    **{c: ("lab", u, r) for c, (u, r) in LABS.items()},
    **{c: ("demographic", u, r) for c, (u, r) in DEMOGRAPHICS.items()},
    **{c: ("assessment", u, r) for c, (u, r) in ASSESSMENTS.items()},
    **{c: ("treatment", u, r) for c, (u, r) in TREATMENTS.items()},
    **{c: ("encounter", u, r) for c, (u, r) in ENCOUNTERS.items()},
}


def canonical_unit(code: str) -> str:
    return CATALOGUE[code][1]


def plausible_range(code: str) -> tuple[float, float]:
    return CATALOGUE[code][2]
