"""The alert threshold of a site: the shipped one, moved for the site's septic-stay prevalence, and
held under an alert-burden ceiling (pure; the worker, ``vigil predict`` and ``vigil evaluate`` all
choose it here, so the stream and the offline path alert at the same risk).

Set A's best threshold maximizes the normalized utility on set A, where 8.8 % of stays become
septic; since bundle 2.4 the shipped default, for a site that has set nothing, is higher: the
threshold of the best worst-case utility over 1/1.5, 1 and 1.5 times set A's prevalence (the manifest
keeps both, ``threshold`` and ``set_a_best_threshold``). A hospital where fewer (or more) of its ICU
stays become septic is a prior shift: the utility of a septic stay's
alerts weighs less (more) against the false alarms of the others, and the best threshold moves up
(down). Training stores, beside the threshold, the threshold that maximizes the set-A utility
reweighted by the odds ratio of the two prevalences (Saerens et al., Neural Comput 2002;14:21) on a
grid of prevalences (``site_thresholds``), and the thresholds at which the out-of-fold risk flags
each share of set A's hours (``alert_share_curve``). On the shift tests the prevalence rule lifted
the worst unit-shift utility from 0.15-0.21 to 0.26-0.30 (docs/models.md, "Threshold rules").

The prevalence alone double-counts where the model already sees why the site differs: on set A's
surgical ICU (4.1 % septic) the models' risk is already lower than on the whole of set A, and the
prevalence rule raised the threshold past its best (utility 0.324 against 0.354 at the shipped
threshold with bundle 2.2, 0.316 against 0.357 with 2.3; ``threshold_rules --wards``). The site's
mean risk (``Site.mean_risk``: the mean combined risk of its hours, label-free, from ``vigil
predict`` on an export of its stays or the worker's metrics) says how far the model moved by itself:
the table is read at the *effective* prevalence, the site's odds divided by the odds ratio of its
mean risk to set A's (``training_mean_risk``), so a model that already moved as far as the
prevalence did keeps set A's best threshold. As served (2.3) it gave the surgical unit 0.360
(hindsight 0.362) and the unit shifts 0.317-0.335 against the prevalence alone's 0.302-0.322,
flagging 16-20 % of the medical unit's hours instead of 38-42 % (docs/operations.md, "The alert
threshold of a site").

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

Rule = Literal["shipped", "site_prevalence", "site_prevalence_and_risk"]


class SiteThresholdError(UserError):
    """A site setting the bundle's stored tables cannot serve (out of range, or no table)."""


@dataclass(frozen=True)
class Site:
    """What a site can state about itself (``VIGIL_SITE__*``; all optional: none, the shipped threshold)."""

    sepsis_prevalence: float | None = None  # share of its ICU stays that meet Sepsis-3 (set A 8.8 %)
    max_training_alert_share: float | None = None  # flag no more than this share of set-A hours
    mean_risk: float | None = None  # the served model's mean combined risk over the site's hours


@dataclass(frozen=True)
class AlertThreshold:
    threshold: float  # the combined risk at or above which the model alerts
    rule: Rule
    shipped_threshold: float
    site_prevalence: float | None  # the site's septic-stay share the threshold was moved for
    site_mean_risk: float | None  # the model's mean risk at the site (None: not given)
    effective_prevalence: float | None  # the prevalence the table was read at (the site's, or corrected)
    capped: bool  # raised to honour max_training_alert_share
    training_alert_share: float | None  # share of set-A hours (out of fold) at or above ``threshold``
    training_mean_risk: float | None  # set A's mean risk (out of fold), what ``site_mean_risk`` is read against

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


def _threshold_for_prevalence(combined: Mapping[str, Any], prevalence: float, site: Site) -> float:
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
        if site.mean_risk is not None:
            raise SiteThresholdError(
                f"site sepsis prevalence {site.sepsis_prevalence:g} with mean risk {site.mean_risk:g} reads the "
                f"table at {prevalence:.4g}, outside it ({prev[0]:g}-{prev[-1]:g}): check that the mean risk is "
                "the served model's mean combined risk over the site's hours (a fraction, `vigil predict --json` "
                "mean_risk), or leave it unset"
            )
        raise SiteThresholdError(
            f"site sepsis prevalence {prevalence:g} is outside the bundle's table ({prev[0]:g}-{prev[-1]:g}): "
            "give the share of the site's ICU stays that meet Sepsis-3 as a fraction (e.g. 0.057 for 5.7 %)"
        )
    return float(np.interp(prevalence, prev, thr))


def effective_prevalence(combined: Mapping[str, Any], site: Site) -> float | None:
    """The prevalence the site table is read at: the site's, divided in odds by how far the model's
    mean risk at the site already moved from set A's (None: no prevalence given)."""
    p = site.sepsis_prevalence
    if p is None:
        if site.mean_risk is not None:
            raise SiteThresholdError(
                "a site mean risk needs the site's sepsis prevalence beside it (the two are read together): "
                "set VIGIL_SITE__SEPSIS_PREVALENCE (--site-prevalence), or leave the mean risk unset"
            )
        return None
    if site.mean_risk is None:
        return p
    if not 0.0 < site.mean_risk < 1.0:
        raise SiteThresholdError(
            f"site mean risk {site.mean_risk:g} is not a probability: give a fraction such as 0.03"
        )
    m0 = combined.get("training_mean_risk")
    if m0 is None:
        raise SiteThresholdError(
            f"this bundle ({combined.get('version', '?')}) stores no training mean risk: leave the site mean "
            "risk unset, or pin it with `python -m vigil.models.train.threshold_rules --site-table <oof.npz> "
            "--manifest <bundle>/manifest.json`"
        )
    o = odds(p) / model_shift(site.mean_risk, float(m0))
    return o / (1.0 + o)


def odds(p: float) -> float:
    """p / (1 - p)."""
    return p / (1.0 - p)


def model_shift(site_mean_risk: float, training_mean_risk: float) -> float:
    """How far the model's risk already moved at the site: the odds ratio of its mean risk there to
    set A's (the part of a prior shift not to correct again)."""
    return odds(site_mean_risk) / odds(training_mean_risk)


def choose_threshold(combined: Mapping[str, Any], site: Site | None = None) -> AlertThreshold:
    """The combined model's alert threshold for a site (``combined``: the manifest's entry)."""
    site = site or Site()
    shipped = float(combined["threshold"])
    rule: Rule = "shipped"
    threshold = shipped
    p_eff = effective_prevalence(combined, site)
    if p_eff is not None:
        threshold = _threshold_for_prevalence(combined, p_eff, site)
        rule = "site_prevalence" if site.mean_risk is None else "site_prevalence_and_risk"
    capped = False
    if site.max_training_alert_share is not None:
        curve = _share_curve(combined)
        if curve is None:
            raise SiteThresholdError(
                f"this bundle ({combined.get('version', '?')}) stores no alert-share curve: leave the "
                "alert-share ceiling unset, or retrain"
            )
        thr, share = curve
        allowed = thr[share <= site.max_training_alert_share]
        if len(allowed) == 0:
            raise SiteThresholdError(
                f"alert-share ceiling {site.max_training_alert_share:g} is below the bundle's curve (its highest "
                f"threshold flags {share.min():g} of set-A hours): give a fraction such as 0.25"
            )
        floor = float(allowed.min())  # the lowest stored threshold that flags no more than the ceiling
        if threshold < floor:
            threshold, capped = floor, True
    return AlertThreshold(
        threshold=threshold,
        rule=rule,
        shipped_threshold=shipped,
        site_prevalence=site.sepsis_prevalence,
        site_mean_risk=site.mean_risk,
        effective_prevalence=p_eff,
        capped=capped,
        training_alert_share=training_alert_share(combined, threshold),
        training_mean_risk=combined.get("training_mean_risk"),
    )


def site_threshold_hint(rule: Rule) -> str | None:
    """What an operator can still set, for a rule short of the site's own (None when nothing is left):
    on set A's shift tests, the prevalence with the mean risk lifted the worst case of bundle 2.3's
    recipe by 0.04-0.05 utility (paired over stays, docs/models.md), and gives 2.4's 0.30 where its
    hedged default gives 0.21-0.23 (docs/operations.md)."""
    if rule == "shipped":
        return (
            "the bundle's default, hedged for a site whose share of septic stays is unknown: no site "
            "setting. Set the site's septic-stay prevalence and mean risk "
            "(VIGIL_SITE__SEPSIS_PREVALENCE, VIGIL_SITE__MEAN_RISK; docs/operations.md, "
            '"The alert threshold of a site")'
        )
    if rule == "site_prevalence":
        return (
            "the prevalence alone: set the site's mean risk too (VIGIL_SITE__MEAN_RISK, `vigil predict --json` "
            "mean_risk), or the threshold corrects twice where the model already follows the site"
        )
    return None
