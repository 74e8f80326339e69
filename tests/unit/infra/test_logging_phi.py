import logging

import structlog
from structlog.testing import capture_logs

from vigil.infra.logging import patient_hash, redact_phi


def test_patient_hash_is_keyed_and_stable() -> None:
    assert patient_hash("p000123") == patient_hash("p000123")
    assert patient_hash("p000123") != patient_hash("p000124")
    assert "p000123" not in patient_hash("p000123")


def test_redact_processor_drops_identifiers_and_values() -> None:
    out = redact_phi(None, "info", {"event": "x", "patient_id": "p1", "value": 120.0, "patient": "p1", "ok": 1})
    assert out["patient_id"] == "[redacted]" and out["value"] == "[redacted]" and out["ok"] == 1


def test_capture_logs_sees_only_hashes() -> None:
    with capture_logs(processors=[redact_phi]) as logs:
        structlog.get_logger().info("scored", patient=patient_hash("p42"), patient_id="p42", value=150)
    text = repr(logs)
    assert "p42" not in text.replace(patient_hash("p42"), "") and "150" not in text
    logging.getLogger().handlers.clear()


def test_tracebacks_are_logged_as_frames_without_locals(capsys) -> None:
    import json

    from vigil.infra.logging import configure_logging, get_logger

    configure_logging(fmt="json", level="INFO")

    def fail(record: dict[str, object]) -> None:
        secret_hr = record["hr"]  # a local holding a patient's value must not reach the log
        raise ValueError(f"bad record {len(str(secret_hr))}")

    try:
        fail({"hr": 173.25})
    except ValueError as exc:
        get_logger("t").error("event.poison", exc_info=exc)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    logging.getLogger().handlers.clear()
    record = json.loads(line)
    frames = record["exception"][0]["frames"]
    assert record["exception"][0]["exc_type"] == "ValueError"
    assert any(f["name"] == "fail" for f in frames)
    assert all("locals" not in f for f in frames) and "173.25" not in line
