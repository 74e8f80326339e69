"""Replay the alert agent's own lifecycle (``models.alerting.on_score``) over a stay's hourly scores:
what on-call staff would feel from a model and NEWS2 (``vigil evaluate``'s ``alerting`` block,
``models.train.burden``).

Pages: the transitions a pager pages on (docs/integration.md: ``open`` and ``escalated``): an alert
opening, escalating because the risk band rose, or escalating again because the patient is worse than
at its last raise. Time-based reminders (escalation of an unacknowledged alert) are not replayed, as
nobody acknowledges in a retrospective replay; nor, for the same reason, are snoozes and their ends.
Onset is the challenge's t_sepsis (first SepsisLabel hour + 6); lead time = onset - hour of the first
page before it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.models.alerting import AlertPolicy, PatientAlertState, on_score
from vigil.models.early_warning import news2_band
from vigil.models.utility import DT_EARLY, DT_OPTIMAL
from vigil.schemas.scores import ModelScore, RiskScore, RuleScore

T0 = datetime(2020, 1, 1, tzinfo=UTC)
PAGED = ("open", "escalated")  # what docs/integration.md tells a pager to page on
EMPTY = RuleScore(name="qSOFA", total=0, parameters={})


def _score(hour: int, news2: int, single3: bool, prob: float | None, threshold: float) -> RiskScore:
    at = T0 + timedelta(hours=hour)
    models = (
        []
        if prob is None
        else [
            ModelScore(
                model="combined",
                version="oof",
                probability=float(prob),
                threshold=threshold,
                positive=prob >= threshold,
            )
        ]
    )
    return RiskScore(
        score_id=str(hour),
        patient_id="p",
        hour=hour,
        scored_at=at,
        observed_at=at,
        event_ids=[],
        news2=RuleScore(
            name="NEWS2", total=news2, parameters={}, band=news2_band(news2, single3), single_parameter_3=single3
        ),
        qsofa=EMPTY,
        sirs=RuleScore(name="SIRS", total=0, parameters={}),
        models=models,
    )


def t_sepsis(labels: np.ndarray) -> int:
    """The challenge's onset of a septic stay: its first SepsisLabel hour + 6 (``models.utility``)."""
    return int(np.argmax(labels)) - DT_OPTIMAL


def opened_within_12h_before(onset: int, opened: list[int]) -> bool:
    """Whether an alert opened in the hours the PhysioNet 2019 utility rewards before onset:
    t_sepsis - 12 < t < t_sepsis. The utility's reward is 0 at t_sepsis - 12 (its ramp starts there,
    as ``models.train.labels`` reads it), so an alert opening exactly 12 h before was counted here and is
    not. ``vigil evaluate``'s alerting block and ``models.train.burden`` both count with it."""
    return any(onset + DT_EARLY < t < onset for t in opened)


def simulate(
    news2: np.ndarray, single3: np.ndarray, prob: np.ndarray | None, threshold: float, policy: AlertPolicy
) -> tuple[int, list[int]]:
    """(pages, hours at which an alert opened) for one stay: every transition the stream would publish
    that a pager pages on. The policy's time-based escalation is switched off here, whatever it says:
    in a replay nobody acknowledges, so every alert would page again at its next hour."""
    state = PatientAlertState()
    replayed = replace(policy, escalate_after_s=math.inf)
    pages, opened = 0, []
    for t in range(len(news2)):
        p = None if prob is None else float(prob[t])
        for alert in on_score(state, _score(t, int(news2[t]), bool(single3[t]), p, threshold), replayed):
            if alert.state in PAGED:
                pages += 1
            if alert.state == "open":
                opened.append(t)
    return pages, opened


class AlertReplay:
    """Collects stays (labels, model probability and label, NEWS2), then replays them all."""

    def __init__(self, policy: AlertPolicy | None = None) -> None:
        # no time-based reminders in a retrospective replay
        self.policy = policy or AlertPolicy(escalate_after_s=1e12)
        self.stays: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(
        self, labels: np.ndarray, prob: np.ndarray, label: np.ndarray, news2: np.ndarray, single3: np.ndarray
    ) -> None:
        self.stays.append((labels, prob, label, news2, single3))

    def summary(self, threshold: float | None = None) -> dict[str, float | int | str | None]:
        """Replay every stay at ``threshold``: the one the predictions were labelled at. Without it
        (predictions from elsewhere) it is read back from the labels as the lowest probability
        labelled positive, which can sit above the real one (no hour need fall exactly on it): the
        decisions are the same, but the exit of the hysteresis (threshold x exit ratio) moves."""
        source = "given"
        if threshold is None:
            positives = [p[b.astype(bool)] for _, p, b, _, _ in self.stays if b.any()]
            threshold = float(min(x.min() for x in positives)) if positives else None
            source = "lowest probability labelled positive"
        replayed = float("inf") if threshold is None else threshold
        pages, hours, septic, early, early12, quiet_paged = 0, 0, 0, 0, 0, 0
        leads: list[float] = []
        for labels, prob, _, news2, single3 in self.stays:
            n_pages, opened = simulate(news2.astype(int), single3.astype(bool), prob, replayed, self.policy)
            pages += n_pages
            hours += len(labels)
            if labels.any():
                septic += 1
                onset = t_sepsis(labels)
                before = [t for t in opened if t < onset]
                if before:
                    early += 1
                    leads.append(float(onset - before[0]))
                early12 += opened_within_12h_before(onset, opened)
            else:
                quiet_paged += n_pages > 0
        stays = len(self.stays)
        return {
            "pages_per_patient_day": round(24.0 * pages / max(hours, 1), 3),
            "septic_stays_paged_before_onset": round(early / septic, 4) if septic else None,
            "median_lead_h": float(np.median(leads)) if leads else None,
            # an alert opening in the 12 h the challenge's utility rewards, not a day or more before
            "septic_stays_alert_opened_within_12h_before_onset": round(early12 / septic, 4) if septic else None,
            # the stays that woke someone and never became septic
            "non_septic_stays_paged": round(quiet_paged / (stays - septic), 4) if stays > septic else None,
            "septic_stays": septic,
            "model_threshold": None if threshold is None else round(threshold, 6),
            "model_threshold_from": source if threshold is not None else None,
            "policy": "models.alerting lifecycle: NEWS2 bands + combined model, hysteresis, 6 h suppression",
        }
