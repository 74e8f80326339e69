from __future__ import annotations

import numpy as np
import pytest

from vigil.models.utility import (
    auroc_auprc,
    best_threshold,
    normalized_utility,
    patient_utility,
    row_utilities,
    utility_curve,
    utility_tables,
)


def reference_utility(labels, predictions) -> float:  # type: ignore[no-untyped-def]
    """A direct transcription of the challenge's compute_prediction_utility loop."""
    dt_early, dt_optimal, dt_late, max_u_tp, min_u_fn, u_fp, u_tn = -12, -6, 3.0, 1, -2, -0.05, 0
    if np.any(labels):
        is_septic, t_sepsis = True, int(np.argmax(labels)) - dt_optimal
    else:
        is_septic, t_sepsis = False, float("inf")
    m_1 = float(max_u_tp) / float(dt_optimal - dt_early)
    b_1 = -m_1 * dt_early
    m_2 = float(-max_u_tp) / float(dt_late - dt_optimal)
    b_2 = -m_2 * dt_late
    m_3 = float(min_u_fn) / float(dt_late - dt_optimal)
    b_3 = -m_3 * dt_optimal
    u = np.zeros(len(labels))
    for t in range(len(labels)):
        if t <= t_sepsis + dt_late:
            if is_septic and predictions[t]:
                if t <= t_sepsis + dt_optimal:
                    u[t] = max(m_1 * (t - t_sepsis) + b_1, u_fp)
                elif t <= t_sepsis + dt_late:
                    u[t] = m_2 * (t - t_sepsis) + b_2
            elif not is_septic and predictions[t]:
                u[t] = u_fp
            elif is_septic and not predictions[t]:
                if t <= t_sepsis + dt_optimal:
                    u[t] = 0
                elif t <= t_sepsis + dt_late:
                    u[t] = m_3 * (t - t_sepsis) + b_3
            elif not is_septic and not predictions[t]:
                u[t] = u_tn
    return float(np.sum(u))


def test_challenge_docstring_example() -> None:
    # evaluate_sepsis_score.py: labels [0,0,0,0,1,1], predictions [0,0,1,1,1,1] -> 3.388888888888889
    assert patient_utility(np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 1, 1])) == pytest.approx(
        3.388888888888889
    )


def test_non_septic_false_alarms_cost_005_per_hour() -> None:
    assert patient_utility(np.zeros(10), np.r_[np.ones(4), np.zeros(6)]) == pytest.approx(-0.2)
    assert patient_utility(np.zeros(10), np.zeros(10)) == 0.0


def test_missed_case_costs() -> None:
    labels = np.r_[np.zeros(20), np.ones(20)]
    # first label at 20 -> t_sepsis 26; misses at t in (20, 29] cost -2/9 per hour past t=20
    assert patient_utility(labels, np.zeros(40)) == pytest.approx(reference_utility(labels, np.zeros(40)))
    assert patient_utility(labels, np.zeros(40)) < -8


def test_random_cases_match_reference_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        labels = np.zeros(n, dtype=int)
        if rng.random() < 0.5:
            labels[int(rng.integers(0, n)) :] = 1
        pred = (rng.random(n) < rng.random()).astype(int)
        assert patient_utility(labels, pred) == pytest.approx(reference_utility(labels, pred))


def test_normalized_bounds() -> None:
    labels = [np.r_[np.zeros(30), np.ones(10)], np.zeros(25)]
    from vigil.models.utility import best_predictions

    assert normalized_utility(labels, [best_predictions(x) for x in labels]) == pytest.approx(1.0)
    assert normalized_utility(labels, [np.zeros(len(x)) for x in labels]) == pytest.approx(0.0)


def test_threshold_curve_matches_direct_scoring() -> None:
    rng = np.random.default_rng(1)
    labels = [np.r_[np.zeros(30), np.ones(10)], np.zeros(25), np.r_[np.zeros(5), np.ones(3)]]
    scores = [rng.random(len(x)) for x in labels]
    u0, u1, best, inaction = utility_tables(labels)
    flat = np.concatenate(scores)
    thresholds, util = utility_curve(flat, u0, u1, best, inaction)
    for thr, u in zip(thresholds[::7], util[::7], strict=True):
        assert u == pytest.approx(normalized_utility(labels, [s >= thr for s in scores]))
    thr = best_threshold(flat, u0, u1, best, inaction)
    assert normalized_utility(labels, [s >= thr for s in scores]) == pytest.approx(util.max())


def test_row_utilities_shapes() -> None:
    u0, u1 = row_utilities(np.zeros(0))
    assert len(u0) == len(u1) == 0


def test_auroc_auprc() -> None:
    # challenge docstring: labels [0,0,0,0,1,1], predictions [0.3,0.4,0.6,0.7,0.8,0.8] -> 1.0, 1.0
    auroc, auprc = auroc_auprc(np.array([0, 0, 0, 0, 1, 1]), np.array([0.3, 0.4, 0.6, 0.7, 0.8, 0.8]))
    assert auroc == pytest.approx(1.0)
    assert auprc == pytest.approx(1.0)
    auroc, _ = auroc_auprc(np.array([1, 0, 1, 0]), np.array([0.1, 0.2, 0.3, 0.4]))
    assert auroc == pytest.approx(0.25)
