"""Screen feature sets and recipes by the shift tests (``models.train.shifts``).

    .venv-train/bin/python -m vigil.models.train.screen --config full --config reference --seed 1 --seed 2

Configs: ``full`` (the bundle's tree features), ``reference`` (issue 12's reference LightGBM,
``models.train.reference_lgbm``), ``v1trees`` (the v1 bundle's diagnosis model: 48-hour window
features, SepsisLabel unweighted; issue 12 measured it on the unseen hospital too), ablations of
the tree features (``no_missingness``, ``no_baseline``, ``no_rates``, ``no_stay_history``, ``no_icu_hours``),
``full+<block>`` (candidate blocks of ``extra_features``), ``ens3`` (mean of three seeds' trees),
``gru_e<epochs>_h<hidden>_n<negative share %>[_d<dropout %>][_i2]`` (the sequence model alone;
``_i2``: the richer inputs, ``stay_features.SEQUENCE_INPUTS``, which bundle 2.6 serves; without it
``SEQUENCE_INPUTS_V1``, 2.0-2.5's), ``att_e<epochs>_d<width>_n<share %>[_i2]``
(the causal attention encoder, ``models.train.attention``). A tree config ending in ``~thin<K>``
(``full~thin20``) trains every model on a copy of its stays in which each hour's lab draw is kept
with probability K % (``cohort_features.shifted``, thinning seed 100 + seed; the same hours, labels
and weights) and scores the test side as recorded: a model taught by a hospital that draws fewer
labs (issue 12's reference, trained so, ranked better on the unseen hospital with one of two seeds);
``~aug<K>`` trains on both the stays as recorded and that copy, each row at half weight;
``~augdaily`` the same with the copy whose labs are drawn at most once a day (the schedule of
protocol 5, ``scheduled``): taught on labs by routine, judged on the shifts without a schedule;
``~augdaily<W>`` gives that copy W % of each row's weight and the stays as recorded the rest;
``~augmix<K>`` trains on three: the stays as recorded, the ``~thin<K>`` copy and the daily copy, a
third of the weight each (taught on both thinnings, judged on the shifts neither teaches).
``~p<name>`` fits the trees with one of ``PARAM_SETS`` instead of the bundle's LightGBM settings;
``~mono`` adds monotone constraints where physiology fixes the direction (``trees.monotone_constraints``,
bundle 2.3's recipe: ``full~psmooth~mono``; without it a recipe fits as recorded before 2.3);
``~mono2`` the same carried to a few more levels (``trees.MONOTONE_UP_EXTENDED`` ...).
``~siterel`` divides each measurement-habit feature by its mean over the same site's rows
(``site_relative``: each ICU unit of set A, each shifted copy, the other unit), label-free.
``~icucap<H>`` clips the hours in the ICU at H (``icu_cap``): the trees keep "early in the stay" but
no longer learn the training unit's risk by day of a long stay, which a hospital's discharge
practice sets.

Every config is scored under protocol 7: the four shifts of protocol 2 (CV, labs thinned, each
unit held out), vital signs thinned to half the chartings (protocol 3), each unit shift again
with the test unit's labs thinned (protocol 4), labs drawn at most once a day (protocol 5,
``labs_every24h``), each unit shift with the test unit's labs so drawn (protocol 6) and optional
lab panels ordered for half the stays (protocol 7, ``panels_omitted``; ``shifts``); rows recorded
under protocol 2 carry no ``vitals_thinned`` (their ``worst`` is over four shifts), rows under 2
and 3 no compound, rows under 4 no scheduled labs, rows under 5 no scheduled compound, rows under
6 no panels.

Each config and seed appends one JSON line to ``~/.cache/vigil/screen.jsonl`` and keeps its raw
shift predictions in ``~/.cache/vigil/shiftpred/<config>-s<seed>.npz`` (combinations are then
scored without refitting: ``--combine a+b``). ``--hour-zero first-measurement`` screens on each
stay's hours from its first measured row, as bundle 2.7.0 was trained (its predictions
``...-h0m.npz``, its lines ``"hour_zero": "first-measurement"``); the studies recorded so far, and
the tools reading their cached predictions (``latch``, ``paired``, ``unit_gap``, ``threshold_rules
--pred``), count from each file's first row. ``--record models/artifacts/stepping/metrics.json``
copies the JSON lines into the bundle's metrics (the card).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models import bundle
from vigil.models.stay_features import MISSINGNESS_FEATURES, SEQUENCE_INPUTS_V1, TREE_FEATURES
from vigil.models.train import cohort_features, data, labels, metrics_file, shifts, stacking, trees

LAB_KEEP = cohort_features.LAB_KEEP
MEASUREMENT_HABIT = frozenset(n for n in TREE_FEATURES if n.endswith(("_rate", "_hours_since", "_n24h")))
THIN_SEEDS = cohort_features.THIN_SEEDS
VITALS_SEEDS = cohort_features.VITALS_SEEDS
PANEL_SEEDS = cohort_features.PANEL_SEEDS
LAB_SCHEDULES = cohort_features.LAB_SCHEDULES
PRED_DIR = data.CACHE_DIR / "shiftpred"
SMOKE_ROUNDS: int | None = None  # --smoke: every tree recipe, ``~p<name>`` included, fits this many rounds


# ``~p<name>``: LightGBM settings screened against the bundle's (``trees.WEIGHTED_PARAMS``). Each set
# names every setting it changes, so a row stays reproducible when the bundle's own settings move.
_V21 = {"num_leaves": 15, "min_data_in_leaf": 800, "lambda_l2": 10.0}
PARAM_SETS: dict[str, tuple[dict[str, Any], int | None]] = {
    # bundle 2.1's trees (``full`` rows recorded before 2.2 used these)
    "v21": (_V21, 200),
    # fewer, larger leaves' worth of data: smoother trees (bundle 2.2's settings since)
    "smooth": ({"num_leaves": 7, "min_data_in_leaf": 2000, "lambda_l2": 20.0}, 300),
    # one step further the same way: is 2.2 past the best of that direction?
    "smoother": ({"num_leaves": 4, "min_data_in_leaf": 4000, "lambda_l2": 40.0}, 450),
    # 2.1's trees with randomized split points (extremely randomized trees)
    "xt": ({**_V21, "extra_trees": True}, 300),
    # the other direction: deeper and longer
    "deep": ({"num_leaves": 63, "min_data_in_leaf": 200, "lambda_l2": 1.0}, 400),
    # stumps: an additive model of the features (a GAM), no interactions to learn a unit's case mix by
    "additive": ({"num_leaves": 2, "min_data_in_leaf": 2000, "lambda_l2": 20.0}, 1200),
}
# Issue 12's reference LightGBM is a fixed yardstick: "200 strongly regularized trees", bundle 2.1's
# settings, whatever the bundle ships (its rows recorded under protocol 3 on 3 December followed 2.2's
# defaults and are ``reference~psmooth``); ``reference~p<name>`` still screens it with other settings.
REFERENCE_SETTINGS = "v21"
TREE_SETTING_KEYS = ("num_leaves", "min_data_in_leaf", "lambda_l2", "extra_trees")


def tree_settings(config: str) -> dict[str, Any] | None:
    """The LightGBM settings a tree recipe trains with, recorded in its screen row because the bundle's
    defaults (``trees.WEIGHTED_PARAMS``) move between releases; None for v1trees and sequence models."""
    if config.startswith(("gru", "att")):
        return None
    recipe, _, overrides, rounds = training_mods(config)
    if recipe.split("+")[0] == "v1trees":
        return None
    params = {**trees.WEIGHTED_PARAMS, **overrides}
    return {
        **{k: params[k] for k in TREE_SETTING_KEYS if k in params},
        "rounds": SMOKE_ROUNDS or rounds or trees.WEIGHTED_ROUNDS,
        "monotone": "monotone_constraints" in overrides,
        **({"monotone_extended": True} if overrides.get("monotone_constraints") == "physiology2" else {}),
    }


def training_mods(config: str) -> tuple[str, int, dict[str, Any], int | None]:
    """``full+sig~thin20~psmooth`` -> ("full+sig", 20, smooth's settings, smooth's rounds): the recipe,
    the percentage of lab draws its training copy keeps (0: as recorded) and the LightGBM settings."""
    recipe, *mods = config.split("~")
    thin, overrides, rounds = 0, {}, None
    if recipe.split("+")[0] == "reference" and not any(m[1:] in PARAM_SETS for m in mods if m.startswith("p")):
        overrides, rounds = dict(PARAM_SETS[REFERENCE_SETTINGS][0]), PARAM_SETS[REFERENCE_SETTINGS][1]
    for mod in mods:
        if share := _thinned_share(mod):
            thin = share
        elif mod.startswith("p") and mod[1:] in PARAM_SETS:
            overrides, rounds = {**PARAM_SETS[mod[1:]][0], **overrides}, PARAM_SETS[mod[1:]][1]
        elif mod in ("mono", "mono2"):  # the constraints themselves need the recipe's columns (tree_recipe)
            overrides = {**overrides, "monotone_constraints": "physiology" if mod == "mono" else "physiology2"}
        elif mod == "siterel" or re.fullmatch(r"icucap\d+", mod) or _daily_share(mod):  # in tree_recipe
            pass
        else:
            raise SystemExit(
                f"unknown modifier ~{mod} in {config}: expected ~thin<1-99>, ~aug<1-99>, ~augdaily, "
                "~augdaily<1-99>, ~augmix<1-99>, ~mono, ~mono2, "
                f"~siterel, ~icucap<hours> or ~p<{'|'.join(PARAM_SETS)}>"
            )
    return recipe, thin, dict(overrides), rounds


def augmented(config: str) -> bool:
    """``~aug<K>``: the recipe trains on its stays as recorded plus the ``~thin<K>`` copy of them (each
    row at half its weight), instead of the thinned copy alone."""
    return any(m.startswith("aug") for m in config.split("~")[1:])


def _daily_share(mod: str) -> float | None:
    """``augdaily`` -> 0.5, ``augdaily30`` -> 0.3 (the weight share of the scheduled copy), else None."""
    found = re.fullmatch(r"augdaily(\d*)", mod)
    if not found:
        return None
    share = int(found[1]) if found[1] else 50
    return share / 100 if 0 < share < 100 else None


def mixed(config: str) -> bool:
    """``~augmix<K>``: both training copies beside the stays as recorded, labs thinned at random and
    labs once a day."""
    found = [re.fullmatch(r"augmix(\d+)", m) for m in config.split("~")[1:]]
    return any(f is not None and 0 < int(f[1]) < 100 for f in found)


def scheduled(config: str) -> bool:
    """``~augdaily``, ``~augmix<K>``: a training copy beside the stays as recorded has its labs drawn at
    most once a day (``LAB_SCHEDULES[0]`` hours apart); for ``~augdaily`` instead of thinned at random."""
    return mixed(config) or any(_daily_share(m) for m in config.split("~")[1:])


def _thinned_share(mod: str) -> int:
    """The percentage of lab draws kept in the randomly thinned copy a modifier trains on
    (``thin<K>``, ``aug<K>``, ``augmix<K>``; 0: none)."""
    share = re.fullmatch(r"(?:thin|aug|augmix)(\d+)", mod)
    return int(share[1]) if share and 0 < int(share[1]) < 100 else 0


def taught_thinned(config: str) -> bool:
    """Taught on a copy of its stays with the labs thinned at random (``~thin<K>``, ``~aug<K>``,
    ``~augmix<K>``). Unlike ``training_mods`` it reads any config, a latched one (``~latch<decay>``)
    included."""
    return any(_thinned_share(m) for m in config.split("~")[1:])


def copy_share(config: str) -> float:
    """The share of each stay's weight its training copy carries beside the stays as recorded:
    ``~augdaily<W>`` W %, else half (``~aug<K>``, ``~augdaily``)."""
    shares = [s for s in map(_daily_share, config.split("~")[1:]) if s]
    return shares[0] if shares else 0.5


def training_copies(config: str, seed: int) -> list[cohort_features.Copy]:
    """The shifted copies of its stays a recipe trains on (``~thin<K>``, ``~aug<K>``: thinned at random
    with seed 100 + ``seed``; ``~augdaily``: labs at most once a day; ``~augmix<K>``: both, in that
    order), none for the stays as recorded."""
    copies: list[cohort_features.Copy] = []
    if training_mods(config)[1]:
        copies.append(("labs", 100 + seed))
    if scheduled(config):
        copies.append(("labs_every", LAB_SCHEDULES[0]))
    return copies


def weight_shares(config: str) -> list[float]:
    """The share of each stay's weight on the stays as recorded and on each training copy
    (``training_copies`` order) of an augmented recipe: ``~aug<K>``/``~augdaily`` half each,
    ``~augdaily<W>`` 1 - W % and W %, ``~augmix<K>`` a third each."""
    if mixed(config):
        return [1 / 3] * 3
    share = copy_share(config)
    return [1.0 - share, share]


def site_relative(config: str) -> bool:
    """``~siterel``: each measurement-habit feature (rates, hours since measured, counts over 24 h)
    divided by its mean over the rows of the same site being scored or trained on (each ICU unit of
    set A, a thinned copy, the other unit: label-free), so a hospital that measures less often as a
    whole keeps its patients' measurement habits relative to its own."""
    return "siterel" in config.split("~")[1:]


def icu_cap(config: str) -> int | None:
    """``~icucap<H>``: the hours in the ICU clipped at H in every row the recipe trains on and scores."""
    caps = [int(m[6:]) for m in config.split("~")[1:] if re.fullmatch(r"icucap\d+", m)]
    return caps[-1] if caps else None


def _divide_by_site_means(x: np.ndarray, site: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``x`` with its columns ``cols`` divided by their mean within each value of ``site`` (rows)."""
    x = np.array(x, dtype=np.float32, copy=True)
    for g in np.unique(site):
        at = site == g
        mean = np.nanmean(x[np.ix_(at, cols)], axis=0)
        mean = np.where(np.isfinite(mean) & (mean > 0), mean, 1.0)
        x[np.ix_(at, cols)] /= mean.astype(np.float32)
    return x


def columns(config: str) -> np.ndarray:
    names = np.array(TREE_FEATURES)
    keep = np.ones(len(names), bool)
    if config == "no_missingness":
        keep &= ~np.isin(names, list(MISSINGNESS_FEATURES))
    elif config == "no_baseline":
        keep &= ~np.char.endswith(names, "_from_baseline")
    elif config == "no_rates":  # measurement rates since admission; hours since measured stay
        keep &= ~np.char.endswith(names, "_rate")
    elif config == "no_stay_history":
        keep &= ~(np.char.endswith(names, "_max_stay") | np.char.endswith(names, "_min_stay"))
    elif config == "no_icu_hours":
        keep &= names != "icu_hours"
    elif config not in ("full", "ens3"):
        raise SystemExit(f"unknown config {config}")
    return np.nonzero(keep)[0]


def tree_recipe(
    config: str, seed: int, mats: cohort_features.Matrices, y: np.ndarray, w: np.ndarray
) -> tuple[Any, Any, int]:
    """``full``, ``reference``, an ablation, or ``full+<block>[+<block>]`` (``extra_features``)."""
    from vigil.models.train import extra_features

    augment, relative, cap = augmented(config), site_relative(config), icu_cap(config)
    shares, copies = weight_shares(config), training_copies(config, seed)  # before the modifiers are stripped
    config, thin, overrides, rounds = training_mods(config)
    base, *extras = config.split("+")
    train_mats = cohort_features.Matrices(mats.c, thin / 100) if thin else mats

    def source_of(m: cohort_features.Matrices) -> Any:
        return {"reference": m.reference, "v1trees": m.v1}.get(base, m.tree)

    source, train_source = source_of(mats), source_of(train_mats)
    cols = np.arange(source(None).shape[1]) if base in ("reference", "v1trees") else columns(base)
    if (relative or cap) and base in ("reference", "v1trees"):
        raise SystemExit(f"~siterel and ~icucap need the bundle's tree features: {config}")
    if cap:  # the column of the hours in the ICU, only where it is clipped
        icu_col = np.nonzero(np.array(TREE_FEATURES)[cols] == "icu_hours")[0]
    if relative:  # the site of each row (its ICU unit) and the habit columns, only where they are used
        row_site = np.zeros(len(y), np.int8) if mats.c.unit is None else mats.c.unit[mats.c.patient_of_row()]
        habit = np.nonzero(np.isin(np.array(TREE_FEATURES)[cols], sorted(MEASUREMENT_HABIT)))[0]
    n_models = 3 if base == "ens3" else 1
    if base == "v1trees":  # the v1 recipe: SepsisLabel on every hour, unweighted, 250 trees
        y, w = mats.c.labels.astype(np.int8), np.ones(len(y), np.float32)

    def matrix(
        copy: cohort_features.Copy | None, rows: np.ndarray, m: cohort_features.Matrices = mats, src: Any = source
    ) -> np.ndarray:
        parts = [np.asarray(src(copy)[rows])[:, cols]]
        if relative:  # a thinned copy is its own site: its rows' means
            parts[0] = _divide_by_site_means(parts[0], row_site[rows] + (10 if copy else 0), habit)
        if cap:
            parts[0] = np.array(parts[0], dtype=np.float32, copy=True)
            parts[0][:, icu_col] = np.minimum(parts[0][:, icu_col], cap)
        for name in extras:
            block = extra_features.cohort_block(m.cohort(copy), name, m.tag(copy))
            parts.append(np.asarray(block[rows]))
        return np.hstack(parts) if extras else parts[0]

    n_extra = sum(len(extra_features.BLOCKS[name][0]) for name in extras)
    if overrides.get("monotone_constraints") in ("physiology", "physiology2"):
        names = list(np.array(TREE_FEATURES)[cols]) if base not in ("reference", "v1trees") else []
        if not names:
            raise SystemExit(f"~mono needs the bundle's tree features: {config}")
        extended = overrides["monotone_constraints"] == "physiology2"
        overrides["monotone_constraints"] = trees.monotone_constraints(names, extended) + [0] * n_extra

    def fit(rows: np.ndarray) -> Any:
        yr, wr = y[rows], w[rows]
        taught = [matrix(c, rows, train_mats, train_source) for c in copies]
        if augment:  # as recorded and the copies, ``shares`` of the weight: the same total per stay
            xr, yr, wr = trees.weighted_copies([matrix(None, rows), *taught], yr, wr, shares)
        else:
            xr = taught[0] if taught else matrix(None, rows)
        if base == "v1trees":
            return [trees.fit(xr, yr, seed, [f"f{i}" for i in range(xr.shape[1])])]
        return [
            trees.fit_weighted(xr, yr, wr, seed + 1000 * k, overrides=overrides, rounds=SMOKE_ROUNDS or rounds)
            for k in range(n_models)
        ]

    def predict(models: Any, rows: np.ndarray, copy: cohort_features.Copy | None) -> np.ndarray:
        src = matrix(copy, rows)
        return np.mean([m.predict(src) for m in models], axis=0)

    return fit, predict, len(cols) + n_extra


def gru_recipe(
    config: str, seed: int, mats: cohort_features.Matrices, y: np.ndarray, w: np.ndarray
) -> tuple[Any, Any, int]:
    from vigil.models.train import sequence

    parts = {p[0]: p[1:] for p in config.split("_")[1:]}
    kw: dict[str, Any] = {"epochs": int(parts["e"]), "negative_share": int(parts["n"]) / 100}
    if "h" in parts:
        kw["hidden"] = int(parts["h"])
    if "d" in parts and config.startswith("gru"):
        kw["dropout"] = int(parts["d"]) / 100
    o, patient = mats.c.offsets, mats.c.patient_of_row()

    v1 = bundle.sequence_columns(SEQUENCE_INPUTS_V1)

    def inputs(copy: cohort_features.Copy | None) -> np.ndarray:
        if parts.get("i") == "2":  # every sequence input (bundle 2.6's)
            return mats.sequence(copy)
        return np.asarray(mats.sequence(copy)[:, v1])  # the inputs of bundles 2.0-2.5

    s = inputs(None)

    def fit(rows: np.ndarray) -> Any:
        if config.startswith("att"):
            from vigil.models.train import attention

            return attention.fit(
                s,
                y,
                w,
                o,
                np.unique(patient[rows]),
                seed,
                log=lambda m: None,
                epochs=kw["epochs"],
                negative_share=kw["negative_share"],
                d_model=int(parts["d"]),
            )
        return sequence.fit(s, y, w, o, np.unique(patient[rows]), seed, log=lambda m: None, **kw)

    def predict(model: Any, rows: np.ndarray, copy: cohort_features.Copy | None) -> np.ndarray:
        if config.startswith("att"):
            from vigil.models.train import attention

            return attention.predict(model, inputs(copy), o, np.unique(patient[rows]))
        return sequence.predict(model, inputs(copy), o, np.unique(patient[rows]))

    return fit, predict, s.shape[1]


def mean_logit(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> shifts.Scorer:
    return lambda p: np.mean(stacking._logit(p), axis=0)


def record(
    out: str,
    config: str,
    seed: int,
    n_inputs: int,
    seconds: float,
    result: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> None:
    rec: dict[str, Any] = {"config": config, "seed": seed, "features": n_inputs, "seconds": round(seconds)}
    if settings:
        rec["trees"] = settings
    rec.update({k: v for k, v in result.items() if not k.endswith("_folds")})
    with open(out, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(json.dumps({k: rec[k] for k in ("config", "seed", "worst", "seconds")}), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--combine", action="append", default=[], help="a+b: stack two screened configs' predictions")
    ap.add_argument("--seed", type=int, action="append", default=[])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out", default=str(data.CACHE_DIR / "screen.jsonl"))
    ap.add_argument("--record", type=Path, help="copy the screening results into this metrics.json and stop")
    ap.add_argument("--record-key", default="screen", help="the metrics.json key --record writes")
    ap.add_argument("--max-patients", type=int, default=0, help="subsample stays (smoke runs)")
    ap.add_argument("--smoke", action="store_true", help="20 trees, 1 epoch: checks the pipeline, not the models")
    ap.add_argument(
        "--hour-zero",
        choices=("first-row", "first-measurement"),
        default="first-row",
        help="each stay's hour 0: its file's first row (every study recorded so far) or its first measured row "
        "(bundle 2.7.0's training, models.hour_zero); predictions cached apart, lines marked hour_zero",
    )
    args = ap.parse_args(argv)
    if args.record:
        lines = Path(args.out).read_text().splitlines()
        metrics_file.record(args.record, args.record_key, [json.loads(line) for line in lines if line.strip()])
        return 0
    c = data.load_cohort_anchored(args.hour_zero)
    if args.max_patients:
        c = data.subsample(c, args.max_patients, 0)
    if args.smoke:
        global SMOKE_ROUNDS
        trees.WEIGHTED_ROUNDS = SMOKE_ROUNDS = 20
    assert c.unit is not None
    y, w = labels.utility_targets(c.labels, c.lengths)
    u = shifts.Utility(c.labels, c.lengths)
    mats = cohort_features.Matrices(c, LAB_KEEP)
    PRED_DIR.mkdir(parents=True, exist_ok=True)
    tag = f"-n{args.max_patients}" if args.max_patients else ""
    tag += "-h0m" if args.hour_zero == "first-measurement" else ""  # never mixed with first-row predictions
    anchor = {"hour_zero": args.hour_zero} if args.hour_zero == "first-measurement" else {}
    for seed in args.seed or [1]:
        fold = data.grouped_folds(c, args.folds, seed)
        for config in args.config:
            t0 = time.perf_counter()
            recipe = gru_recipe if config.startswith(("gru", "att")) else tree_recipe
            fit, predict, n_inputs = recipe(config, seed, mats, y, w)
            pred = shifts.predict_shifts(
                u, fold, c.unit, fit, predict, THIN_SEEDS, print, VITALS_SEEDS, LAB_SCHEDULES, PANEL_SEEDS
            )
            pred.save(PRED_DIR / f"{config}-s{seed}{tag}.npz")
            result = shifts.figures(u, pred, fold, c.unit, y, w)
            seconds = time.perf_counter() - t0
            record(args.out, config, seed, n_inputs, seconds, {**anchor, **result}, tree_settings(config))
        for combo in args.combine:
            names, how = combo.split("@") if "@" in combo else (combo, "stack")
            parts = [shifts.ShiftPredictions.load(PRED_DIR / f"{n}-s{seed}{tag}.npz") for n in names.split("+")]
            combiner = stacking.combiner if how == "stack" else mean_logit
            t0 = time.perf_counter()
            result = shifts.figures(u, shifts.ShiftPredictions.stack(parts), fold, c.unit, y, w, combiner)
            record(args.out, combo, seed, 0, time.perf_counter() - t0, {**anchor, **result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
