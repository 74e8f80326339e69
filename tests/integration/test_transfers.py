"""ADT transfers on the real broker and Redis, with the site's monitored units set: through `vigil
mllp` (the session's worker scoring), a move between two monitored units leaves the stay alone, an
ADT^A02 out of them ends the stay the ORU messages opened, and the ADT^A12 that cancels it resumes
the stay; through `vigil.ingest.hl7v2`, a worker started with the setting ends the stay as well, and
through `vigil.ingest.fhir` so does an Encounter update whose newest move left the ICU for a ward,
and an ADT^A12 converted to a FHIR message Bundle resumes it.
Results from a unit neither monitored nor away (a ward) are ignored on both paths: not scored; a
FHIR Bundle's results are placed by the Encounter it carries (``fhir_places``)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_patient, wait_for
from tests.integration.test_bundle_change import worker_logs
from tests.integration.test_mllp import ack_of, mllp_listener, oru_for
from tests.unit.codecs.test_fhir_places import sent_apart
from vigil.infra.workers import worker_env
from vigil.schemas import topics
from vigil.schemas.codecs.mllp import frame

pytestmark = pytest.mark.integration


def adt(trigger: str, pid: str, at: datetime, to: str, prior: str) -> bytes:
    """ADT^A02 (A12): PV1-3 the new (restored) location, PV1-6 the prior one; EVN-6 the move."""
    stamp = at.strftime("%Y%m%d%H%M00+0000")
    return (
        f"MSH|^~\\&|ADT|H|VIGIL|H|{stamp}||ADT^{trigger}^ADT_A02|{pid}-{trigger}-{to}|P|2.5.1\r"
        f"EVN|{trigger}|{stamp}||||{stamp}\rPID|1||{pid}^^^H^MR\rPV1|1|I|{to}^1|||{prior}^2\r"
    ).encode()


def on_ward(oru: bytes, unit: str = "4WEST") -> bytes:
    """The fixture's ORU^R01 (PV1-3 ICU-3) sent from another unit."""
    assert b"|ICU-3^" in oru
    return oru.replace(b"|ICU-3^", f"|{unit}^".encode())


def fhir_move(pid: str, left: datetime, prior: str, to: str) -> bytes:
    """An in-progress FHIR Encounter whose newest move left ``prior`` for ``to`` at ``left``."""
    stamp = left.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {
            "resourceType": "Encounter",
            "id": "V77120044",  # the visit the fixture's ORU^R01 names (PV1-19): another would be other_encounter
            "meta": {"versionId": "7"},
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": f"Patient/{pid}"},
            "location": [
                {"location": {"display": prior}, "status": "completed", "period": {"end": stamp}},
                {"location": {"display": to}, "status": "active", "period": {"start": stamp}},
            ],
        }
    ).encode()


WARD_BUNDLE = (
    Path(__file__).parents[1] / "unit" / "codecs" / "fixtures" / "fhir" / "bundle-transaction-ward-results.json"
)


def fhir_results(pid: str, at: datetime, unit: str) -> bytes:
    """The fixture's transaction (a heart rate and an SpO2, their Encounter naming a bed of ``unit``)
    for patient ``pid`` at ``at``."""
    bundle = json.loads(WARD_BUNDLE.read_text())
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource["id"] = resource["identifier"][0]["value"] = pid
        elif resource["resourceType"] == "Observation":
            resource["effectiveDateTime"] = stamp
        elif resource.get("id") == "4WEST":
            resource["identifier"] = [{"value": unit}]
    return json.dumps(bundle).encode()


A12_MESSAGE = WARD_BUNDLE.with_name("bundle-message-adt-a12-cancel-transfer.json")
IN_PROGRESS = WARD_BUNDLE.with_name("bundle-searchset-encounters-in-progress.json")


def encounters_in_progress(in_icu: str, in_ward: str) -> bytes:
    """The fixture's searchset of the Encounters in progress (docs/interop.md, "Going live with a FHIR
    feed"): ``in_icu`` in ICU-3 bed 7, ``in_ward`` on 4WEST, their visits ``<pid>-visit`` as
    ``sent_apart``'s results name them."""
    text = IN_PROGRESS.read_text().replace("V77300441", f"{in_icu}-visit").replace("V88120317", f"{in_ward}-visit")
    return (
        text.replace("Patient/7730044", f"Patient/{in_icu}").replace("Patient/5520193", f"Patient/{in_ward}").encode()
    )


def fhir_cancel(pid: str, at: datetime) -> bytes:
    """The fixture's ADT^A12 as a FHIR message Bundle (the Encounter back in ICU-3), for ``pid`` at ``at``."""
    bundle = json.loads(A12_MESSAGE.read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource["id"] = resource["identifier"][0]["value"] = pid
        elif resource["resourceType"] == "Encounter":
            resource["subject"]["reference"] = f"Patient/{pid}"
        elif resource["resourceType"] == "Provenance":
            resource["occurredDateTime"] = resource["recorded"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(bundle).encode()


def stay_records(r: Any, pid: str, record: str) -> list[dict[str, Any]]:
    return [s for s in r.snapshot().stay_records if s["patient_id"] == pid and s.get("record", "stay_ended") == record]


def test_a_transfer_out_of_the_monitored_units_ends_the_stay_and_its_cancel_resumes_it(
    stack, stack_settings, shared_worker, reader
) -> None:
    env = {**worker_env(stack_settings), "VIGIL_INGEST__MONITORED_UNITS": '["icu-3", "SICU"]'}
    with mllp_listener(env) as listener:
        r = reader(keep_scores=True)
        pid = unique_patient("xfer")
        at = datetime.now(UTC) - timedelta(hours=2)
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as conn:
            conn.sendall(frame(oru_for(pid, f"{pid}-1", at)))  # PV1-3 ICU-3: the fixture's unit
            assert ack_of(conn)[:2] == ["MSA", "AA"]
            assert wait_for(lambda: any(p == pid for p, _ in r.snapshot().last_scores), timeout=60), "scored"
            conn.sendall(frame(adt("A02", pid, at + timedelta(minutes=10), "SICU", "ICU-3")))
            assert ack_of(conn)[:4] == ["MSA", "AA", f"{pid}-A02-SICU", "nothing to map: 1 part ignored: adt_transfer"]
            conn.sendall(frame(adt("A02", pid, at + timedelta(minutes=20), "4WEST", "SICU")))
            assert ack_of(conn)[:4] == ["MSA", "AA", f"{pid}-A02-4WEST", "accepted 1 event"]
            assert wait_for(lambda: stay_records(r, pid, "stay_ended"), timeout=60), "the transfer ended the stay"
            conn.sendall(frame(adt("A12", pid, at + timedelta(minutes=30), "SICU", "4WEST")))
            assert ack_of(conn)[:2] == ["MSA", "AA"]
            assert wait_for(lambda: stay_records(r, pid, "stay_resumed"), timeout=60), "the cancel resumed it"
        (ended,) = stay_records(r, pid, "stay_ended")  # the move between the ICUs ended nothing
        assert ended["ward"] == "SICU" and ended["ended_at"].startswith(
            (at + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M")
        )
    assert listener.banner == "ADT^A02 out of ICU-3, SICU ends a stay; ORU^R01 from other units ignored\n"
    assert '"level": "error"' not in listener.output  # stopped as its sender hung up: a clean stop
    summary = listener.summary
    assert summary["messages"] == 4 and summary["acks"] == {"AA": 4}
    assert summary["events"] == 12  # the ORU's results, its Age and Gender, the transfer


def test_a_patient_who_goes_on_from_theatre_to_a_ward_leaves_the_stay_and_other_ends_end_nothing(
    stack, stack_settings, shared_worker, spawn, reader
) -> None:
    """ICU-3 -> OR -> 4WEST: the move to theatre ends nothing (the results from theatre are scored in
    the stay), the one on to the ward ends the stay (the stream knows the patient was in the ICU; the
    codec does not). A surgical patient never in the ICU is not scored: its results on the ward are
    ignored, those from theatre open no stay, and its move from theatre to the ward ends nothing,
    nor does the hospital's discharge after the transfer ended the stay: `no_open_stay` dead
    letters, each event accounted for, no stay record."""
    units = {"VIGIL_INGEST__MONITORED_UNITS": '["ICU-3"]', "VIGIL_INGEST__AWAY_UNITS": '["OR"]'}
    with shared_worker.stopped(), mllp_listener({**worker_env(stack_settings), **units}) as listener:
        spawn("theatre", env=units)  # the scoring step reads the away units: this test's worker owns every partition
        r = reader(keep_scores=True)
        pid, surgical = unique_patient("xfer-or"), unique_patient("xfer-surg")
        at = datetime.now(UTC) - timedelta(hours=3)
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as conn:

            def say(message: bytes, ack: str) -> None:
                conn.sendall(frame(message))
                assert ack_of(conn)[3].startswith(ack)

            say(on_ward(oru_for(surgical, f"{surgical}-1", at)), "nothing to map: 1 part ignored: unmonitored_unit")
            say(oru_for(pid, f"{pid}-1", at), "accepted")  # PV1-3 ICU-3: the fixture's unit
            assert wait_for(lambda: any(p == pid for p, _ in r.snapshot().last_scores), timeout=90), "scored"
            say(
                adt("A02", pid, at + timedelta(minutes=10), "OR", "ICU-3"),
                "nothing to map: 1 part ignored: adt_transfer",
            )
            say(on_ward(oru_for(pid, f"{pid}-2", at + timedelta(hours=1)), "OR"), "accepted")  # in theatre: scored
            assert wait_for(lambda: (pid, 1) in r.snapshot().last_scores, timeout=60), "scored in theatre"
            say(on_ward(oru_for(surgical, f"{surgical}-2", at + timedelta(hours=1)), "OR"), "accepted")
            say(adt("A02", pid, at + timedelta(hours=2), "4WEST", "OR"), "accepted 1 event")
            assert wait_for(lambda: stay_records(r, pid, "stay_ended"), timeout=60), "the move to the ward ended it"
            say(adt("A02", surgical, at + timedelta(hours=2), "4WEST", "OR"), "accepted 1 event")
            say(adt("A03", pid, at + timedelta(hours=2, minutes=50), "4WEST", ""), "accepted 1 event")
            # the surgical patient's 8 results in theatre open no stay, nor do its and pid's moves
            assert wait_for(lambda: r.snapshot().dead_letter_reasons["no_open_stay"] >= 10, timeout=60)
        (ended,) = stay_records(r, pid, "stay_ended")
        assert ended["ended_by"] == "transfer_out" and ended["ward"] == "ICU-3"  # the stay's unit, not theatre
        assert r.snapshot().last_scores[(pid, 1)]["ward"] == "ICU-3"  # scored in theatre, on the ICU's ward view
        assert ended["ended_at"].startswith((at + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        assert not [s for s in r.snapshot().stay_records if s["patient_id"] == surgical]
        assert not [p for p, _ in r.snapshot().last_scores if p == surgical]  # on the ward, in theatre: not scored
        assert r.snapshot().dead_letter_reasons["no_open_stay"] == 10
        assert r.snapshot().dead_letter_reasons["unknown_stay"] == 0
    assert listener.banner == "ADT^A02 out of ICU-3 ends a stay; away: OR; ORU^R01 from other units ignored\n"


def test_the_intake_agents_end_a_stay_on_a_transfer_out_of_the_units_their_worker_is_given(
    stack, stack_settings, stack_home, shared_worker, spawn, producer, reader
) -> None:
    r = reader(keep_scores=True)
    pid, by_fhir, by_bundle = unique_patient("xfer-agent"), unique_patient("xfer-fhir"), unique_patient("xfer-bundle")
    apart = unique_patient("xfer-apart")
    at = datetime.now(UTC) - timedelta(hours=2)
    with shared_worker.stopped():  # this test's worker owns every partition
        spawn("transfers", env={"VIGIL_INGEST__MONITORED_UNITS": '["ICU-3"]'})
        ward = on_ward(oru_for(pid, f"{pid}-0", at - timedelta(hours=3)))  # before the ICU: not scored
        producer.send(topics.INGEST_HL7V2, key=pid.encode(), value=ward)
        producer.send(topics.INGEST_HL7V2, key=pid.encode(), value=oru_for(pid, f"{pid}-1", at))
        producer.flush()
        assert wait_for(lambda: any(p == pid for p, _ in r.snapshot().last_scores), timeout=90), "scored"
        assert {h for p, h in r.snapshot().last_scores if p == pid} == {0}  # the stay starts in the ICU
        producer.send(
            topics.INGEST_HL7V2, key=pid.encode(), value=adt("A02", pid, at + timedelta(minutes=5), "4WEST", "ICU-3")
        )
        producer.flush()
        assert wait_for(lambda: stay_records(r, pid, "stay_ended"), timeout=60), "the transfer ended the stay"
        producer.send(
            topics.INGEST_HL7V2, key=pid.encode(), value=adt("A12", pid, at + timedelta(minutes=9), "ICU-3", "")
        )
        producer.flush()
        assert wait_for(lambda: stay_records(r, pid, "stay_resumed"), timeout=60), "the cancel resumed it"
        # a FHIR feed: the Encounter update whose newest move left the ICU for a ward, sent twice
        producer.send(topics.INGEST_HL7V2, key=by_fhir.encode(), value=oru_for(by_fhir, f"{by_fhir}-1", at))
        producer.flush()
        assert wait_for(lambda: any(p == by_fhir for p, _ in r.snapshot().last_scores), timeout=60), "scored"
        for _ in range(2):
            move = fhir_move(by_fhir, at + timedelta(minutes=30), "ICU-3", "4WEST")
            producer.send(topics.INGEST_FHIR, key=by_fhir.encode(), value=move)
        producer.flush()
        ended_by_fhir = wait_for(lambda: stay_records(r, by_fhir, "stay_ended"), timeout=60)
        assert ended_by_fhir, f"the FHIR move ended no stay: dead letters {dict(r.snapshot().dead_letter_reasons)}"
        assert wait_for(lambda: r.snapshot().dead_letter_reasons["duplicate"] >= 1, timeout=60)
        # the FHIR message that cancels that transfer (an ADT^A12 converted to FHIR): the stay resumes
        producer.send(topics.INGEST_FHIR, key=by_fhir.encode(), value=fhir_cancel(by_fhir, at + timedelta(minutes=35)))
        producer.flush()
        resumed_by_fhir = wait_for(lambda: stay_records(r, by_fhir, "stay_resumed"), timeout=60)
        assert resumed_by_fhir, (
            f"the FHIR cancel resumed nothing: dead letters {dict(r.snapshot().dead_letter_reasons)}"
        )
        # a FHIR feed's results, placed by their Bundle's Encounter: the ward's open no stay
        producer.send(topics.INGEST_FHIR, key=by_bundle.encode(), value=fhir_results(by_bundle, at, "4WEST"))
        later = fhir_results(by_bundle, at + timedelta(hours=1), "ICU-3")
        producer.send(topics.INGEST_FHIR, key=by_bundle.encode(), value=later)
        producer.flush()
        assert wait_for(lambda: any(p == by_bundle for p, _ in r.snapshot().last_scores), timeout=60), "scored"
        # a subscription's notifications: the Encounter alone, then its results alone, placed by it
        for sent in (*sent_apart(apart, at, "4WEST"), *sent_apart(apart, at + timedelta(hours=1), "4WEST", "ICU-3")):
            producer.send(topics.INGEST_FHIR, key=apart.encode(), value=sent)
        producer.flush()
        assert wait_for(lambda: any(p == apart for p, _ in r.snapshot().last_scores), timeout=60), "scored"
        # going live: a result whose Encounter was never read is scored as if from a monitored unit (and
        # said, once); the Encounters in progress sent first place the results that follow
        early, in_icu, ward_pid = (unique_patient(f"live-{n}") for n in ("early", "icu", "ward"))
        producer.send(topics.INGEST_FHIR, key=early.encode(), value=sent_apart(early, at, "4WEST")[1])
        producer.send(topics.INGEST_FHIR, key=in_icu.encode(), value=encounters_in_progress(in_icu, ward_pid))
        producer.flush()
        assert wait_for(lambda: any(p == early for p, _ in r.snapshot().last_scores), timeout=60), "scored"
        for pid_live in (in_icu, ward_pid):
            producer.send(topics.INGEST_FHIR, key=pid_live.encode(), value=sent_apart(pid_live, at, "ICU-3")[1])
        # the ward patient's monitored hour after it: its stay starts there, not at the ward's result
        producer.send(
            topics.INGEST_HL7V2,
            key=ward_pid.encode(),
            value=oru_for(ward_pid, f"{ward_pid}-1", at + timedelta(hours=1)),
        )
        producer.flush()
        assert wait_for(lambda: {in_icu, ward_pid} <= {p for p, _ in r.snapshot().last_scores}, timeout=60), "scored"
    assert r.snapshot().last_scores[(early, 0)]["ward"] is None  # scored unplaced
    assert r.snapshot().last_scores[(in_icu, 0)]["ward"] == "ICU-3"  # placed by the searchset's Encounter
    scored = {h: s for (p, h), s in r.snapshot().last_scores.items() if p == ward_pid}
    assert list(scored) == [0] and scored[0]["ward"] == "ICU-3"  # its ward's heart rate opened no stay
    said = [e for e in worker_logs(stack_home, "transfers") if e.get("event") == "intake.fhir_unplaced"]
    assert len(said) == 1 and "vigil_fhir_unplaced_total" in said[0]["hint"]
    scored = {h: s for (p, h), s in r.snapshot().last_scores.items() if p == by_bundle}
    assert list(scored) == [0] and scored[0]["ward"] == "ICU-3"  # the stay starts with the ICU's results
    scored = {h: s for (p, h), s in r.snapshot().last_scores.items() if p == apart}
    assert list(scored) == [0] and scored[0]["ward"] == "ICU-3"  # the ward's heart rate opened no stay
    (ended,) = stay_records(r, pid, "stay_ended")
    assert ended["ward"] == "ICU-3" and ended["source"] == "hl7v2"
    (moved,) = stay_records(r, by_fhir, "stay_ended")  # the update sent again is the same move: no second end
    assert (moved["ended_by"], moved["ward"], moved["source"]) == ("transfer_out", "ICU-3", "fhir")
    (resumed,) = stay_records(r, by_fhir, "stay_resumed")
    assert (resumed["cancelled_by"], resumed["ward"], resumed["source"]) == ("cancel_transfer", "ICU-3", "fhir")
    assert r.snapshot().dead_letter_reasons["unmonitored_unit"] == 0  # ignored (counted), not dead-lettered
    said = [e for e in worker_logs(stack_home, "transfers") if e.get("event") == "intake.transfers"]
    assert [(e["monitored_units"], e["away_units"]) for e in said] == [(["ICU-3"], [])]  # once, at start
