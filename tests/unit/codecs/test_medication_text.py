"""The medication-text fallback (``loinc.treatment_for_texts``): a drug named in an EHR's order name
wins over the fluid it is diluted in, and a local anaesthetic's epinephrine is no vasopressor."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.loinc import treatment_for_text

NOW = datetime(2024, 3, 15, 15, 0, tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"


@pytest.mark.parametrize(
    "text",
    [
        "piperacillin-tazobactam 4.5 g in sodium chloride 0.9 % 100 mL IVPB",
        "vancomycin 1,250 mg in sodium chloride 0.9 % 250 mL IVPB",
        "ceFEPime 2 g in sodium chloride 0.9 % 100 mL IVPB",
        "meropenem 1 g in sodium chloride 0.9 % 100 mL IVPB (MINI-BAG Plus)",
        "Vancomycin 1 g in 0.9% Normal Saline 200 mL",
        "Tazocin 4.5 g in Hartmann's 100 mL",
        "azithromycin 500 mg in dextrose 5 % 250 mL IVPB",
        "ceftriaxone 1 g in lidocaine 1 % 3.5 mL IM injection",  # reconstituted with lidocaine: given
    ],
)
def test_an_antibiotic_given_in_a_fluid_is_the_antibiotic(text: str) -> None:
    assert treatment_for_text(text) == "antibiotic"


@pytest.mark.parametrize(
    "text",
    [
        "norepinephrine 4 mg in dextrose 5 % 250 mL infusion",
        "norepinephrine 8 mg in sodium chloride 0.9 % 250 mL infusion",
        "EPINEPHrine 4 mg in sodium chloride 0.9 % 250 mL infusion",
        "vasopressin 20 units in sodium chloride 0.9 % 100 mL infusion",
        "phenylephrine 10 mg in sodium chloride 0.9 % 250 mL infusion",
    ],
)
def test_a_vasopressor_in_a_fluid_is_the_vasopressor(text: str) -> None:
    assert treatment_for_text(text) == "vasopressor"


@pytest.mark.parametrize(
    "text",
    [
        "sodium chloride 0.9 % 1,000 mL bolus",
        "sodium chloride 0.9 % infusion",
        "lactated ringers bolus 1,000 mL",
        "Lactated Ringer's Injection 1000 mL",
        "Plasma-Lyte A 1,000 mL IV",
        "Hartmann's solution",
        "dextrose 5 % in lactated ringer's 1,000 mL",  # D5LR: a sugar in the fluid, still the fluid
    ],
)
def test_a_fluid_alone_stays_a_crystalloid(text: str) -> None:
    assert treatment_for_text(text) == "crystalloid_ml"


@pytest.mark.parametrize(
    "text",
    [
        "lidocaine-epinephrine 1 %-1:100,000 injection",
        "bupivacaine-epinephrine 0.25 %-1:200,000 injection",
        "lidocaine with epinephrine 2 % injection",
        "Xylocaine with adrenaline 1 % 20 mL",
        "racepinephrine 2.25 % nebulizer solution",
        "lidocaine 0.1 %-epinephrine 1:1,000,000 in lactated ringer's 1,000 mL (tumescent)",
        "bupivacaine 0.1 %-fentanyl 2 mcg/mL in sodium chloride 0.9 % 250 mL epidural",
        # a drug Vigil does not read, in its carrier: no crystalloid of 2 g or 20 mEq
        "magnesium sulfate 2 g in sodium chloride 0.9 % 50 mL IVPB",
        "potassium chloride 20 mEq in sodium chloride 0.9 % 100 mL IVPB",
        "dextrose 5 % in water 1,000 mL",
    ],
)
def test_texts_that_name_no_treatment_vigil_reads(text: str) -> None:
    assert treatment_for_text(text) is None


@pytest.mark.parametrize(
    ("text", "treatment"),
    [
        # " in " that is no diluent: the fluid is what the text is about
        ("Bolus in ED: sodium chloride 0.9 % 1,000 mL", "crystalloid_ml"),
        ("Fluid challenge in sepsis - lactated ringer's 30 mL/kg", "crystalloid_ml"),
        # an anaesthetic not joined to the epinephrine: a code's epinephrine is a vasopressor
        ("ACLS: epinephrine 1 mg IV and lidocaine 1.5 mg/kg", "vasopressor"),
        ("epinephrine 1:10,000 injection (code blue)", "vasopressor"),
        ("adrenaline 1 mg/mL (1:1,000) IM", "vasopressor"),
        # an anaesthetic elsewhere in the text leaves every other vasopressor as it is
        ("norepinephrine in dextrose 5 % (lidocaine-free line)", "vasopressor"),
        ("norepinephrine 4 mg in sodium chloride 0.9 % 250 mL; lidocaine 1 % line flush", "vasopressor"),
        ("epinephrine with lidocaine 2 % dental cartridge", None),
        ("epinephrine 1:200,000 with bupivacaine 0.5 %", None),
        # the US label's "and"; a strength between the anaesthetic and its epinephrine
        ("lidocaine hcl and epinephrine injection", None),
        ("lidocaine hydrochloride and epinephrine 1 %-1:100,000 injection", None),
        ("bupivacaine 0.5 % and epinephrine 0.005 mg/ml", None),
        # "and" between a code's drugs is no local anaesthetic's epinephrine
        ("lidocaine 100 mg IV and epinephrine 1 mg IV push", "vasopressor"),
        ("lidocaine 1.5 mg/kg IV and epinephrine 1 mg IV", "vasopressor"),
        ("epinephrine and lidocaine given during code", "vasopressor"),
        ("lidocaine 2% jelly and adrenaline 1 mg IV", "vasopressor"),
        # an anaesthetic's or a colloid's carrier is no resuscitation crystalloid, " in " or not
        ("bupivacaine 0.1% - fentanyl 2 mcg/ml epidural, sodium chloride 0.9 % 250 ml", None),
        ("albumin 5% 250 ml in sodium chloride", None),
    ],
)
def test_what_a_text_is_about_decides_not_a_word_anywhere_in_it(text: str, treatment: str | None) -> None:
    """Found by the review of the first version: " in " split any text, so a bolus "in ED" was no
    fluid; a local anaesthetic named anywhere in a medication's texts cancelled every vasopressor."""
    assert treatment_for_text(text) == treatment


def administration(medication: dict[str, Any], dosage: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "resourceType": "MedicationAdministration",
            "id": "ma1",
            "status": "completed",
            "medicationCodeableConcept": medication,
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2024-03-15T14:25:00Z",
            "dosage": dosage,
        }
    ).encode()


def test_an_ivpb_order_decodes_to_its_antibiotic_not_a_crystalloid_or_a_dead_letter() -> None:
    """The review's reproduction: piperacillin in saline was 100 mL of crystalloid and no antibiotic,
    vancomycin in saline a dead letter ``unit`` (1,250 mg is no volume)."""
    for text, dose in [
        ("piperacillin-tazobactam 4.5 g in sodium chloride 0.9 % 100 mL IVPB", {"value": 100, "code": "mL"}),
        ("vancomycin 1,250 mg in sodium chloride 0.9 % 250 mL IVPB", {"value": 1250, "code": "mg"}),
    ]:
        result = decode_fhir(administration({"text": text}, {"dose": {**dose, "system": UCUM}})).checked(NOW)
        assert [(e.code, e.value) for e in result.events] == [("antibiotic", 1.0)] and not result.rejected


def test_a_local_anaesthetic_with_epinephrine_is_unread_medication_not_a_vasopressor() -> None:
    result = decode_fhir(
        administration({"text": "lidocaine-epinephrine 1 %-1:100,000 injection"}, {"dose": {"value": 5, "code": "mL"}})
    )
    assert not result.events and [r.reason for r in result.rejected] == ["unmapped_code"]
    assert result.unknown_codes == {"medication-text": 1}


def test_a_drug_in_a_coding_display_wins_over_the_fluid_in_the_text() -> None:
    """Each text of a medication was read in turn, the first that matched winning: the concept's text
    (the bag) came before its coding's display (the drug)."""
    medication = {
        "coding": [{"system": "urn:oid:1.2.840.114350", "code": "250000", "display": "piperacillin-tazobactam 4.5 g"}],
        "text": "sodium chloride 0.9 % 100 mL IVPB",
    }
    result = decode_fhir(administration(medication, {"dose": {"value": 100, "code": "mL", "system": UCUM}}))
    assert [e.code for e in result.events] == ["antibiotic"] and not result.rejected


def test_a_hostile_text_is_searched_in_linear_time() -> None:
    """``DRUG_DOSE`` unanchored backtracked over every digit of a run: 40,000 digits took 30 s, and
    a FHIR payload may carry 8 MiB of text. Anchored and bounded, each digit starts at most one try."""
    from vigil.schemas.codecs import loinc

    digits = "1" * 40_000
    assert loinc.DRUG_DOSE.search(digits + " in saline") is None
    assert [m.start() for m in loinc.DRUG_DOSE.finditer("x 2 g and 1,250 mg in")] == [2, 10]
    # no unbounded whitespace beside a lazy gap: "lidocaine" and 1.6 M spaces took 5 s (8 MiB: 24 s)
    assert "\\s*" not in loinc.LOCAL_EPINEPHRINE.pattern
    assert treatment_for_text("lidocaine" + " " * 100_000 + "epinephrine") == "vasopressor"
    # the anchor: a match starts only where a number starts, never inside one
    assert loinc.DRUG_DOSE.pattern.startswith("(?<![\\d,.])")
    assert treatment_for_text(digits + " in lidocaine") is None  # returns (it took 30 s)
