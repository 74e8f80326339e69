"""No PHI in logs: a worker at DEBUG with JSON logs, and the pure ingest/scoring functions under
``structlog.testing.capture_logs``; patient ids appear only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from tests.conftest import unique_patient, wait_for
from tests.reliability.helpers import report
from vigil.infra.logging import patient_hash
from vigil.infra.settings import get_settings
from vigil.models.alerting import AlertPolicy, PatientAlertState, on_score
from vigil.models.scoring import PendingUpdate, build_risk_score
from vigil.models.window import LateEvent, PatientWindow
from vigil.schemas.events import PatientEvent
from vigil.schemas.normalize import decode_raw_event

pytestmark = pytest.mark.reliability

NAME = "Eleanor Rigby"
# distinctive vitals: if one of these numbers shows up in a log, a raw value leaked
HR, TEMP, SBP = 131.7, 38.93, 83.3


def _phi_events(pid: str, hours: int = 3) -> list[bytes]:
    base = datetime.now(UTC) - timedelta(hours=hours + 1)
    out = []
    for h in range(hours):
        at = base + timedelta(hours=h, minutes=7)
        for code, value, unit in (
            ("HR", HR, "/min"),
            ("Temp", TEMP, "Cel"),
            ("SBP", SBP, "mm[Hg]"),
            ("Resp", 27, "/min"),
            ("O2Sat", 90, "%"),
        ):
            e = PatientEvent(
                patient_id=pid,
                observed_at=at,
                kind="vital",
                code=code,
                value=value,
                unit=unit,
                encounter=f"enc-{pid}",
                source="phi-test",
            )
            out.append(e.model_dump_json().encode())
    # bad input carrying a name and an identifier: dead-lettered, and its reason must not echo them
    bad = {
        "patient_id": pid,
        "name": NAME,
        "observed_at": base.isoformat(),
        "kind": "vital",
        "code": "HR",
        "value": HR,
        "unit": "/min",
    }
    out.append(json.dumps(bad).encode())
    out.append(json.dumps({**bad, "name": None, "unit": NAME}).encode())  # name in an unknown unit
    out.append(json.dumps({**bad, "code": NAME}).encode())  # name as an unknown code
    out.append(json.dumps({**bad, "patient_id": f"{pid} {NAME}"}).encode())  # invalid id with a name
    return out


# timings in the worker's lines ("infer_ms": 38.93) are not vitals: a run once matched TEMP in one
TIMING = re.compile(r'"[a-z_]+_(ms|s)": -?[\d.]+|\b[a-z_]+_(ms|s)=-?[\d.]+')


def _leaks(text: str, pid: str) -> dict[str, int]:
    numbers = [str(HR), str(TEMP), str(SBP)]
    text = TIMING.sub("", text)
    return {
        "patient_id_in_clear": text.count(pid),
        "name": text.count(NAME) + text.count("Rigby"),
        "raw_vitals": sum(len(re.findall(rf"(?<![\d.]){re.escape(n)}(?!\d)", text)) for n in numbers),
    }


def test_keyed_patient_hash() -> None:
    pid = "MRN-0012345"
    key = get_settings().log_hash_key.get_secret_value().encode()
    assert patient_hash(pid) == hmac.new(key, pid.encode(), hashlib.sha256).hexdigest()[:16]
    assert patient_hash(pid) != hashlib.sha256(pid.encode()).hexdigest()[:16]  # keyed, not a plain digest


def test_redaction_processor_drops_identifier_and_value_fields() -> None:
    from vigil.infra.logging import redact_phi

    event = redact_phi(
        None,
        "info",
        {"event": "x", "patient_id": "MRN-1", "name": NAME, "value": HR, "patient": patient_hash("MRN-1")},
    )
    assert event["patient_id"] == event["name"] == event["value"] == "[redacted]"


def test_pure_ingest_and_scoring_log_no_phi(results_dir) -> None:
    pid = unique_patient("MRN")
    now = datetime.now(UTC)
    window, update, state = PatientWindow(), PendingUpdate(pid), PatientAlertState()
    with structlog.testing.capture_logs() as captured:
        for payload in _phi_events(pid):
            result = decode_raw_event(payload, now)
            if isinstance(result, PatientEvent):
                try:
                    window.apply(result)
                except LateEvent:
                    continue
                update.add(result.event_id, result.observed_at, None, result.encounter, result.ward)
        score = build_risk_score(window, update, [], now)
        on_score(state, score, AlertPolicy())
    text = json.dumps(captured, default=str)
    leaks = _leaks(text, pid)
    report(results_dir, "phi_capture_logs", {"log_entries": len(captured), **leaks})
    assert leaks == {"patient_id_in_clear": 0, "name": 0, "raw_vitals": 0}


def test_worker_debug_logs_carry_no_phi(stack, spawn, producer, reader, stack_home, results_dir) -> None:
    # several patients: when another worker shares the group (make test), some land on this one
    pids = [unique_patient("MRN") for _ in range(8)]
    worker = spawn("phi", env={"VIGIL_LOG_LEVEL": "DEBUG", "VIGIL_LOG_FORMAT": "json"})
    phi_logs = lambda: sorted((stack_home / "logs").glob("phi-*.log"))  # noqa: E731
    started = wait_for(lambda: any("audit.config" in f.read_text(errors="replace") for f in phi_logs()), 60)
    assert started, "the DEBUG worker did not start"
    r = reader()
    sent = {pid: _phi_events(pid) for pid in pids}
    for pid, payloads in sent.items():
        for p in payloads:
            producer.send("vigil.events.raw", key=pid.encode(), value=p)
    producer.flush()
    good = {json.loads(p)["event_id"] for ps in sent.values() for p in ps if b"event_id" in p}
    assert wait_for(lambda: good <= r.snapshot().scored_ids and r.snapshot().dead_letters >= 4 * len(pids), timeout=120)
    assert wait_for(lambda: {a["patient_id"] for a in r.snapshot().alert_records} >= set(pids), timeout=60)
    time.sleep(1.0)  # the last batch's log lines
    # every worker log of the session (this DEBUG worker and any other worker in the group)
    logs = [f for f in (stack_home / "logs").glob("*.log") if not f.name.startswith(("kafka", "redis"))]
    text = "\n".join(f.read_text(errors="replace") for f in logs)
    mine = "\n".join(f.read_text(errors="replace") for f in phi_logs())
    leaks: dict[str, int] = {}
    for pid in pids:
        for k, v in _leaks(text, pid).items():
            leaks[k] = max(leaks.get(k, 0), v)
    report(
        results_dir,
        "phi_worker_logs",
        {
            "worker_logs_scanned": len(logs),
            "debug_worker_lines": len(mine.splitlines()),
            "debug_lines": mine.count('"debug"'),
            **leaks,
        },
    )
    assert mine.strip(), "the worker wrote no log at all: the test would prove nothing"
    assert leaks == {"patient_id_in_clear": 0, "name": 0, "raw_vitals": 0}
    assert worker.poll() is None
