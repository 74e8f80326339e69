"""The mapping: LOINC, IEEE 11073 (MDC) and site-local codes -> Vigil canonical codes and events.

This is the one table an integrator edits to onboard a feed (``docs/interop.md`` documents it;
``vigil convert`` shows what a file maps to and which codes are still unknown). The FHIR and
HL7v2 decoders both read it, and both build their events with ``canonical_event`` below, so a code
maps the same way whatever the wire format; units are converted and ranges checked once, after
decoding, by ``schemas.normalize.normalize_event`` (the same rules as JSON intake).

Sources: LOINC 2.7x (loinc.org), the FHIR R4 vital-signs profile (hl7.org/fhir/R4/observation-vitalsigns),
IEEE 11073-10101 nomenclature for bedside-monitor HL7v2 feeds, WHO ATC index (J01 = antibacterials for
systemic use; C01CA = adrenergic and dopaminergic agents; H01BA = vasopressin and analogues), RxNorm
ingredient concepts, SNOMED CT procedures.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Final

from pydantic import ValidationError

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.fhir_places import EncounterKey, Place, unit_at, ward_of
from vigil.schemas.codes import CATALOGUE, DYNAMIC_CODES
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import STRICT_ERROR_TYPES, PatientEvent, point_of_care
from vigil.schemas.normalize import normalize_event

LOINC_SYSTEM: Final = "http://loinc.org"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
ATC_SYSTEM: Final = "http://www.whocc.no/atc"
RXNORM_SYSTEM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
MDC_SYSTEM: Final = "urn:iso:std:iso:11073:10101"
# Vigil's own code system: the canonical code itself (``HR``, ``ACVPU``...). Lets a site send a
# value Vigil needs that has no LOINC code in its feed (ACVPU, supplemental oxygen) unambiguously.
VIGIL_SYSTEM: Final = "urn:vigil:code"

# LOINC -> canonical code. The FHIR vital-signs profile codes first, then labs (PhysioNet 2019 set).
LOINC_TO_CANONICAL: Final[dict[str, str]] = {
    # vital signs (FHIR R4 vital-signs profile)
    "9279-1": "Resp",  # Respiratory rate
    "8867-4": "HR",  # Heart rate
    # Oxygen saturation in Arterial blood: the FHIR vital-signs profile's SpO2 code, and what monitors
    # and interface engines send for SpO2, often alone; the model's SaO2 only from a laboratory's
    # blood gas (``saturation_code``)
    "2708-6": "O2Sat",
    "59408-5": "O2Sat",  # Oxygen saturation in Arterial blood by Pulse oximetry (SpO2)
    "8310-5": "Temp",  # Body temperature
    "8480-6": "SBP",  # Systolic blood pressure (component of 85354-9)
    "8462-4": "DBP",  # Diastolic blood pressure (component of 85354-9)
    "8478-0": "MAP",  # Mean blood pressure
    "19889-5": "EtCO2",  # Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration
    "9269-2": "GCS",  # Glasgow coma score total
    "3150-0": "FiO2",  # Inhaled oxygen concentration
    "3151-8": "oxygen",  # Inhaled oxygen flow rate (L/min): a treatment in Vigil
    "29463-7": "weight_kg",  # Body weight
    "3141-9": "weight_kg",  # Body weight Measured
    # labs
    "2524-7": "Lactate",  # Lactate [Moles/volume] in Serum or Plasma
    "32693-4": "Lactate",  # Lactate [Moles/volume] in Blood
    "6690-2": "WBC",  # Leukocytes [#/volume] in Blood by Automated count
    "2160-0": "Creatinine",  # Creatinine [Mass/volume] in Serum or Plasma
    "777-3": "Platelets",  # Platelets [#/volume] in Blood by Automated count
    "1975-2": "Bilirubin_total",  # Bilirubin.total [Mass/volume] in Serum or Plasma
    "1968-7": "Bilirubin_direct",  # Bilirubin.direct [Mass/volume] in Serum or Plasma
    "2019-8": "PaCO2",  # Carbon dioxide [Partial pressure] in Arterial blood
    "2744-1": "pH",  # pH of Arterial blood
    "1960-4": "HCO3",  # Bicarbonate [Moles/volume] in Arterial blood
    "1925-7": "BaseExcess",  # Base excess in Arterial blood by calculation
    "2345-7": "Glucose",  # Glucose [Mass/volume] in Serum or Plasma
    "2339-0": "Glucose",  # Glucose [Mass/volume] in Blood
    "2823-3": "Potassium",  # Potassium [Moles/volume] in Serum or Plasma
    "2075-0": "Chloride",  # Chloride [Moles/volume] in Serum or Plasma
    "3094-0": "BUN",  # Urea nitrogen [Mass/volume] in Serum or Plasma
    "17861-6": "Calcium",  # Calcium [Mass/volume] in Serum or Plasma
    "19123-9": "Magnesium",  # Magnesium [Mass/volume] in Serum or Plasma
    "2777-1": "Phosphate",  # Phosphate [Mass/volume] in Serum or Plasma
    "1920-8": "AST",  # Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma
    "6768-6": "Alkalinephos",  # Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
    "10839-9": "TroponinI",  # Troponin I.cardiac [Mass/volume] in Serum or Plasma
    "718-7": "Hgb",  # Hemoglobin [Mass/volume] in Blood
    "4544-3": "Hct",  # Hematocrit [Volume Fraction] of Blood by Automated count
    "3173-2": "PTT",  # aPTT in Blood by Coagulation assay
    "3255-7": "Fibrinogen",  # Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay
}

# Panels whose value lives in their components (or in separate member Observations).
PANEL_LOINC: Final[frozenset[str]] = frozenset(
    {
        "85354-9",  # Blood pressure panel with all children optional
        "55284-4",  # Blood pressure systolic and diastolic (pre-2016 panel code)
        "85353-1",  # Vital signs, weight, height, head circumference, oxygen saturation and BMI panel
        "8716-3",  # Vital signs (older panel code)
    }
)

# Saturation (``saturation_code``): LOINC 2708-6 is read as SaO2 only in a laboratory's blood gas, which
# an order or an Observation coded with one of these panels says (HL7v2 OBR-4, FHIR Observation.code).
ARTERIAL_SATURATION_LOINC: Final = "2708-6"
BLOOD_GAS_PANEL_LOINC: Final[frozenset[str]] = frozenset(
    {
        "24336-0",  # Gas panel - Arterial blood
        "24338-6",  # Gas panel - Blood
        "24341-0",  # Gas and carbon monoxide panel - Arterial blood
    }
)
# A FHIR Specimen of arterial blood: SNOMED CT 122552005 "Arterial blood specimen", HL7 table 0487 BLDA
ARTERIAL_BLOOD_SPECIMENS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        (SNOMED_SYSTEM, "122552005"),
        ("http://terminology.hl7.org/CodeSystem/v2-0487", "BLDA"),
        ("http://terminology.hl7.org/CodeSystem/v3-SpecimenType", "BLDA"),
    }
)

# IEEE 11073-10101 (MDC) codes as bedside monitors send them through device gateways
# (HL7v2 OBX-3 ``150456^MDC_PULS_OXIM_SAT_O2^MDC``; FHIR coding system urn:iso:std:iso:11073:10101).
MDC_TO_CANONICAL: Final[dict[str, str]] = {
    "147842": "HR",  # MDC_ECG_HEART_RATE
    "149530": "HR",  # MDC_PULS_OXIM_PULS_RATE (pulse rate from the oximeter)
    "150456": "O2Sat",  # MDC_PULS_OXIM_SAT_O2
    "151562": "Resp",  # MDC_RESP_RATE
    "150021": "SBP",  # MDC_PRESS_BLD_NONINV_SYS
    "150022": "DBP",  # MDC_PRESS_BLD_NONINV_DIA
    "150023": "MAP",  # MDC_PRESS_BLD_NONINV_MEAN
    "150017": "SBP",  # MDC_PRESS_BLD_ART_ABP_SYS
    "150018": "DBP",  # MDC_PRESS_BLD_ART_ABP_DIA
    "150019": "MAP",  # MDC_PRESS_BLD_ART_ABP_MEAN
}

# Site-local HL7v2 identifiers (OBX-3.1 with a local coding system such as ``L`` or ``99xxx``).
# An example of what a site adds for its own feed: the left side is what the EHR sends, upper-cased.
# The canonical codes themselves (``HR``, ``ACVPU``...) are always accepted as local codes.
LOCAL_TO_CANONICAL: Final[dict[str, str]] = {
    "PULSE": "HR",
    "HEARTRATE": "HR",
    "RR": "Resp",
    "RESPRATE": "Resp",
    "SPO2": "O2Sat",
    "TEMP": "Temp",
    "NIBP_SYS": "SBP",
    "NIBP_DIA": "DBP",
    "NIBP_MEAN": "MAP",
    "GCS_TOTAL": "GCS",
    "AVPU": "ACVPU",
    "SUPP_O2": "SupplementalO2",
    "O2_FLOW": "oxygen",
    "LACT": "Lactate",
    "CREAT": "Creatinine",
    "PLT": "Platelets",
    "TBIL": "Bilirubin_total",
}

# ACVPU as charted (RCP NEWS2 2017, chart 1): letter or word -> the canonical 0..4 scale.
ACVPU_VALUES: Final[dict[str, float]] = {
    "A": 0.0,
    "ALERT": 0.0,
    "C": 1.0,
    "CONFUSION": 1.0,
    "NEW CONFUSION": 1.0,
    "V": 2.0,
    "VOICE": 2.0,
    "P": 3.0,
    "PAIN": 3.0,
    "U": 4.0,
    "UNRESPONSIVE": 4.0,
}

# Yes/no as EHRs chart them (HL7 table 0136 Y/N, FHIR boolean) -> 1/0.
YES_NO_VALUES: Final[dict[str, float]] = {
    "Y": 1.0,
    "YES": 1.0,
    "TRUE": 1.0,
    "1": 1.0,
    "N": 0.0,
    "NO": 0.0,
    "FALSE": 0.0,
    "0": 0.0,
}

# Unit spellings seen on the wire that ``schemas.units`` does not know, mapped to its UCUM form.
# MDC dimension names come from monitors (OBX-6 ``264864^MDC_DIM_BEAT_PER_MIN^MDC``).
UNIT_ALIASES: Final[dict[str, str]] = {
    "MDC_DIM_BEAT_PER_MIN": "/min",
    "MDC_DIM_RESP_PER_MIN": "/min",
    "MDC_DIM_PERCENT": "%",
    "MDC_DIM_MMHG": "mm[Hg]",
    "MDC_DIM_KILO_PASCAL": "kPa",
    "MDC_DIM_DEGC": "Cel",
    "MDC_DIM_FAHR": "[degF]",
    "beats/minute": "/min",
    "breaths/minute": "/min",
    "/min.": "/min",
    "mcg/kg/min": "ug/kg/min",
    "ug/kg/min": "ug/kg/min",
    "L/min": "L/min",
    "{score}": "{score}",
}

# --- treatments (Surviving Sepsis Campaign 2021 hour-1 bundle) ------------------------------

# ATC prefixes: a code starting with one of these is that treatment.
ATC_PREFIX_TO_TREATMENT: Final[dict[str, str]] = {
    "J01": "antibiotic",  # antibacterials for systemic use
    "C01CA03": "vasopressor",  # norepinephrine
    "C01CA24": "vasopressor",  # epinephrine
    "C01CA04": "vasopressor",  # dopamine
    "C01CA06": "vasopressor",  # phenylephrine
    "H01BA01": "vasopressor",  # vasopressin
    "B05BB01": "crystalloid_ml",  # electrolytes (saline, Ringer's, balanced solutions)
}

# RxNorm ingredient concepts (RXCUI).
RXNORM_TO_TREATMENT: Final[dict[str, str]] = {
    "11124": "antibiotic",  # vancomycin
    "2193": "antibiotic",  # ceftriaxone
    "29561": "antibiotic",  # meropenem
    "20481": "antibiotic",  # cefepime
    "8339": "antibiotic",  # piperacillin
    "82122": "antibiotic",  # levofloxacin
    "18631": "antibiotic",  # azithromycin
    "723": "antibiotic",  # amoxicillin
    "2551": "antibiotic",  # ciprofloxacin
    "6922": "antibiotic",  # metronidazole
    "7512": "vasopressor",  # norepinephrine
    "3992": "vasopressor",  # epinephrine
    "3628": "vasopressor",  # dopamine
    "8163": "vasopressor",  # phenylephrine
    "11149": "vasopressor",  # vasopressin
    "9863": "crystalloid_ml",  # sodium chloride
}

# Medication text (lower-case substring of code.text, coding.display or Medication display)
# when a feed sends no recognised code: ``treatment_for_texts``. A drug named in the text wins over
# the fluid it is diluted in (an EHR names an IV piggyback "piperacillin-tazobactam 4.5 g in sodium
# chloride 0.9 % 100 mL IVPB"), so the drugs are looked for first, each table in its order.
DRUG_TEXT_TO_TREATMENT: Final[tuple[tuple[str, str], ...]] = (
    ("norepinephrine", "vasopressor"),
    ("noradrenaline", "vasopressor"),
    ("epinephrine", "vasopressor"),
    ("adrenaline", "vasopressor"),
    ("vasopressin", "vasopressor"),
    ("phenylephrine", "vasopressor"),
    ("dopamine", "vasopressor"),
    ("piperacillin", "antibiotic"),
    ("tazocin", "antibiotic"),
    ("vancomycin", "antibiotic"),
    ("ceftriaxone", "antibiotic"),
    ("cefepime", "antibiotic"),
    ("meropenem", "antibiotic"),
    ("co-amoxiclav", "antibiotic"),
    ("amoxicillin", "antibiotic"),
    ("gentamicin", "antibiotic"),
    ("levofloxacin", "antibiotic"),
    ("ciprofloxacin", "antibiotic"),
    ("azithromycin", "antibiotic"),
    ("metronidazole", "antibiotic"),
)
# Crystalloids, read only where no drug is named, not as another drug's diluent and not from a text
# naming a local anaesthetic or a colloid (``_fluid_subject``): "magnesium sulfate 2 g in sodium
# chloride 0.9 % 50 mL" is a carrier, and its dose in g or mEq is no volume.
FLUID_TEXT_TO_TREATMENT: Final[tuple[tuple[str, str], ...]] = (
    ("sodium chloride", "crystalloid_ml"),
    ("normal saline", "crystalloid_ml"),
    ("lactated ringer", "crystalloid_ml"),
    ("ringer's lactate", "crystalloid_ml"),
    ("hartmann", "crystalloid_ml"),
    ("plasma-lyte", "crystalloid_ml"),
    ("plasmalyte", "crystalloid_ml"),
)
# A sugar before " in " makes a fluid of the whole ("dextrose 5 % in lactated ringer's", D5LR).
SUGAR_TEXT: Final[tuple[str, ...]] = ("dextrose", "glucose")
LOCAL_ANAESTHETIC_TEXT: Final[tuple[str, ...]] = (
    "lidocaine",
    "lignocaine",
    "xylocaine",
    "bupivacaine",
    "marcaine",
    "sensorcaine",
    "mepivacaine",
    "articaine",
    "prilocaine",
    "ropivacaine",
    "chloroprocaine",
    "tetracaine",
)
_ANAESTHETIC = "|".join(LOCAL_ANAESTHETIC_TEXT)
_JOINED = r"\s{0,3}(?:-|/|\+|\bwith\b|\bw/)\s{0,3}"
# Epinephrine that is no vasopressor: a local anaesthetic's, joined to it in the name
# ("lidocaine-epinephrine 1 %-1:100,000", "Xylocaine with adrenaline"), or at the strengths only
# infiltration uses (1:50,000, 1:80,000, 1:100,000, 1:200,000, 1:400,000; a code's 1:10,000 and
# 1:1,000 stay vasopressors) is a vasoconstrictor that keeps the anaesthetic where it was injected;
# racemic epinephrine is nebulised (croup). Cut out of the text before the drugs are looked for: the rest of it still
# names what it names (an antibiotic; "ACLS: epinephrine 1 mg IV and lidocaine 1.5 mg/kg" is a
# vasopressor, the anaesthetic not joined to it).
LOCAL_EPINEPHRINE = re.compile(
    rf"(?:{_ANAESTHETIC})[^;,]{{0,24}}?{_JOINED}(?:epinephrine|adrenaline)"
    # the US label's "and" only where it joins the two names ("lidocaine HCl and epinephrine",
    # "bupivacaine 0.5 % and epinephrine"): "lidocaine 100 mg IV and epinephrine 1 mg IV" is a code's
    rf"|(?:{_ANAESTHETIC})(?:\s{{1,3}}(?:hcl|hydrochloride))?(?:\s{{1,3}}[\d.]{{1,6}}\s{{0,3}}%)?"
    r"\s{1,3}and\s{1,3}(?:epinephrine|adrenaline)"
    rf"|\b(?:epinephrine|adrenaline){_JOINED}(?:{_ANAESTHETIC})"
    r"|\b(?:epinephrine|adrenaline)\s{0,3}1\s{0,3}:\s{0,3}(?:50|80|100|200|400)[,.]?000\b"
    r"|racepinephrine|racemic epinephrine"
)
# A dose by mass or amount: what is before " in " is a drug, what follows its diluent. Anchored at a
# number's first digit and bounded: unanchored, a text of 40,000 digits took 30 s to search
DRUG_DOSE = re.compile(
    r"(?<![\d,.])\d[\d,.]{0,15}\s{0,3}(?:mg|g|gm|grams?|mcg|µg|ug|micrograms?|milligrams?|meq|mmol|units?|iu)\b"
)
# Named in a text, no crystalloid is read from it: a local anaesthetic's carrier (an epidural's saline,
# tumescent Ringer's) and a colloid's (albumin in saline) are no resuscitation crystalloid
NOT_CRYSTALLOID_TEXT: Final[tuple[str, ...]] = (
    *LOCAL_ANAESTHETIC_TEXT,
    "albumin",
    "hetastarch",
    "hydroxyethyl starch",
    "voluven",
    "gelofusine",
    "dextran",
)


# SNOMED CT procedures -> canonical code (value 1 = it happened).
SNOMED_PROCEDURE_TO_CANONICAL: Final[dict[str, str]] = {
    "30088009": "blood_culture",  # Blood culture (procedure)
    # Oxygen therapy without a flow rate: NEWS2 only needs "on supplemental oxygen" (RCP 2017),
    # so the procedure sets SupplementalO2; a flow rate arrives as LOINC 3151-8 -> ``oxygen``.
    "57485005": "SupplementalO2",  # Oxygen therapy (procedure)
}


def canonical_for_coding(system: str | None, code: str | None) -> str | None:
    """The canonical code for one coding (FHIR ``Coding`` or HL7v2 CWE), or None if unmapped."""
    if not code:
        return None
    system = (system or "").strip()
    code = code.strip()
    if is_loinc(system):
        return LOINC_TO_CANONICAL.get(code)
    if system in (MDC_SYSTEM, "MDC"):
        return MDC_TO_CANONICAL.get(code)
    if system == VIGIL_SYSTEM:
        return code if _is_canonical(code) else None
    return None


def is_loinc(system: str | None) -> bool:
    """Whether a coding system names LOINC: FHIR's URI, HL7v2's ``LN``, or ``LOINC`` as some engines spell it."""
    return (system or "").strip() in (LOINC_SYSTEM, "LN", "LOINC")


def is_blood_gas_panel(system: str | None, code: str | None) -> bool:
    """Whether a coding is a blood gas panel (``BLOOD_GAS_PANEL_LOINC``): an order or Observation whose
    results are a laboratory's blood gas."""
    return is_loinc(system) and (code or "").strip() in BLOOD_GAS_PANEL_LOINC


def saturation_code(
    code: str | None, codings: Sequence[tuple[str | None, str | None]], *, blood_gas: bool
) -> str | None:
    """The canonical code of a saturation coded LOINC 2708-6 ("oxygen saturation in arterial blood"),
    the one rule of both codecs. ``code``: what the codings map to; ``codings``: (system, code) as
    sent; ``blood_gas``: whether the result says positively that it is a laboratory's blood gas
    (``fhir._blood_gas``, ``hl7v2``'s OBR-4 panel).

    ``O2Sat`` (the bedside SpO2, NEWS2's saturation: RCP NEWS2 2017) unless positively a blood gas,
    then the model's ``SaO2`` (set A's SaO2 is the blood gas). The FHIR vital-signs profile codes SpO2
    with 2708-6, and monitors and interface engines send it alone, without 59408-5 or a category:
    read as SaO2, their SpO2 left NEWS2 without its saturation (3 points at 86 % gone, silently) and
    filled the model's sparse blood-gas input at monitor rate. A pulse-oximetry coding beside it
    (59408-5, MDC 150456) keeps it SpO2 whatever its context."""
    if code != "O2Sat" or not blood_gas:
        return code
    arterial = [is_loinc(s) and (c or "").strip() == ARTERIAL_SATURATION_LOINC for s, c in codings]
    pulse_oximetry = any(
        not is_arterial and canonical_for_coding(s, c) == "O2Sat"
        for (s, c), is_arterial in zip(codings, arterial, strict=True)
    )
    return "SaO2" if any(arterial) and not pulse_oximetry else code


def canonical_for_local(code: str) -> str | None:
    """A site-local HL7v2 identifier -> canonical code (the table above, then the canonical names)."""
    code = code.strip()
    if not code:
        return None
    if _is_canonical(code):
        return code
    return LOCAL_TO_CANONICAL.get(code.upper())


def is_panel(system: str | None, code: str | None) -> bool:
    return (system or "") in (LOINC_SYSTEM, "LN") and (code or "") in PANEL_LOINC


def treatment_for_medication(system: str | None, code: str | None) -> str | None:
    if not code:
        return None
    code = code.strip()
    if system == ATC_SYSTEM:
        for prefix, treatment in ATC_PREFIX_TO_TREATMENT.items():
            if code.upper().startswith(prefix):
                return treatment
        return None
    if system == RXNORM_SYSTEM:
        return RXNORM_TO_TREATMENT.get(code)
    return None


def treatment_for_text(text: str | None) -> str | None:
    """The treatment one medication text names (``treatment_for_texts``)."""
    return treatment_for_texts([text])


def treatment_for_texts(texts: Iterable[str | None]) -> str | None:
    """The treatment a medication's texts name, when it came without a recognised code.

    A drug named in any of them wins over a fluid: an antibiotic or a vasopressor given in saline is
    that drug (read first-match over one table, "vancomycin 1,250 mg in sodium chloride 0.9 % 250 mL
    IVPB" was a crystalloid of 1,250 mg, dead-lettered ``unit``, and the antibiotic was lost). A local
    anaesthetic's epinephrine is no vasopressor (``LOCAL_EPINEPHRINE``). A fluid is read only where no
    drug is named, not as another drug's diluent (a dose by mass or amount before " in ", no fluid or
    sugar there), and not from a text naming a local anaesthetic or a colloid (``_fluid_subject``)."""
    lowered = [text.lower() for text in texts if text]
    drugs = [LOCAL_EPINEPHRINE.sub(" ", text) for text in lowered]
    for needle, treatment in DRUG_TEXT_TO_TREATMENT:
        if any(needle in text for text in drugs):
            return treatment
    subjects = [_fluid_subject(text) for text in lowered]
    for needle, treatment in FLUID_TEXT_TO_TREATMENT:
        if any(needle in subject for subject in subjects):
            return treatment
    return None


def _fluid_subject(lowered: str) -> str:
    """The part of a medication text a fluid named in it must be in to count: none when it names a
    local anaesthetic or a colloid (``NOT_CRYSTALLOID_TEXT``); before " in " when that part is a drug
    (a dose by mass or amount, ``DRUG_DOSE``) and names neither a fluid nor a sugar (D5LR is a
    fluid); else the whole text ("Bolus in ED: sodium chloride
    0.9 % 1,000 mL", "fluid challenge in sepsis - lactated ringer's" are the fluid)."""
    if any(name in lowered for name in NOT_CRYSTALLOID_TEXT):
        return ""
    before, sep, _ = lowered.partition(" in ")
    if not sep or any(needle in before for needle, _ in FLUID_TEXT_TO_TREATMENT):
        return lowered
    if any(sugar in before for sugar in SUGAR_TEXT):
        return lowered
    return before if DRUG_DOSE.search(before) else lowered


def unit_alias(unit: str) -> str:
    """Wire unit spelling -> the UCUM spelling ``schemas.units.to_canonical`` understands."""
    stripped = unit.strip()
    return UNIT_ALIASES.get(stripped, stripped)


def _is_canonical(code: str) -> bool:
    """A canonical code an observation may carry: a stay's end comes from ADT (HL7v2 ADT^A03) or an
    Encounter, never from an OBX or an Observation named ``discharge``."""
    return code in CATALOGUE and CATALOGUE[code][0] != "encounter"


# --- decoding outcome -------------------------------------------------------------------------


@dataclass
class DecodeResult:
    """What one payload decoded to. Every input is accounted for: it yields at least one event,
    rejection or ignored item (``accounted``), so nothing disappears silently.

    ``rejected`` goes to the dead letters (with the original bytes); ``ignored`` does not: it lists
    parts that are deliberately not mapped and are not errors (a vital-signs panel whose members
    arrive as their own Observations, a Patient resource giving context in a Bundle, an empty Bundle).
    ``unknown_codes`` counts codes by ``system|code`` so an integrator sees what to add to the table;
    ``ignored_units`` counts the messages ignored by point of care (``unmonitored_unit``), so an
    operator sees a unit missing from the monitored ones: its patients are not scored.
    ``encounters``: the units of each FHIR Encounter read (by patient and Encounter id), kept by the
    FHIR agent to place results sent apart from their Encounter (``fhir_places``); ``unplaced``: the
    results ``placed`` left without a unit because Vigil has read no Encounter of theirs (scored as
    if from a monitored unit).
    """

    events: list[PatientEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    unknown_codes: Counter[str] = field(default_factory=Counter)
    ignored: list[Rejected] = field(default_factory=list)
    ignored_units: Counter[str] = field(default_factory=Counter)
    encounters: dict[EncounterKey, tuple[Place, ...]] = field(default_factory=dict)
    unplaced: int = 0

    def add(self, outcome: PatientEvent | Rejected) -> None:
        """One decoded value: an event, or the reason it was refused."""
        if isinstance(outcome, PatientEvent):
            self.events.append(outcome)
        else:
            self.rejected.append(outcome)

    def extend(self, other: DecodeResult) -> None:
        self.events.extend(other.events)
        self.rejected.extend(other.rejected)
        self.ignored.extend(other.ignored)
        self.unknown_codes.update(other.unknown_codes)
        self.ignored_units.update(other.ignored_units)
        self.encounters.update(other.encounters)
        self.unplaced += other.unplaced

    @property
    def accounted(self) -> int:
        return len(self.events) + len(self.rejected) + len(self.ignored)

    def summary(self) -> dict[str, object]:
        return {
            "events": len(self.events),
            "rejected": len(self.rejected),
            "ignored": len(self.ignored),
            "reasons": dict(Counter(r.reason for r in self.rejected)),
            "unknown_codes": dict(self.unknown_codes),
            "ignored_units": dict(self.ignored_units),
        }

    def placed(self, kept: Mapping[EncounterKey, Sequence[Place]], units: Units) -> DecodeResult:
        """The same result with each FHIR result that came without a unit (its Encounter was not in
        the payload: ``needs_place``) placed by the units its Encounter had when an earlier payload
        carried it (``kept``, by patient and Encounter id): given its ward, or ignored (``unmonitored_unit``,
        counted by unit) as a result from a unit the site does not score. Results whose Encounter
        Vigil has not seen are left as they are: scored, without a ward, and counted (``unplaced``)."""
        out = replace(self, events=[], ignored=list(self.ignored), ignored_units=Counter(self.ignored_units))
        for event in self.events:
            places = kept.get((event.patient_id, event.encounter or "")) if needs_place(event) else None
            if not places:
                out.unplaced += needs_place(event)
                out.events.append(event)
                continue
            unit = unit_at(places, event.observed_at)
            elsewhere = units.scored(
                unit, f"{event.code} sent", "its Encounter's location, kept from an earlier payload"
            )
            if elsewhere is None:
                ward = ward_of(unit)
                out.events.append(event if ward is None else event.model_copy(update={"ward": ward}))
            else:
                out.ignored.append(elsewhere)
                out.ignored_units[point_of_care(unit)] += 1
        return out

    def checked(self, now: datetime) -> DecodeResult:
        """The same result after the intake rules (``normalize_event``: canonical unit, plausible
        range, clock skew): events that fail them move to ``rejected``. What ``vigil convert`` shows
        and what the interop agent publishes."""
        out = DecodeResult(
            [],
            list(self.rejected),
            Counter(self.unknown_codes),
            list(self.ignored),
            Counter(self.ignored_units),
            dict(self.encounters),
            self.unplaced,
        )
        for event in self.events:
            result = normalize_event(event, now)
            (out.rejected if isinstance(result, Rejected) else out.events).append(result)  # type: ignore[arg-type]
        return out


def needs_place(event: PatientEvent) -> bool:
    """A FHIR result (not a stay's end) that names its Encounter and came without a unit: placed by
    the Encounter's kept units (``DecodeResult.placed``)."""
    return event.source == "fhir" and event.kind != "encounter" and event.ward is None and event.encounter is not None


def event_id(source: str, key: str, part: str) -> str:
    """Deterministic event id: a replay of the same message or resource version yields the same
    ids, so downstream idempotent writes drop the duplicates."""
    return hashlib.sha256(f"{source}|{key}|{part}".encode()).hexdigest()[:32]


def canonical_event(
    *,
    source: str,
    key: str,
    part: str,
    patient_id: str,
    observed_at: datetime,
    code: str,
    value: float,
    unit: str,
    encounter: str | None = None,
    ward: str | None = None,
    where: str = "",
) -> PatientEvent | Rejected:
    """Build the event in the unit it was sent in (UCUM spelling), or say why not.

    Converting to the canonical unit and the plausible-range check happen once, in
    ``schemas.normalize.normalize_event``, for every intake path (the interop agent and
    ``vigil convert`` call it on what this returns). ``where`` locates the input for the
    integrator (``entry[2] Observation/bp``); details never carry patient values or identifiers,
    only codes, units and resource locations."""
    kind = CATALOGUE[code][0]
    try:
        return PatientEvent(
            event_id=event_id(source, key, part),
            patient_id=patient_id,
            encounter=encounter,
            ward=ward,
            observed_at=observed_at,
            source=source,
            kind=kind,
            code=code,
            value=value,
            unit=unit_alias(unit),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = str(error["loc"][0]) if error["loc"] else "event"
        reason = {"patient_id": "missing_subject", "observed_at": "missing_time", "value": "out_of_range"}
        # the same strict rules as JSON intake (hidden characters, dates before the floor): ``schema``
        code = "schema" if error["type"] in STRICT_ERROR_TYPES else reason.get(field_name, "schema")
        # The message only (never ``input``): it must not leak patient values into dead letters.
        return Rejected(code, f"{where}{field_name}: {error['msg']}")


# --- demographics -------------------------------------------------------------------------------

# The models' Age is PhysioNet/CinC 2019's: years with two decimals at the stay (83.14), never whole
# years. Training set A holds 18.11 to 89.0 and no one older (none at 100, the challenge's code for
# 90 and over): ages over 89 are sent as 89.0, what the trees saw (no split lies above it, so every
# tree scores 95 as 89) and the top age HIPAA Safe Harbor lets a record carry (45 CFR 164.514(b)(2)).
OLDEST_TRAINED_AGE: Final = 89.0
DAYS_PER_YEAR: Final = 365.25
# Gender as PhysioNet codes it (1 male, 0 female); other sexes (other, unknown, undifferentiated,
# not applicable) have no value the models know: no event, not an error
GENDER_VALUES: Final[dict[str, float]] = {"M": 1.0, "MALE": 1.0, "F": 0.0, "FEMALE": 0.0}


def age_at(birth: date, at: datetime, field_name: str) -> float | Rejected:
    """Age in years at ``at`` (its own local date: the sender's, as the date of birth is), as the
    training rows give it, or why not (``out_of_range``: born after ``at``, or older than the
    catalogue allows). ``field_name`` names the field in the detail, never its value: a date of
    birth is PHI."""
    days = (at.date() - birth).days
    if days < 0:
        return Rejected("out_of_range", f"{field_name} (date of birth) is after the time of the patient's results")
    years = days / DAYS_PER_YEAR
    _, _, (_, oldest) = CATALOGUE["Age"]
    if years > oldest:
        return Rejected("out_of_range", f"{field_name} (date of birth) gives an age over {oldest:g} years")
    return round(min(years, OLDEST_TRAINED_AGE), 2)


def first_measurement(events: Iterable[PatientEvent]) -> PatientEvent | None:
    """The earliest of ``events`` that is a measurement intake will publish, which a patient's age and
    sex are read beside (the first in order among those of its time), or None. A measurement: a vital
    sign or a lab (``DYNAMIC_CODES``, a row of training's .psv), never an assessment (GCS, ACVPU), a
    treatment (weight included) or a demographic: hour 0 of a window is the first measurement's
    (``models.window``; until bundle 2.7.0 a demographic before it fixed it, and an Age sent beside an
    ED GCS at 07:10 put the ICU's first vital signs at 10:30 in hour 3). Published: the
    intake rules pass (``normalize_event``: unit, plausible range), an HR of 900/min or in kg is no
    measurement, else the age and sex alone opened a stay and were scored. The clock is left to the
    caller's check: judged here at the event's own time, the demographics, which take this
    measurement's time, meet it as the measurement does."""
    measured = (e for e in events if e.code in DYNAMIC_CODES and _published(normalize_event(e, e.observed_at)))
    return min(measured, key=lambda e: e.observed_at, default=None)


def _published(checked: PatientEvent | Rejected) -> bool:
    return isinstance(checked, PatientEvent)


def date_of_birth(match: re.Match[str] | None, refused: Rejected) -> date | Rejected:
    """The day a date-of-birth pattern matched (year, month and day in its groups 1-3), or
    ``refused``: no match, or no such day (a 30 February)."""
    if match is None:
        return refused
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return refused


def gender_value(sex: str) -> float | None:
    """PhysioNet's Gender of an administrative sex (HL7 table 0001 ``M``/``F``, FHIR ``male``/``female``),
    else None."""
    return GENDER_VALUES.get(sex.strip().upper())


# the catalogue's unit of each demographic (``schemas.codes``): years, and a code
DEMOGRAPHIC_UNITS: Final[dict[str, str]] = {"Age": "a", "Gender": "1"}


def demographic_event(
    code: str,
    value: float,
    *,
    source: str,
    key: str,
    part: str,
    patient_id: str,
    beside: PatientEvent,
    where: str,
) -> PatientEvent | Rejected:
    """One demographic read beside a measurement (``first_measurement``): its time, encounter and
    ward the measurement's; its id from the resource or message ``key`` and ``part`` (the same
    payload sent again keeps it: each codec's ``part`` as it has always been)."""
    return canonical_event(
        source=source,
        key=key,
        part=part,
        patient_id=patient_id,
        observed_at=beside.observed_at,
        code=code,
        value=value,
        unit=DEMOGRAPHIC_UNITS[code],
        encounter=beside.encounter,
        ward=beside.ward,
        where=where,
    )
