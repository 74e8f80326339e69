"""A site's alert threshold (models/site_threshold.py): moved by the site's septic-stay prevalence,
held under the alert-share ceiling, refused with one line where the bundle's tables cannot serve it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vigil.models.integrity import load_manifest
from vigil.models.site_threshold import Site, SiteThresholdError, choose_threshold, odds, training_alert_share
from vigil.models.stream_step import served_bundle_dir
from vigil.models.train.threshold_rules import alert_share_curve, pin_site_tables

SHIPPED = 0.04


def _combined() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    score = rng.beta(1, 20, 20_000)
    table = [
        {"prevalence": 0.02, "threshold": 0.09, "training_alert_share": float((score >= 0.09).mean())},
        {"prevalence": 0.088, "threshold": SHIPPED, "training_alert_share": float((score >= SHIPPED).mean())},
        {"prevalence": 0.20, "threshold": 0.02, "training_alert_share": float((score >= 0.02).mean())},
    ]
    combined: dict[str, Any] = {"version": "combined-test", "threshold": SHIPPED}
    pin_site_tables(combined, table, score)
    assert combined["training_mean_risk"] == pytest.approx(score.mean(), rel=1e-6)
    return dict(combined, score=score)


def test_no_site_setting_serves_the_shipped_threshold() -> None:
    c = _combined()
    chosen = choose_threshold(c)
    assert chosen.threshold == SHIPPED and chosen.rule == "shipped" and not chosen.capped
    assert chosen.training_alert_share == pytest.approx((c["score"] >= SHIPPED).mean(), abs=1e-5)


def test_fewer_septic_stays_raise_the_threshold_and_more_lower_it() -> None:
    c = _combined()
    grid = [0.02, 0.03, 0.057, 0.088, 0.12, 0.2]
    thresholds = [choose_threshold(c, Site(p)).threshold for p in grid]
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[0] == 0.09 and thresholds[3] == SHIPPED and thresholds[-1] == 0.02
    assert 0.04 < choose_threshold(c, Site(0.057)).threshold < 0.09
    assert choose_threshold(c, Site(0.057)).rule == "site_prevalence"


def test_the_ceiling_raises_a_threshold_that_would_flag_too_many_hours() -> None:
    c = _combined()
    low = choose_threshold(c, Site(0.2))
    assert low.training_alert_share is not None and low.training_alert_share > 0.3
    capped = choose_threshold(c, Site(0.2, 0.3))
    assert capped.capped and capped.threshold > low.threshold
    assert (c["score"] >= capped.threshold).mean() <= 0.3  # exact on the stored scores
    assert (c["score"] >= capped.threshold).mean() > 0.28  # and not far above the ceiling
    untouched = choose_threshold(c, Site(0.02, 0.3))  # already under it
    assert untouched.threshold == 0.09 and not untouched.capped


def test_settings_the_tables_cannot_serve_are_refused() -> None:
    c = _combined()
    with pytest.raises(SiteThresholdError, match="outside the bundle's table"):
        choose_threshold(c, Site(0.5))
    with pytest.raises(SiteThresholdError, match="below the bundle's curve"):
        choose_threshold(c, Site(None, 0.001))
    bare = {"version": "combined-old", "threshold": SHIPPED}
    with pytest.raises(SiteThresholdError, match="stores no thresholds by site prevalence"):
        choose_threshold(bare, Site(0.05))
    with pytest.raises(SiteThresholdError, match="stores no alert-share curve"):
        choose_threshold(bare, Site(None, 0.3))
    assert choose_threshold(bare).threshold == SHIPPED and training_alert_share(bare, SHIPPED) is None


def test_the_curve_holds_exact_shares_at_values_the_risk_takes() -> None:
    score = np.repeat([0.01, 0.05, 0.2], [700, 200, 100])  # a calibrated risk is tied in runs
    curve = alert_share_curve(score)
    assert set(curve["threshold"]) == {0.01, 0.05, 0.2}
    assert dict(zip(curve["threshold"], curve["share"], strict=True)) == {0.2: 0.1, 0.05: 0.3, 0.01: 1.0}


def test_the_served_bundle_reproduces_set_a_best_threshold_at_set_a_prevalence() -> None:
    combined = load_manifest(served_bundle_dir())["models"]["combined"]
    at_set_a = choose_threshold(combined, Site(0.088)).threshold
    assert at_set_a == pytest.approx(combined["set_a_best_threshold"], abs=1e-9)
    # without site settings the default hedges towards sites with fewer septic stays (prev1.5, 2.4):
    # never below set A's own best, so it never flags more hours than set A's optimum
    assert choose_threshold(combined).threshold == combined["threshold"] >= at_set_a
    shares = [choose_threshold(combined, Site(p)).training_alert_share for p in (0.02, 0.057, 0.088, 0.15)]
    assert shares == sorted(shares)


def test_a_model_that_already_moved_with_the_prevalence_keeps_the_shipped_threshold() -> None:
    """The mean risk is read with the prevalence: where the model's mean risk at the site moved by the
    same odds ratio as the septic-stay share (it sees why the site differs), nothing is corrected twice."""
    c = _combined()
    m0 = c["training_mean_risk"]
    moved = m0 * 0.5 / (1 - m0 + m0 * 0.5)  # odds(m0) halved
    p = 0.088 * 0.5 / (1 - 0.088 + 0.088 * 0.5)  # odds(8.8 %) halved
    both = choose_threshold(c, Site(p, None, moved))
    assert both.rule == "site_prevalence_and_risk" and both.effective_prevalence == pytest.approx(0.088)
    assert both.threshold == pytest.approx(SHIPPED)
    # the model did not move at all: the prevalence alone decides, as without a mean risk
    still = choose_threshold(c, Site(0.03, None, m0))
    assert still.threshold == pytest.approx(choose_threshold(c, Site(0.03)).threshold)
    # half the way: between the two
    half = choose_threshold(c, Site(0.03, None, m0 * 0.8))
    assert choose_threshold(c, Site(0.03)).threshold > half.threshold > SHIPPED
    assert odds(half.effective_prevalence) == pytest.approx(odds(0.03) * odds(m0) / odds(m0 * 0.8))


def test_a_mean_risk_the_tables_cannot_read_is_refused() -> None:
    c = _combined()
    with pytest.raises(SiteThresholdError, match="needs the site's sepsis prevalence"):
        choose_threshold(c, Site(None, None, 0.03))
    with pytest.raises(SiteThresholdError, match="outside it"):
        choose_threshold(c, Site(0.03, None, 0.9))  # effective prevalence far below the table
    bare = {
        "version": "combined-old",
        "threshold": SHIPPED,
        "site_thresholds": [{"prevalence": 0.02, "threshold": 0.1}],
    }
    with pytest.raises(SiteThresholdError, match="stores no training mean risk"):
        choose_threshold(bare, Site(0.05, None, 0.03))
