"""Prometheus metrics shared by the worker and the web app (names start with ``vigil_``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class BoundedLabels:
    """Label values that come from input (ward and unit names): the first ``limit`` keep their name,
    later ones share ``other``, so memory and series per process stay bounded whatever a feed sends."""

    def __init__(self, limit: int, other: str = "other") -> None:
        self.limit, self.other = limit, other
        self._kept: set[str] = set()

    def keep(self, value: str) -> tuple[str, bool]:
        """(the label ``value`` is counted under, whether it was kept just now)."""
        if value in self._kept:
            return value, False
        if len(self._kept) >= self.limit:
            return self.other, False
        self._kept.add(value)
        return value, True

    def clear(self) -> None:
        self._kept.clear()


EVENTS_IN = Counter(
    "vigil_events_in_total", "Events read from input topics, counted once their batch is handled", ["topic"]
)
EVENTS_ACCEPTED = Counter("vigil_events_accepted_total", "Events validated and normalized, once their batch is handled")
DEAD_LETTERS = Counter(
    "vigil_dead_letters_total",
    "Inputs sent to the dead-letter topic, counted once delivered, under each of the letter's reasons (an input "
    "refused for several counts once in each)",
    ["reason"],
)


def count_dead_letters(letter_reasons: Iterable[Sequence[str]]) -> None:
    """Count delivered dead letters, each under each of its reasons: one refused for clock_skew and
    unmapped_code counts once in each, so that no cause hides behind another (docs/interop.md,
    "Dead-letter reasons"). The workers, the MLLP listener and the FHIR intake count so."""
    for reasons in letter_reasons:
        for reason in reasons:
            DEAD_LETTERS.labels(reason).inc()


SCORES = Counter("vigil_scores_total", "Risk scores published, counted once delivered")
MLLP_MESSAGES = Counter("vigil_mllp_messages_total", "HL7v2 messages answered by the MLLP listener", ["ack"])
MLLP_EVENTS = Counter("vigil_mllp_events_total", "Events the MLLP listener published on vigil.events.raw")
MLLP_UNPUBLISHED = Counter(
    "vigil_mllp_unpublished_total",
    "MLLP items whose records the broker did not take: a message (answered AR, sent again by its sender) or "
    "stray bytes (their dead letter, after 3 tries, lost: only this count and the log line mllp.unpublished)",
    ["what"],
)
MLLP_CONNECTIONS = Gauge("vigil_mllp_connections", "Open MLLP connections")
ALERTS = Counter("vigil_alerts_total", "Alert transitions published, counted once delivered", ["state", "severity"])
WINDOWS_RESTARTED = Counter(
    "vigil_windows_restarted_total",
    "Patients whose window started again at hour 0: a measurement more than a week after its newest hour "
    "(a device clock that was wrong on the first event)",
)
DEMOGRAPHICS_UNCHANGED = Counter(
    "vigil_demographics_unchanged_total",
    "Ages and sexes sent again unchanged (HL7v2 and FHIR feeds send them beside every result message) with no "
    "event of the patient's in their batch to be named by: a message sent again, its measurements duplicate "
    "dead letters. Nothing to score; counted once the batch is done",
)
REDELIVERIES_SKIPPED = Counter(
    "vigil_redeliveries_skipped_total",
    "Events at or before the patient window's saved stream position skipped as redelivered (an exact copy, one "
    "older than the 48 h window, a discharge, cancel or another stay's event: their outcomes are out), counted "
    "once the batch is done. More than a restart's batch: the offsets went back under kept state (a topic "
    "recreated, a replica cluster)",
)
ANSWERS_UNAPPLIED = Counter(
    "vigil_alert_answers_unapplied_total",
    "Acknowledgements, snoozes and resolutions that changed nothing: the alert not active (not_active), "
    "given before the alert was raised again (before_raise), given before the answer last applied "
    "(superseded), or already so (already)",
    ["why"],
)
STAYS_ENDED = Counter(
    "vigil_stays_ended_total",
    "Stays ended (published on vigil.stays, counted once delivered), by what ended them: discharge, transfer_out, "
    "cancel_admit",
    ["by"],
)
STAYS_RESUMED = Counter(
    "vigil_stays_resumed_total",
    "Ended stays resumed by a cancel of their discharge (published on vigil.stays, counted once delivered)",
)
CARE_CLOCKS_MOVED = Counter(
    "vigil_care_clocks_moved_total",
    "Care clocks the treatment agent did not write because a stay ended or resumed after it read them "
    "(the stay's clock stands; its next score recomputes the care score)",
)
BATCH_SIZE = Histogram(
    "vigil_inference_batch_size", "Patients per inference batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
INFERENCE_SECONDS = Histogram(
    "vigil_inference_seconds",
    "Model inference time per batch",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
REDIS_SECONDS = Histogram(
    "vigil_redis_seconds",
    "Redis round trip per batch",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 2.0),
)
SEQUENCE_RESTARTS = Counter(
    "vigil_sequence_state_restarts_total",
    "Patients whose carried sequence-model state was written by another model (a bundle changed) "
    "or was not finite: their deterioration score replayed from the window (from a zero state, or from the "
    "boundary's state where only the newer state was not finite)",
)
MODEL_FAILURES = Counter(
    "vigil_model_failures_total",
    "Patients scored without a model's score because the models failed on their inputs, counted once delivered: "
    "an exception (by its type: every model left out, rule scores only; log models.failed, one line for a whole "
    "batch the models failed) or a probability that "
    "is not a number (not_a_number: that model, and the combined risk when it reads it, left out; log "
    "models.not_a_number)",
    ["error"],
)
BUNDLE_INFO = Gauge(
    "vigil_bundle_info",
    "The model bundle this worker serves (1): its version, the deterioration model's kind and the "
    "tag its carried states bear; a rollout is done when every worker reports the new version",
    ["version", "sequence_kind", "state_tag"],
)
CONSUMER_LAG = Gauge("vigil_consumer_lag", "Consumer lag (messages) per topic", ["topic"])
CONSUMER_STALLED = Gauge(
    "vigil_consumer_stalled_partitions",
    "Partitions of this worker with records waiting and neither its position nor its handled events moving",
    ["topic"],
)
REDIS_UP = Gauge("vigil_redis_up", "1 when the worker's Redis calls succeed")
WORKER_READY = Gauge(
    "vigil_worker_ready",
    "1 when the worker is ready (its /readyz rule: Redis answers, no agent crash-looping or stuck, no partition "
    "stalled, the event loop running)",
)
BROKER_LOOK_AGE = Gauge(
    "vigil_broker_look_age_seconds",
    "Seconds since the worker last read its partitions' end offsets and positions from the broker (every 5 s "
    "while the broker answers; a worker holding no partition asks for one end offset instead)",
)
TIMER_FAILURES = Counter(
    "vigil_timer_failures_total",
    "Exceptions a worker's timer or task raised that were not the broker or Redis away (caught: a timer's next "
    "tick runs)",
    ["timer"],
)
TIMER_SUPERSEDED = Counter(
    "vigil_alert_timer_superseded_total",
    "Escalation-timer changes not written: the alert state changed after the timer read it (agents/alert.py)",
)
STATES_SUPERSEDED = Counter(
    "vigil_states_superseded_total",
    "Patients whose state a batch did not write: another worker wrote it after the batch read it (infra/redis.py)",
)
WINDOWS_UNREADABLE = Counter(
    "vigil_windows_unreadable_total",
    "Patient windows in Redis that did not read (damaged): the stay's window started afresh (infra/redis.py)",
)
ALERT_STATES_UNREADABLE = Counter(
    "vigil_alert_states_unreadable_total", "Alert states the escalation timer could not parse (skipped)"
)
EVENT_LOOP_SILENT = Gauge(
    "vigil_event_loop_silent_seconds", "Seconds since the worker's event loop last ran its 1 s beat (agents/loop.py)"
)
INTEROP_IGNORED = Counter("vigil_interop_ignored_total", "FHIR/HL7 parts deliberately not mapped", ["reason"])
UNKNOWN_CODES = Counter(
    "vigil_unknown_codes_total",
    "Unmapped codes seen in FHIR/HL7 input (system|code; the first 500 codes by name, then 'other')",
    ["code"],
)
FHIR_UNPLACED = Counter(
    "vigil_fhir_unplaced_total",
    "FHIR results read without a unit where the site names its monitored units: Vigil has read no "
    "Encounter of theirs (in the payload or kept from an earlier one), so they are scored as if from a "
    "monitored unit; send the Encounters in progress first (docs/interop.md, 'Going live with a FHIR feed')",
)
IGNORED_UNITS = Counter(
    "vigil_ignored_units_total",
    "HL7v2 ORU^R01 messages ignored because their point of care (PV1-3.1) is neither a monitored nor an "
    "away unit (infra.unmapped: at most 256 units named, then 'other')",
    ["unit"],
)
# Input drift per ward (agents/drift.py, models/drift.py): PSI of the live inputs vs the training reference
DRIFT_PSI = Gauge(
    "vigil_drift_psi",
    "PSI of a ward's live input vs the training reference (kind: measured = measurement rate, value = feature)",
    ["ward", "kind", "input"],
)
# The fleet as this worker reads it from Redis (agents/fleet.py, infra/fleet.py), its consumer group only
FLEET_WORKERS = Gauge("vigil_fleet_workers", "Live workers of this worker's consumer group")
FLEET_CONFIGURATIONS = Gauge(
    "vigil_fleet_configurations",
    "Distinct (bundle, alert threshold) served by the live scoring workers of this worker's consumer group; "
    "above 1: patients are scored by different models depending on their partition",
)
DRIFT_MONITORING = Gauge(
    "vigil_drift_monitoring",
    "1 when this worker compares its wards' inputs with the bundle's training reference; 0 when off "
    "(disabled, or the bundle has no usable reference)",
)
DRIFT_MAX_PSI = Gauge("vigil_drift_max_psi", "Largest input PSI of a ward", ["ward"])
DRIFT_DRIFTED = Gauge("vigil_drift_drifted", "1 when a ward's largest input PSI exceeds its threshold", ["ward"])
DRIFT_PATIENT_HOURS = Gauge("vigil_drift_patient_hours", "Closed patient-hours in a ward's drift window", ["ward"])
DRIFT_THRESHOLD = Gauge(
    "vigil_drift_threshold", "Largest input PSI a ward of its size shows on training data (99th percentile)", ["ward"]
)
# The alert threshold the combined model is served at (models/site_threshold.py: shipped, or moved
# for the site's septic-stay prevalence, or raised to the burden ceiling), and the share of set A's
# hours (out of fold) at or above it: compare with the live share of closed hours per ward below
ALERT_THRESHOLD = Gauge("vigil_alert_threshold", "Combined risk at or above which the model alerts", ["rule"])
ALERT_THRESHOLD_TRAINING_SHARE = Gauge(
    "vigil_alert_threshold_training_share", "Share of set-A hours (out of fold) at or above the alert threshold"
)
TRAINING_MEAN_RISK = Gauge(
    "vigil_training_mean_risk",
    "Set A's mean combined risk (out of fold): a ward's mean risk (vigil_closed_hours_risk_total over "
    "vigil_closed_hours_total) is read against it",
)
CLOSED_HOURS = Counter(
    "vigil_closed_hours_total",
    "Closed patient-hours scored per ward, each once, when its final score is delivered; above_threshold=1 where "
    "the combined risk reached the alert threshold",
    ["ward", "above_threshold"],
)
CLOSED_HOURS_RISK = Counter(
    "vigil_closed_hours_risk_total",
    "Sum of the combined risk of the closed patient-hours scored per ward: over vigil_closed_hours_total, "
    "the ward's mean risk (VIGIL_SITE__MEAN_RISK is the site's)",
    ["ward"],
)


# Gauges only a worker gives a value (callbacks it sets at start, agents/ and cli/worker.py; its
# bundle's threshold figures).
# Another process (the dashboard, the MLLP listener) leaves them out of its /metrics: their 0 there
# would read as Redis down, a worker not ready (and page for it, deploy/prometheus).
WORKER_ONLY = frozenset(
    {
        "vigil_redis_up",
        "vigil_worker_ready",
        "vigil_broker_look_age_seconds",
        "vigil_event_loop_silent_seconds",
        "vigil_fleet_workers",
        "vigil_fleet_configurations",
        "vigil_drift_monitoring",
        "vigil_alert_threshold_training_share",
        "vigil_training_mean_risk",
    }
)


class _OutsideWorker:
    """The default registry's families that start with ``prefix``, less ``WORKER_ONLY``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def collect(self) -> Iterator[Any]:
        for family in REGISTRY.collect():
            if family.name.startswith(self.prefix) and family.name not in WORKER_ONLY:
                yield family


def registry_outside_worker(prefix: str = "") -> CollectorRegistry:
    """What a process other than a worker serves on /metrics: the default registry (``prefix``:
    only the families starting with it) without the worker's own gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_OutsideWorker(prefix))  # type: ignore[arg-type]
    return registry


def drop_ward_drift(ward: str) -> None:
    """Every ward-level drift series of ``ward`` (not the per-input ``DRIFT_PSI``, whose inputs the
    caller knows): a ward forgotten, its figures must not stand."""
    for gauge in (DRIFT_MAX_PSI, DRIFT_THRESHOLD, DRIFT_DRIFTED, DRIFT_PATIENT_HOURS):
        with contextlib.suppress(KeyError):  # a series never set: prometheus_client raises KeyError
            gauge.remove(ward)
