"""vigil_closed_hours_total: each ward's closed hours, split by whether the combined risk reached the
served alert threshold (the live alert share, against vigil_alert_threshold_training_share), and
vigil_closed_hours_risk_total: the sum of their combined risk (the ward's mean risk, VIGIL_SITE__MEAN_RISK)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from vigil.agents.scoring import count_closed_hour
from vigil.schemas.scores import ModelScore


def _score(model: str, p: float, threshold: float) -> ModelScore:
    return ModelScore(model=model, version="t", probability=p, threshold=threshold, positive=p >= threshold)


def _count(ward: str, above: str) -> float:
    return REGISTRY.get_sample_value("vigil_closed_hours_total", {"ward": ward, "above_threshold": above}) or 0.0


def _risk(ward: str) -> float:
    return REGISTRY.get_sample_value("vigil_closed_hours_risk_total", {"ward": ward}) or 0.0


def test_hours_are_counted_by_ward_and_by_the_combined_score_only() -> None:
    before = {(w, a): _count(w, a) for w in ("ICU-T", "unknown") for a in ("0", "1")}
    risk_before = {w: _risk(w) for w in ("ICU-T", "unknown")}
    count_closed_hour("ICU-T", [_score("sepsis_diagnosis", 0.9, 0.5), _score("combined", 0.1, 0.3)])
    count_closed_hour("ICU-T", [_score("combined", 0.4, 0.3)])
    count_closed_hour(None, [_score("combined", 0.3, 0.3)])
    count_closed_hour(None, [_score("sepsis_diagnosis", 0.9, 0.5)])  # no combined score: not counted
    assert _count("ICU-T", "0") - before[("ICU-T", "0")] == 1
    assert _count("ICU-T", "1") - before[("ICU-T", "1")] == 1
    assert _count("unknown", "1") - before[("unknown", "1")] == 1
    assert _count("unknown", "0") - before[("unknown", "0")] == 0
    # the combined risk only, summed per ward: mean risk = risk_total / hours
    assert abs(_risk("ICU-T") - risk_before["ICU-T"] - 0.5) < 1e-9
    assert abs(_risk("unknown") - risk_before["unknown"] - 0.3) < 1e-9


def test_patients_whose_carried_state_another_bundle_wrote_are_counted() -> None:
    """vigil_sequence_state_restarts_total: one per patient whose states were dropped in a batch."""
    import numpy as np

    from vigil.agents.scoring import count_sequence_restarts
    from vigil.models.stepping import StayCarry
    from vigil.models.stream_step import HourScore, StepOutcome

    def outcome(restarted: bool) -> StepOutcome:
        return StepOutcome(HourScore(3, np.zeros(1, np.float32), []), [], np.zeros((0, 1)), StayCarry(), restarted)

    before = REGISTRY.get_sample_value("vigil_sequence_state_restarts_total") or 0.0
    assert count_sequence_restarts([outcome(True), outcome(False), outcome(True)]) == 2
    assert count_sequence_restarts([outcome(False)]) == 0
    assert REGISTRY.get_sample_value("vigil_sequence_state_restarts_total") - before == 2
