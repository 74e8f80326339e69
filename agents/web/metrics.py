"""Web-side Prometheus metrics (names start with ``vigil_web_``); the shared ones live in infra.metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FEED_MESSAGES = Counter("vigil_web_feed_messages_total", "Records the dashboard feed consumed", ["topic"])
FEED_ERRORS = Counter("vigil_web_feed_errors_total", "Feed records the ward model refused or failed on", ["topic"])
FEED_LAG = Gauge("vigil_web_feed_lag", "Dashboard feed consumer lag (end offset - position)", ["topic"])
SSE_CLIENTS = Gauge("vigil_web_sse_clients", "Connected server-sent-event clients")
WARD_PATIENTS = Gauge("vigil_web_ward_patients", "Patients held in the dashboard's ward model")
REDIS_PING = Histogram(
    "vigil_web_redis_ping_seconds",
    "Redis PING round trip from the web app",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 2.0),
)
ACKS = Counter("vigil_web_acks_total", "Acknowledgements published from the dashboard", ["action"])
LOGINS = Counter("vigil_web_logins_total", "Sign-in attempts", ["outcome"])
FHIR_REQUESTS = Counter("vigil_web_fhir_requests_total", "HTTP FHIR intake requests", ["outcome"])
FHIR_EVENTS = Counter("vigil_web_fhir_events_total", "Events produced from HTTP FHIR intake")
