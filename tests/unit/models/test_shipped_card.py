"""The shipped bundle's model card is what its generator writes from metrics.json (a hand edit, or a
card left stale after a retrain, passed every test), and the refit model flags the share of hours the
stored threshold was chosen for, within the tolerance metrics.json states (stored as a sentence, it was
never checked: a retrain outside it would have shipped)."""

from __future__ import annotations

import json

from vigil.models.train import cards_stepping


def _bundle() -> tuple[dict, dict]:
    manifest = json.loads((cards_stepping.BUNDLE / "manifest.json").read_text())
    metrics = json.loads((cards_stepping.BUNDLE / "metrics.json").read_text())
    return manifest, metrics


def test_the_card_is_what_its_generator_writes_from_the_bundles_metrics() -> None:
    manifest, metrics = _bundle()
    assert cards_stepping.CARD.read_text() == cards_stepping.render(manifest, metrics), (
        "stale card: python -m vigil.models.train.cards_stepping"
    )


def test_the_refit_model_flags_the_share_of_hours_its_threshold_was_chosen_for() -> None:
    _, metrics = _bundle()
    check = metrics["combined"]["threshold_check"]
    assert check["tolerance"] == "refit share on non-septic stays within 0.5x-1.5x of the OOF share"
    ratio = check["refit_alert_share_non_septic_stays"] / check["oof_alert_share_non_septic_stays"]
    assert 0.5 <= ratio <= 1.5, ratio
