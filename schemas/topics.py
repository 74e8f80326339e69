"""Topic names: one place. Every topic is keyed by patient_id (``vigil.drift``: by ward)."""

from __future__ import annotations

EVENTS_RAW = "vigil.events.raw"
EVENTS = "vigil.events"
SCORES = "vigil.scores"
ALERTS = "vigil.alerts"
ALERT_ACKS = "vigil.alerts.acks"
ALERTS_FHIR = "vigil.alerts.fhir"
DEADLETTER = "vigil.deadletter"
TREATMENT_REQUESTS = "vigil.treatment.requests"
TREATMENT_SCORES = "vigil.treatment.scores"
INGEST_FHIR = "vigil.ingest.fhir"
INGEST_HL7V2 = "vigil.ingest.hl7v2"
AUDIT = "vigil.audit"
DRIFT = "vigil.drift"  # keyed by ward, not patient
STAYS = "vigil.stays"  # the end of each stay (discharge): monitoring systems and the dashboard

ALL_TOPICS = (
    EVENTS_RAW,
    EVENTS,
    SCORES,
    ALERTS,
    ALERT_ACKS,
    ALERTS_FHIR,
    DEADLETTER,
    TREATMENT_REQUESTS,
    TREATMENT_SCORES,
    INGEST_FHIR,
    INGEST_HL7V2,
    AUDIT,
    DRIFT,
    STAYS,
)
