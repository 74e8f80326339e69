"""The alert threshold of a site: the shipped one, moved for the site's septic-stay prevalence, and
held under an alert-burden ceiling (pure; the worker, ``vigil predict`` and ``vigil evaluate`` all
choose it here, so the stream and the offline path alert at the same risk).

The shipped threshold maximizes the normalized utility on set A, where 8.8 % of stays become septic.
A hospital where fewer (or more) of its ICU stays do is a prior shift: the utility of a septic stay's
alerts weighs less (more) against the false alarms of the others, and the best threshold moves up
(down). Training stores, beside the threshold, the threshold that maximizes the set-A utility
reweighted by the odds ratio of the two prevalences (Saerens et al., Neural Comput 2002;14:21) on a
grid of prevalences (``site_thresholds``), and the thresholds at which the out-of-fold risk flags
each share of set A's hours (``alert_share_curve``). On the shift tests the prevalence rule lifted
the worst unit-shift utility from 0.15-0.21 to 0.26-0.30 (docs/models.md, "Threshold rules").

The rule can lower the threshold a long way (at 20 % prevalence it flags about a third of set A's
hours): ``max_training_alert_share`` caps the share of set-A hours the chosen threshold may flag,
raising it where the prevalence rule would page more than a ward can answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from vigil.schemas.errors import UserError

Rule = Literal["shipped", "site_prevalence"]


class SiteThresholdError(UserError):
    """A site setting the bundle's stored tables cannot serve (out of range, or no table)."""


@dataclass(frozen=True)
class AlertThreshold:
    threshold: float  # the combined risk at or above which the model alerts
    rule: Rule
    shipped_threshold: float
    site_prevalence: float | None  # the site's septic-stay share the threshold was moved for
    capped: bool  # raised to honour max_training_alert_share
    training_alert_share: float | None  # share of set-A hours (out of fold) at or above ``threshold``

    def summary(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _share_curve(combined: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(thresholds ascending, the exact share of set-A hours at or above each), or None."""
    curve = combined.get("alert_share_curve")
    if not curve:
        return None
    thr, share = np.asarray(curve["threshold"], np.float64), np.asarray(curve["share"], np.float64)
    order = np.argsort(thr)
    return thr[order], share[order]


def training_alert_share(combined: Mapping[str, Any], threshold: float) -> float | None:
    """About the share of set-A hours whose out-of-fold risk is at or above ``threshold``
    (interpolated between the curve's points, exact on them; None: the bundle has no curve)."""
    curve = _share_curve(combined)
    if curve is None:
        return None
    thr, share = curve
    return float(np.interp(threshold, thr, share))


def _threshold_for_prevalence(combined: Mapping[str, Any], prevalence: float) -> float:
    table = combined.get("site_thresholds")
    if not table:
        raise SiteThresholdError(
            f"this bundle ({combined.get('version', '?')}) stores no thresholds by site prevalence: leave the "
            "site prevalence unset, or pin a table with `python -m vigil.models.train.threshold_rules "
            "--site-table <oof.npz> --manifest <bundle>/manifest.json`"
        )
    prev = np.array([r["prevalence"] for r in table], np.float64)
    thr = np.array([r["threshold"] for r in table], np.float64)
    order = np.argsort(prev)
    prev, thr = prev[order], thr[order]
    if not prev[0] <= prevalence <= prev[-1]:
        raise SiteThresholdError(
            f"site sepsis prevalence {prevalence:g} is outside the bundle's table ({prev[0]:g}-{prev[-1]:g}): "
            "give the share of the site's ICU stays that meet Sepsis-3 as a fraction (e.g. 0.057 for 5.7 %)"
        )
    return float(np.interp(prevalence, prev, thr))


def choose_threshold(
    combined: Mapping[str, Any],
    site_prevalence: float | None = None,
    max_training_alert_share: float | None = None,
) -> AlertThreshold:
    """The combined model's alert threshold for a site (``combined``: the manifest's entry)."""
    shipped = float(combined["threshold"])
    rule: Rule = "shipped"
    threshold = shipped
    if site_prevalence is not None:
        threshold, rule = _threshold_for_prevalence(combined, site_prevalence), "site_prevalence"
    capped = False
    if max_training_alert_share is not None:
        curve = _share_curve(combined)
        if curve is None:
            raise SiteThresholdError(
                f"this bundle ({combined.get('version', '?')}) stores no alert-share curve: leave the "
                "alert-share ceiling unset, or retrain"
            )
        thr, share = curve
        allowed = thr[share <= max_training_alert_share]
        if len(allowed) == 0:
            raise SiteThresholdError(
                f"alert-share ceiling {max_training_alert_share:g} is below the bundle's curve (its highest "
                f"threshold flags {share.min():g} of set-A hours): give a fraction such as 0.25"
            )
        floor = float(allowed.min())  # the lowest stored threshold that flags no more than the ceiling
        if threshold < floor:
            threshold, capped = floor, True
    return AlertThreshold(
        threshold=threshold,
        rule=rule,
        shipped_threshold=shipped,
        site_prevalence=site_prevalence,
        capped=capped,
        training_alert_share=training_alert_share(combined, threshold),
    )
