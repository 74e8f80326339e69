"""Would weighting the training hours toward a new site's own stays close the unit shift? (issue 12)

Covariate-shift correction: a hospital can hand over an export of its stays before it has labels.
A classifier that tells the site's hours from the training hours gives each training hour the odds
that it came from the site, P(site | x) / P(train | x); training the recipe with those odds as weights
aims it at the site's mix of patients and charting. The proxy here is set A's two units: surgical ->
medical is every recipe's worst case (~0.74 AUROC, and ``unit_gap`` showed it is the unit change, not
the surgical ICU's few septic stays). Each direction is trained three ways on the same folds: unweighted,
with the odds (clipped, ``CLIP``) and with their square root (tempered, the usual remedy for odds so
wide that a few hours carry the fit); the threshold is chosen, as in every unit block, on the training
unit's inner folds of the same weighted recipe.

The domain classifier is cross-fitted over the patient folds, so no hour's weight comes from a model
that saw its stay; its AUROC says how far apart the two units' inputs are.

    .venv/bin/python -m vigil.models.train.importance --config full~psmooth~mono --seed 1 --seed 2 --json \
        [--record models/artifacts/stepping/metrics.json]
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vigil.models.stay_features import MISSINGNESS_FEATURES, TREE_FEATURES
from vigil.models.train import data, screen, shifts, study

CLIP = 20.0  # the largest odds one training hour may carry, before normalising to mean 1
DOMAIN_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.5,
    "bagging_freq": 1,
    "verbose": -1,
    "num_threads": 2,
}
DOMAIN_ROUNDS = 150
VARIANTS = ("unweighted", "odds", "sqrt_odds")


def _domain_classifier(x: np.ndarray, is_site: np.ndarray, seed: int):  # type: ignore[no-untyped-def]
    """A LightGBM telling the site's rows from the training rows."""
    import lightgbm as lgb

    params = dict(DOMAIN_PARAMS, seed=seed, bagging_seed=seed, feature_fraction_seed=seed)
    return lgb.train(params, lgb.Dataset(x, label=is_site), num_boost_round=DOMAIN_ROUNDS)


def site_probability(x: np.ndarray, is_site: np.ndarray, row_fold: np.ndarray, seed: int) -> np.ndarray:
    """Cross-fitted P(site | x) of every row: fold f's rows scored by a classifier fitted on the others."""
    p = np.zeros(len(x))
    for f in np.unique(row_fold):
        test = row_fold == f
        p[test] = _domain_classifier(x[~test], is_site[~test], seed).predict(x[test])
    return p


def what_tells_them_apart(
    x: np.ndarray, is_site: np.ndarray, names: list[str], seed: int, top: int = 12
) -> dict[str, Any]:
    """Gain shares of a domain classifier fitted on every row: the ``top`` inputs, and the share of the
    measurement-pattern features (``MISSINGNESS_FEATURES``: hours since measured, rates, counts)."""
    gain = _domain_classifier(x, is_site, seed).feature_importance("gain")
    share = gain / gain.sum()
    order = np.argsort(-share)[:top]
    pattern = np.isin(names, list(MISSINGNESS_FEATURES))
    return {
        "top": {names[i]: round(float(share[i]), 4) for i in order},
        "measurement_pattern_share": round(float(share[pattern].sum()), 4),
    }


def importance_weights(p_site: np.ndarray, train: np.ndarray, variant: str, clip: float = CLIP) -> np.ndarray:
    """Weights of the ``train`` rows (1 elsewhere): the odds that a row came from the site, scaled by the
    two sides' sizes, clipped at ``clip``, raised to 1 (``odds``) or 1/2 (``sqrt_odds``) and normalised
    to mean 1 over ``train``. ``unweighted`` is all ones."""
    w = np.ones(len(p_site))
    if variant == "unweighted":
        return w
    power = {"odds": 1.0, "sqrt_odds": 0.5}[variant]
    p = np.clip(p_site[train], 1e-4, 1 - 1e-4)
    n_train, n_site = int(train.sum()), int((~train).sum())
    odds = np.minimum(p / (1 - p) * n_train / max(n_site, 1), clip) ** power
    w[train] = odds / odds.mean()
    return w


def effective_share(weights: np.ndarray) -> float:
    """Kish's effective sample size as a share of the rows: 1 when every weight is equal."""
    return float(weights.sum() ** 2 / (weights**2).sum() / len(weights))


def main(argv: list[str] | None = None) -> int:
    from vigil.models.utility import auroc_auprc

    ap = study.parser("importance", "importance")
    ap.add_argument(
        "--features-only", action="store_true", help="only what tells the units apart (no refits; --record adds it)"
    )
    args = ap.parse_args(argv)
    inputs = study.load()
    c, y, w, u, mats = inputs.c, inputs.y, inputs.w, inputs.u, inputs.mats
    row_unit = u.rows_of(inputs.unit)
    cols = screen.columns("full")
    x = np.asarray(mats.tree(None))[:, cols]
    names = [str(n) for n in np.array(TREE_FEATURES)[cols]]
    out: dict[str, Any] = {"config": args.config, "clip": CLIP, "seeds": {}}
    out["domain_features"] = what_tells_them_apart(x, row_unit == 1, names, (args.seed or [1])[0])
    print(f"what tells the units apart: {out['domain_features']}", flush=True)
    if args.features_only:  # the recorded study keeps its refits
        recorded = json.loads(args.record.read_text()).get("importance", {}) if args.record else {}
        return study.finish(args, "importance", {**recorded, "domain_features": out["domain_features"]})
    for seed in args.seed or [1]:
        row_fold = u.rows_of(data.grouped_folds(c, args.folds, seed))
        p_medical = site_probability(x, row_unit == 1, row_fold, seed)
        seed_out: dict[str, Any] = {"domain_auroc": round(auroc_auprc((row_unit == 1).astype(int), p_medical)[0], 4)}
        for a in shifts.UNITS:
            p_site = p_medical if a == 2 else 1 - p_medical
            train = row_unit == a
            direction: dict[str, Any] = {}
            for variant in VARIANTS:
                iw = importance_weights(p_site, train, variant)
                fit, predict, _ = screen.tree_recipe(args.config, seed, mats, y, w * iw)
                other, inner, _ = shifts.unit_predictions(row_fold, row_unit, a, fit, predict)
                blk = shifts.unit_block(u, inner, other, row_unit, a, y, w)
                direction[variant] = {
                    **{k: blk[k] for k in ("auroc", "auprc", "utility", "best_utility", "threshold", "alert_share")},
                    "effective_share": round(effective_share(iw[train]), 4),
                }
                print(f"seed {seed} unit{a}->unit{3 - a} {variant}: {direction[variant]}", flush=True)
            seed_out[f"unit{a}->unit{3 - a}"] = direction
        out["seeds"][str(seed)] = seed_out
    out["mean"] = {
        d: {
            v: {m: round(float(np.mean([s[d][v][m] for s in out["seeds"].values()])), 4) for m in ("auroc", "utility")}
            for v in VARIANTS
        }
        for d in ("unit1->unit2", "unit2->unit1")
    }
    return study.finish(args, "importance", out)


if __name__ == "__main__":
    raise SystemExit(main())
