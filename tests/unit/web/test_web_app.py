"""The dashboard app on the in-memory feed: sign-in, cookies, CSRF, roles, health, metrics, FHIR intake."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs
from web_builders import API_TOKEN, alert, csrf_of, risk_score, sign_in

from vigil.infra.metrics import WORKER_ONLY
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck
from vigil.schemas.deadletter import DeadLetter
from vigil.schemas.events import PatientEvent

FIXTURES = Path(__file__).parents[1] / "codecs" / "fixtures" / "fhir"


def test_healthz_is_200_without_auth(client) -> None:
    assert client.get("/healthz").status_code == 200


def test_readyz_reports_each_dependency(client, feed) -> None:
    assert client.get("/readyz").status_code == 200
    feed.assigned = False
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["feed_assigned"] is False and r.json()["ready"] is False


def test_metrics_are_prometheus_text_named_vigil(client, feed) -> None:
    feed.ingest(topics.SCORES, risk_score("p1", 1, 3, "low").model_dump_json().encode())
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    names = {line.split()[2] for line in r.text.splitlines() if line.startswith("# TYPE")}
    assert names and all(n.startswith("vigil_") for n in names), names
    assert {"vigil_web_feed_messages_total", "vigil_web_sse_clients", "vigil_web_feed_lag"} <= names
    assert "vigil_dead_letters_total" in r.text and "vigil_scores_total" in r.text  # the shared metrics stay
    # a worker's own gauges would read 0 here (Redis down, not ready) and page for it: left out
    assert not names & WORKER_ONLY, names & WORKER_ONLY


def test_root_without_session_redirects_to_login_and_shows_no_ward_data(client, feed) -> None:
    feed.ingest(topics.SCORES, risk_score("secret-pid", 1, 3, "low").model_dump_json().encode())
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "secret-pid" not in r.text
    for path in ("/api/state", "/api/stream"):
        r = client.get(path)
        assert r.status_code == 401 and "secret-pid" not in r.text


def test_login_sets_a_strict_httponly_session_cookie(client) -> None:
    r = sign_in(client, "ann")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("vigil_session="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=strict" in flags
    assert client.get("/").status_code == 200
    state = client.get("/api/state").json()
    assert state["user"] == "ann" and state["role"] == "clinician" and state["may_acknowledge"]


def test_bad_password_and_unknown_user_are_refused(client) -> None:
    assert sign_in(client, "ann", "wrong").status_code == 401
    assert sign_in(client, "nobody", "whatever").status_code == 401
    assert "vigil_session" not in client.cookies
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_needs_the_form_csrf_token(client) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "ann", "password": "x", "csrf": "forged"})
    assert r.status_code == 403


def test_forged_session_cookie_is_ignored(client) -> None:
    client.cookies.set("vigil_session", "eyJ1IjoiYW5uIiwiciI6ImNsaW5pY2lhbiJ9.forged.sig")
    assert client.get("/", follow_redirects=False).status_code == 303


def _open_alert(feed, pid: str = "p-ack") -> str:
    feed.ingest(topics.SCORES, risk_score(pid, 3, 6, "medium").model_dump_json().encode())
    feed.ingest(topics.ALERTS, alert(pid, alert_id="alert-1").model_dump_json().encode())
    return "alert-1"


def test_ack_requires_the_csrf_token(client, feed) -> None:
    alert_id = _open_alert(feed)
    sign_in(client, "ann")
    assert client.post(f"/api/alerts/{alert_id}/ack", json={"action": "acknowledge"}).status_code == 403
    r = client.post(f"/api/alerts/{alert_id}/ack", json={}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    r = client.post(
        f"/api/alerts/{alert_id}/ack",
        json={},
        headers={"X-CSRF-Token": csrf_of(client), "Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert feed.produced == []


def test_clinician_ack_publishes_an_alert_ack_and_audits_it(client, feed) -> None:
    alert_id = _open_alert(feed, "p-audit")
    sign_in(client, "ann")
    with capture_logs() as logs:
        r = client.post(
            f"/api/alerts/{alert_id}/ack", json={"action": "acknowledge"}, headers={"X-CSRF-Token": csrf_of(client)}
        )
    assert r.status_code == 202 and r.json()["by"] == "ann"
    ((topic, key, value),) = feed.produced
    ack = AlertAck.model_validate_json(value)
    assert topic == topics.ALERT_ACKS and key == b"p-audit"
    assert (ack.alert_id, ack.patient_id, ack.action, ack.by) == ("alert-1", "p-audit", "acknowledge", "ann")
    audit = [e for e in logs if e["event"] == "alert_ack"]
    assert audit and audit[0]["user"] == "ann" and audit[0]["at"]
    assert "p-audit" not in json.dumps(logs, default=str)  # hashed, never the id


def test_viewer_gets_403_on_ack(client, feed) -> None:
    alert_id = _open_alert(feed)
    sign_in(client, "vic")
    r = client.post(
        f"/api/alerts/{alert_id}/ack", json={"action": "resolve"}, headers={"X-CSRF-Token": csrf_of(client)}
    )
    assert r.status_code == 403 and feed.produced == []


def test_unknown_alert_is_404(client) -> None:
    sign_in(client, "ann")
    r = client.post("/api/alerts/nope/ack", json={}, headers={"X-CSRF-Token": csrf_of(client)})
    assert r.status_code == 404


def test_state_lists_patients_by_risk_with_open_alerts(client, feed) -> None:
    feed.ingest(topics.SCORES, risk_score("low-1", 2, 1, "low").model_dump_json().encode())
    feed.ingest(topics.SCORES, risk_score("high-1", 2, 8, "high").model_dump_json().encode())
    _open_alert(feed, "med-1")
    sign_in(client, "vic")
    state = client.get("/api/state").json()
    assert [p["label"] for p in state["patients"]] == ["med-1", "high-1", "low-1"]  # active alert first
    assert state["patients"][1]["band"] == "high"
    shown = state["patients"][0]["alerts"][0]
    assert shown["features"] == [{"text": "RR 27", "direction": "raises risk", "raises": True}]
    assert shown["short_id"] == "alert-1"[:8] and shown["now_text"].startswith("Now NEWS2 6 (medium)")
    assert all(p["row_id"] != p["label"] for p in state["patients"])


def test_logout_needs_csrf_and_ends_the_session(client) -> None:
    sign_in(client, "ann")
    token = csrf_of(client)
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.get("/", follow_redirects=False).status_code == 303


def test_security_headers(client) -> None:
    r = client.get("/login")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in r.headers  # plain HTTP (a TLS proxy in front sets its own)


def test_served_over_https_browsers_are_told_to_keep_to_it(settings, feed, users) -> None:
    from vigil.agents.web.app import create_app

    app = create_app(settings, feed, users=users, session_secret="test-secret", cookie_secure=True)
    with TestClient(app, base_url="https://testserver") as https:
        r = https.get("/login")
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    assert "secure" in r.headers["set-cookie"].lower()  # the sign-in's CSRF cookie never goes over HTTP


def test_https_options_name_the_setting_when_the_files_cannot_serve(tmp_path) -> None:
    """`vigil serve --tls-cert` (VIGIL_WEB__TLS_CERT): the certificate and key are loaded before the
    port is taken; a missing or unusable file is one line, not a uvicorn traceback."""
    import subprocess
    import sys

    from vigil.cli.serve import https_options
    from vigil.schemas.errors import UserError

    assert https_options(None, None) is None
    with pytest.raises(UserError, match="TLS_KEY .*needs VIGIL_WEB__TLS_CERT"):
        https_options(None, tmp_path / "key.pem")
    with pytest.raises(UserError, match="cannot use the certificate"):
        https_options(tmp_path / "missing.pem", None)
    (tmp_path / "not.pem").write_text("not a certificate")
    with pytest.raises(UserError, match="VIGIL_WEB__TLS_CERT"):
        https_options(tmp_path / "not.pem", None)
    made = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "stack", "compose-tls", "--out", str(tmp_path)], capture_output=True
    )
    assert made.returncode == 0, made.stderr
    web = tmp_path / "web.pem"  # key and chain in one file, as compose mounts it
    assert https_options(web, None) == (str(web), str(web))
    assert https_options(web, web) == (str(web), str(web))
    with pytest.raises(UserError, match="and key"):
        https_options(web, tmp_path / "redis.pem")  # another server's key


# --- FHIR intake ---------------------------------------------------------------------------------


def test_fhir_needs_the_bearer_token(client, feed) -> None:
    body = (FIXTURES / "observation-example-bloodpressure.json").read_bytes()
    assert client.post("/fhir/Observation", content=body).status_code == 401
    r = client.post("/fhir/Observation", content=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"
    assert feed.produced == []


def heart_rate_observation(patient: str, bpm: float = 112) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return json.dumps(
        {
            "resourceType": "Observation",
            "id": "hr-1",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": now,
            "valueQuantity": {
                "value": bpm,
                "unit": "beats/minute",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        }
    ).encode()


def test_fhir_observation_produces_events(client, feed) -> None:
    r = client.post(
        "/fhir/Observation",
        content=heart_rate_observation("fhir-1"),
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.json()["resourceType"] == "OperationOutcome"
    ((topic, key, value),) = feed.produced
    event = PatientEvent.model_validate_json(value)
    assert topic == topics.EVENTS_RAW and key == b"fhir-1"
    assert (event.patient_id, event.code, event.value) == ("fhir-1", "HR", 112)


def test_fhir_spec_example_without_a_time_of_day_is_400_with_the_reason(client, feed) -> None:
    # the specification's own blood-pressure example is dated 1999-07-02 (no time): not scoreable
    body = (FIXTURES / "observation-example-bloodpressure.json").read_bytes()
    r = client.post("/fhir/Observation", content=body, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "missing_time"
    assert [t for t, _, _ in feed.produced] == [topics.DEADLETTER]


def test_fhir_bundle_produces_events(client, feed) -> None:
    body = (FIXTURES / "bundle-searchset-vitals.json").read_bytes()
    r = client.post("/fhir", content=body, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code in (200, 201), r.text
    assert sum(t == topics.EVENTS_RAW for t, _, _ in feed.produced) >= 2


def test_fhir_garbage_is_400_and_dead_lettered_with_the_original_bytes(client, feed) -> None:
    body = b'{"resourceType": "Observation", "status": "final"'
    r = client.post("/fhir/Observation", content=body, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["severity"] == "error"
    ((topic, _, value),) = feed.produced
    dead = DeadLetter.model_validate_json(value)
    assert topic == topics.DEADLETTER and dead.original() == body and dead.reason


def test_ack_with_a_note_and_snooze_with_a_reason(client, feed) -> None:
    alert_id = _open_alert(feed, "p-note")
    sign_in(client, "ann")
    headers = {"X-CSRF-Token": csrf_of(client)}
    r = client.post(f"/api/alerts/{alert_id}/ack", json={"action": "snooze", "snooze_min": 30}, headers=headers)
    assert r.status_code == 422 and feed.produced == []  # a snooze needs a reason
    r = client.post(
        f"/api/alerts/{alert_id}/ack",
        json={"action": "snooze", "snooze_min": 30, "note": "lactate pending"},
        headers=headers,
    )
    assert r.status_code == 202 and r.json()["snooze_min"] == 30
    r = client.post(f"/api/alerts/{alert_id}/ack", json={"note": "  seen, fluids started  "}, headers=headers)
    assert r.status_code == 202
    acks = [AlertAck.model_validate_json(v) for _, _, v in feed.produced]
    assert [(a.action, a.note, a.snooze_min) for a in acks] == [
        ("snooze", "lactate pending", 30),
        ("acknowledge", "seen, fluids started", None),
    ]


def test_patient_page_and_history_need_a_session(client, feed) -> None:
    for hour in (1, 2, 3):
        feed.ingest(topics.SCORES, risk_score("p-hist", hour, 2 * hour, "low").model_dump_json().encode())
    feed.ingest(topics.ALERTS, alert("p-hist", alert_id="alert-h").model_dump_json().encode())
    acked = alert("p-hist", "acknowledged", alert_id="alert-h", by="ann").model_copy(update={"note": "seen"})
    feed.ingest(topics.ALERTS, acked.model_dump_json().encode())
    row_id = feed.model.snapshot()["patients"][0]["row_id"]
    assert client.get(f"/patient/{row_id}", follow_redirects=False).status_code == 303
    assert client.get(f"/api/patients/{row_id}").status_code == 401
    sign_in(client, "vic")
    assert client.get(f"/patient/{row_id}").status_code == 200
    detail = client.get(f"/api/patients/{row_id}").json()
    assert [h["news2"] for h in detail["history"]] == [2, 4, 6]
    assert detail["history"][0]["at_text"].endswith("UTC")
    assert [(e["state"], e["note"]) for e in detail["log"]] == [("acknowledged", "seen"), ("open", None)]
    assert client.get("/api/patients/unknown").status_code == 404
