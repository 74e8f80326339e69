"""Alert burden on set A cross-validation, before and after the alert lifecycle rules.

Input: the out-of-fold predictions training saves (``python -m vigil.models.train --oof-out F``;
by default, and from ``vigil train``, ``~/.cache/vigil/oof-stepping.npz``).
For every stay, hour by hour, the same pure lifecycle code the alert agent runs
(``models.alerting.on_score``) turns NEWS2 and the combined model probability into alert
transitions. The model threshold of each fold is chosen on the *other* folds' out-of-fold
predictions (nested), so no figure here is tuned on itself.

Counted per configuration:
- ``hours_at_alert_level_per_patient_day``: a naive system alerting on every hour above threshold;
- ``rising_edges_per_patient_day``: alerting on every upward threshold crossing;
- ``pages_per_patient_day``: lifecycle transitions that page someone (open, and escalated by a band
  rise or by the patient being worse again: what the stream publishes and a pager pages on; time-based
  reminders are excluded as nobody acknowledges in a retrospective replay);
- ``septic_alerted_before_onset``: share of septic stays with an alert opened before
  t_sepsis (first SepsisLabel hour + 6, the challenge's onset), and within the 12 h before onset
  the utility rewards (t_sepsis - 12 < t, ``alert_replay.opened_within_12h_before``).

Run: ``.venv/bin/python -m vigil.models.train.burden --oof ~/.cache/vigil/oof-stepping.npz [--rule best] --json``
(the bundle's threshold rule by default, ``threshold_rules.BUNDLE_RULE``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.alert_replay import opened_within_12h_before, simulate, t_sepsis
from vigil.models.alerting import AlertPolicy
from vigil.models.train import data, shifts, threshold_rules


def burden(oof: Path, rule: str = "best") -> dict[str, Any]:
    """``rule``: how each fold's threshold is chosen on the other folds (``threshold_rules.parse``;
    the bundle's default rule reproduces the shipped threshold's burden)."""
    chooser = threshold_rules.parse(rule)  # an unknown rule stops here with one line, before any loading
    d = np.load(oof)
    lengths = d["lengths"]
    offsets = np.r_[0, np.cumsum(lengths)]
    labels, combined, fold = d["labels"], d["combined"], d["patient_fold"]
    news2, single3 = d["rule_NEWS2"].astype(int), d["rule_NEWS2_single3"].astype(bool)
    labels_by = [labels[offsets[p] : offsets[p + 1]] for p in range(len(lengths))]
    row_fold = np.repeat(fold, lengths)
    u = shifts.Utility(labels, lengths)
    thresholds = {int(f): chooser(u, combined[row_fold != f], row_fold != f) for f in np.unique(fold)}
    policy = AlertPolicy(escalate_after_s=1e12)  # no time-based reminders in a retrospective replay
    patient_days = lengths.sum() / 24.0
    out: dict[str, Any] = {
        "patients": int(len(lengths)),
        "patient_days": round(float(patient_days), 1),
        "rule": rule,
        "fold_thresholds": thresholds,
    }
    septic = [p for p in range(len(lengths)) if labels_by[p].any()]
    out["septic_patients"] = len(septic)
    for name, use_model in (("news2_only", False), ("news2_and_model", True)):
        level_hours = edges = pages = 0
        early = early12 = 0
        for p in range(len(lengths)):
            a, b = offsets[p], offsets[p + 1]
            thr = thresholds[int(fold[p])]
            prob = combined[a:b] if use_model else None
            at_level = (news2[a:b] >= 5) | single3[a:b]
            if use_model:
                at_level |= combined[a:b] >= thr
            level_hours += int(at_level.sum())
            edges += int(np.sum(at_level & ~np.r_[False, at_level[:-1]]))
            n_pages, opened = simulate(news2[a:b], single3[a:b], prob, thr, policy)
            pages += n_pages
            if labels_by[p].any():
                onset = t_sepsis(labels_by[p])
                early += any(t < onset for t in opened)
                early12 += opened_within_12h_before(onset, opened)
        out[name] = {
            "hours_at_alert_level_per_patient_day": round(level_hours / patient_days, 2),
            "rising_edges_per_patient_day": round(edges / patient_days, 2),
            "pages_per_patient_day": round(pages / patient_days, 2),
            "septic_alerted_before_onset": round(early / len(septic), 3),
            "septic_alerted_within_12h_before_onset": round(early12 / len(septic), 3),
        }
    out["discrimination"] = discrimination(labels, labels_by, combined, d, offsets, fold, thresholds)
    return out


def discrimination(
    labels: np.ndarray,
    labels_by: list[np.ndarray],
    combined: np.ndarray,
    d: Any,
    offsets: np.ndarray,
    fold: np.ndarray,
    thresholds: dict[int, float],
) -> dict[str, Any]:
    """AUROC, AUPRC and normalized utility on the same rows: the rules as the stream computes them
    (newest value within 4 h) at their usual cut-offs, and the combined model at its nested
    per-fold thresholds."""
    from vigil.models.utility import auroc_auprc, normalized_utility

    def by_patient(values: np.ndarray) -> list[np.ndarray]:
        return [values[offsets[p] : offsets[p + 1]] for p in range(len(offsets) - 1)]

    row_threshold = np.repeat(np.array([thresholds[int(f)] for f in fold]), np.diff(offsets))
    scores = {"combined": (combined, combined >= row_threshold)}
    for name, cutoff in (("NEWS2", 5), ("qSOFA", 2), ("SIRS", 2)):
        s = d[f"rule_{name}"].astype(np.float64)
        scores[name] = (s, s >= cutoff)
    out = {}
    for name, (s, binary) in scores.items():
        auroc, auprc = auroc_auprc(labels, s)
        out[name] = {
            "auroc": round(auroc, 4),
            "auprc": round(auprc, 4),
            "utility": round(normalized_utility(labels_by, by_patient(binary)), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vigil.models.train.burden")
    ap.add_argument("--oof", type=Path, default=data.CACHE_DIR / "oof-stepping.npz")  # training's --oof-out
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--rule",
        default=threshold_rules.BUNDLE_RULE,
        help=f"the threshold rule (threshold_rules: best, prev<k>, logit<d>; default the bundle's, "
        f"{threshold_rules.BUNDLE_RULE})",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = burden(args.oof, args.rule)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
