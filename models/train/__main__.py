"""Train, shift-test and export the stepping bundle (``models/artifacts/stepping/``).

    .venv-train/bin/python -m vigil.models.train [--data DIR] [--out DIR] [--seed 2019] [--folds 4]
        [--teach-daily-labs | --no-teach-daily-labs] [--threshold-rule prev1.5]
        [--sequence-model attention]

``--sequence-model`` chooses the ``deterioration`` model: ``attention`` (since 2.5, the causal
attention encoder of ``models.train.attention``, served through its key/value cache) or ``gru``
(2.0-2.4, ``models.train.sequence``).

``--teach-daily-labs`` trains the trees on set A as recorded and on a copy with labs drawn at most
once a day, half weight each (the screen's ``~augdaily``); the shift blocks then add
``worst_without_schedule``, the worst case over the shifts that recipe was never taught on.

1. Set A through the stepping core's offline form (cached): tree features and recurrent inputs of
   every hour; utility-derived targets and weights (``labels``). Since 2.4 the trees also train on a
   copy of every stay with its labs drawn at most once a day, half weight each (``--teach-daily-labs``).
2. Shift tests (``shifts``) for the trees and the sequence model: grouped CV (OOF), the CV fold models on thinned labs
   and vital signs, labs once a day and optional lab panels omitted (protocol 7), and
   leave-one-unit-out in both directions.
3. Stacker (logistic on the trees' log-odds; the sequence model's weight held at 0 since 2.1) + isotonic
   calibration on the OOF predictions; the stored threshold is chosen on the calibrated OOF risk by
   ``--threshold-rule`` (since 2.4 ``prev1.5``: the best worst-case utility over septic-stay
   prevalences 1/1.5..1.5 times set A's; ``best``, 2.3's, maximizes it at set A's own), and so is every
   shift block's. ``combined_with_sequence`` in the metrics is the 2.0 stacker (with the sequence
   model, whichever it is) under the same shift tests.
4. Final models on all of set A; ONNX (trees, the sequence model's one-step and full-sequence
   graphs), reference arrays for
   the serving tests, the training reference for drift, manifest (sha256) and metrics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.bundle import FORMAT, STEPPING_DIR, sequence_columns
from vigil.models.stay_features import SEQUENCE_INPUTS, SEQUENCE_INPUTS_V1, TREE_FEATURES, UNSEEN_IN_TRAINING
from vigil.models.train import (
    attention,
    cohort_features,
    contrib_graph,
    data,
    drift_reference,
    labels,
    metrics_file,
    reference,
    screen,
    sequence,
    shifts,
    stacking,
    threshold_rules,
    trees,
)
from vigil.schemas.codes import DYNAMIC_CODES

VERSION = "2.7.0"
# a site that sets its own prevalence gets the site table instead of this default (models.site_threshold)
THRESHOLD_RULE = threshold_rules.BUNDLE_RULE
THRESHOLD_RULES = {
    "best": "maximizes PhysioNet 2019 normalized utility on set-A OOF (calibrated risk)",
    "prev1.5": "maximizes the worst PhysioNet 2019 normalized utility on set-A OOF (calibrated risk) over "
    "septic-stay prevalences of 1/1.5, 1 and 1.5 times set A's (threshold_rules.prevalence_maximin)",
}
WINDOW_FILE = "deterioration_window.onnx"  # the attention encoder's scored-hours graph (the stream's)
SEQUENCE_MODEL = "attention"  # since 2.5; docs/models.md, "The sequence model the stream serves"
# what the sequence model reads: v2 since 2.6 (docs/models.md, "The encoder on richer inputs")
SEQUENCE_INPUT_SETS = {"v2": SEQUENCE_INPUTS, "v1": SEQUENCE_INPUTS_V1}
SEQUENCE_INPUT_SET = "v2"
TAUGHT_ON = {
    False: "set A as recorded",
    True: "set A as recorded and a copy with labs drawn at most once a day, half weight each",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vigil.models.train")
    ap.add_argument("--data", type=Path, default=data.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=STEPPING_DIR)
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--oof-out", type=Path, default=data.CACHE_DIR / "oof-stepping.npz")
    ap.add_argument("--max-patients", type=int, default=0, help="subsample stays (smoke runs)")
    ap.add_argument("--smoke", action="store_true", help="1 epoch, 20 trees: checks the pipeline, not the models")
    ap.add_argument(
        "--teach-daily-labs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the trees on the stays as recorded and on a copy with labs drawn at most once a day, "
        "half weight each (the screen's ~augdaily; since 2.4)",
    )
    ap.add_argument(
        "--threshold-rule",
        default=THRESHOLD_RULE,
        help="how every threshold is chosen on the training side's OOF risk: best (2.3) or a threshold_rules "
        f"rule (default {THRESHOLD_RULE})",
    )
    ap.add_argument(
        "--sequence-model",
        choices=("attention", "gru"),
        default=SEQUENCE_MODEL,
        help=f"the deterioration model: the causal attention encoder (since 2.5) or the GRU (default {SEQUENCE_MODEL})",
    )
    ap.add_argument(
        "--sequence-inputs",
        choices=tuple(SEQUENCE_INPUT_SETS),
        default=SEQUENCE_INPUT_SET,
        help="what the deterioration model reads: v2, with each variable's history since admission (since "
        f"2.6), or v1, the inputs of 2.0-2.5 (default {SEQUENCE_INPUT_SET})",
    )
    ap.add_argument(
        "--hour-zero",
        choices=("first-row", "first-measurement"),
        default="first-measurement",
        help="a stay's hour 0: its first measured row, as vigil predict and a hospital feed's stream count "
        "(models.hour_zero; since 2.7), or its .psv's first row, often empty (2.0-2.6's; serving counts "
        'from the first measurement whatever the bundle, docs/models.md "Hour 0")',
    )
    ap.add_argument(
        "--sequence-epochs", type=int, help="epochs of the deterioration model (default: the screened recipe's)"
    )
    args = ap.parse_args(argv)
    rule = threshold_rules.parse(args.threshold_rule)  # an unknown rule stops here, before hours of training
    if args.smoke:
        sequence.EPOCHS, attention.EPOCHS, trees.WEIGHTED_ROUNDS = 1, 1, 20
    if args.sequence_epochs:
        sequence.EPOCHS = attention.EPOCHS = args.sequence_epochs
    seq_model = _SequenceModel(args.sequence_model)
    seq_names = SEQUENCE_INPUT_SETS[args.sequence_inputs]
    seq_cols = sequence_columns(seq_names)
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(int(os.environ.get("VIGIL_TRAIN_THREADS", "1")))
    c = data.load_cohort(args.data, log=log)
    assert c.unit is not None
    if args.max_patients:
        c = data.subsample(c, args.max_patients, args.seed)
    hour_zero: dict[str, Any] = {"anchor": args.hour_zero}
    if args.hour_zero == "first-measurement":
        c, left_out = data.from_first_measurement(c)
        hour_zero.update(left_out)
        log(f"hour 0 at each stay's first measured row: {left_out}")
    mats = cohort_features.Matrices(c)
    x, s = mats.tree(None), _columns(mats.sequence(None), seq_cols)
    _check_unseen(c.matrix)
    y, w = labels.utility_targets(c.labels, c.lengths)
    u = shifts.Utility(c.labels, c.lengths)
    # the shipped thresholds and every shift block's: chosen by the bundle's rule on the training side
    ruled = threshold_rules.with_rule(rule)(c.labels, c.lengths)
    fold = data.grouped_folds(c, args.folds, args.seed)
    o = c.offsets
    patient = c.patient_of_row()
    log(f"cohort: {len(c.lengths)} stays, {len(y)} hours; features {x.shape[1]}, sequence inputs {s.shape[1]}")

    taught = ("labs_every", cohort_features.LAB_SCHEDULES[0]) if args.teach_daily_labs else None

    def fit_tree(rows: np.ndarray) -> Any:
        xr, yr, wr = np.asarray(x[rows]), y[rows], w[rows]
        if taught is not None:
            xr, yr, wr = trees.beside(xr, np.asarray(mats.tree(taught)[rows]), yr, wr)
        return trees.fit_weighted(xr, yr, wr, args.seed, TREE_FEATURES)

    def predict_tree(model: Any, rows: np.ndarray, copy: cohort_features.Copy | None) -> np.ndarray:
        return model.predict(np.asarray(mats.tree(copy)[rows]))

    def fit_seq(rows: np.ndarray) -> Any:
        return seq_model.fit(s, y, w, o, np.unique(patient[rows]), args.seed)

    def predict_seq(model: Any, rows: np.ndarray, copy: cohort_features.Copy | None) -> np.ndarray:
        return seq_model.predict(model, _columns(mats.sequence(copy), seq_cols), o, np.unique(patient[rows]))

    t_cv = time.perf_counter()
    thin_seeds, vitals_seeds = cohort_features.THIN_SEEDS, cohort_features.VITALS_SEEDS
    schedules, panel_seeds = cohort_features.LAB_SCHEDULES, cohort_features.PANEL_SEEDS
    log("shift tests: trees")
    tree_pred = shifts.predict_shifts(
        u, fold, c.unit, fit_tree, predict_tree, thin_seeds, log, vitals_seeds, schedules, panel_seeds
    )
    log(f"shift tests: {args.sequence_model}")
    seq_pred = shifts.predict_shifts(
        u, fold, c.unit, fit_seq, predict_seq, thin_seeds, log, vitals_seeds, schedules, panel_seeds
    )
    cv_seconds = time.perf_counter() - t_cv

    # 2.1: the sequence model's weight in the alert score is 0. Stacked with the GRU, the worst case
    # under the shift tests v2 fell by 0.06-0.12 utility (the medical -> surgical threshold) at equal
    # ranking, and with the attention encoder too (docs/models.md "Shift tests v2"). The sequence
    # model still runs and is reported as its own score.
    stack = stacking.fit(tree_pred.oof[0], seq_pred.oof[0], y, w, sequence=False)
    both = shifts.ShiftPredictions.stack([tree_pred, seq_pred])
    comb_oof = stack.apply(tree_pred.oof[0], seq_pred.oof[0])
    held_out: shifts.HeldOut = {}  # the combined score's held-out scores, for its calibration
    metrics: dict[str, Any] = {
        "cohort": {
            "patients": int(len(c.lengths)),
            "hours": int(len(y)),
            "septic_patients": int(c.septic_stays().sum()),
            "unit1_patients": int((c.unit == 1).sum()),
            "unit2_patients": int((c.unit == 2).sum()),
            "hour_zero": hour_zero,
            "folds": args.folds,
            "seed": args.seed,
            "lab_keep": cohort_features.LAB_KEEP,
            "thin_seeds": list(thin_seeds),
            "vitals_keep": cohort_features.VITALS_KEEP,
            "vitals_seeds": list(vitals_seeds),
            "lab_every_h": list(schedules),
            "panels_keep": cohort_features.PANELS_KEEP,
            "panel_seeds": list(panel_seeds),
            "trees_taught_on": TAUGHT_ON[taught is not None],
        },
        "sepsis_diagnosis": shifts.figures(ruled, tree_pred, fold, c.unit, y, w),
        "deterioration": shifts.figures(ruled, seq_pred, fold, c.unit, y, w),
        "combined": shifts.figures(ruled, both, fold, c.unit, y, w, stacking.trees_only_combiner, held_out),
        "combined_with_sequence": shifts.figures(ruled, both, fold, c.unit, y, w, stacking.combiner),
    }
    everything = np.ones(len(y), bool)
    thresholds = {
        "sepsis_diagnosis": ruled.threshold(tree_pred.oof[0], everything),
        "deterioration": ruled.threshold(seq_pred.oof[0], everything),
        "combined": ruled.threshold(comb_oof, everything),
    }
    set_a_best = u.threshold(comb_oof, everything)  # the site table's threshold at set A's own prevalence
    site_table = threshold_rules.by_site_prevalence(u, comb_oof, everything, threshold_rules.PREVALENCES)
    metrics["combined"]["threshold_by_site_prevalence"] = site_table
    metrics["combined"]["reliability"] = stacking.reliability(y, comb_oof)
    metrics["combined"]["calibration_held_out"] = {
        name: stacking.calibration(y[rows], p) for name, (rows, p) in held_out.items()
    }
    metrics["combined"]["stacker"] = stack.params()
    metrics["cv_seconds"] = round(cv_seconds, 1)
    np.savez_compressed(
        args.oof_out,
        diagnosis=tree_pred.oof[0],
        deterioration=seq_pred.oof[0],
        combined=comb_oof,
        labels=c.labels,
        lengths=c.lengths,
        patient_fold=fold,
        **{f"rule_{k}": v for k, v in c.rules.items()},
    )
    metrics["cohort"]["threshold_rule"] = args.threshold_rule
    # the trees' shift predictions, for threshold_rules / paired on the bundle's own folds
    screen.PRED_DIR.mkdir(parents=True, exist_ok=True)
    tree_pred.save(screen.PRED_DIR / f"bundle-{VERSION}-s{args.seed}.npz")
    log(f"thresholds {thresholds}; worst combined {metrics['combined']['worst']}")

    t_fit = time.perf_counter()
    booster = fit_tree(np.arange(len(y)))
    seq_final = seq_model.fit(s, y, w, o, np.arange(len(c.lengths)), args.seed)
    final_seconds = time.perf_counter() - t_fit
    p_tree_all = booster.predict(np.asarray(x))
    p_seq_all = seq_model.predict(seq_final, s, o, np.arange(len(c.lengths)))
    refit = stack.apply(p_tree_all, p_seq_all)
    metrics["combined"]["threshold_check"] = {
        "oof_alert_share": round(float((comb_oof >= thresholds["combined"]).mean()), 4),
        "refit_alert_share_in_sample": round(float((refit >= thresholds["combined"]).mean()), 4),
        "refit_alert_share_non_septic_stays": round(
            float((refit[~u.rows_of(_septic(c))] >= thresholds["combined"]).mean()), 4
        ),
        "oof_alert_share_non_septic_stays": round(
            float((comb_oof[~u.rows_of(_septic(c))] >= thresholds["combined"]).mean()), 4
        ),
        "tolerance": "refit share on non-septic stays within 0.5x-1.5x of the OOF share",
    }
    gain = booster.feature_importance("gain")
    share = {n: float(g / gain.sum()) for n, g in zip(TREE_FEATURES, gain, strict=True)}
    top = sorted(share.items(), key=lambda kv: -kv[1])
    metrics["sepsis_diagnosis"]["top_gain_features"] = [[n, round(v, 4)] for n, v in top[:20]]
    from vigil.models.stay_features import MISSINGNESS_FEATURES

    metrics["sepsis_diagnosis"]["missingness_gain_share"] = round(
        sum(v for n, v in top if n in MISSINGNESS_FEATURES), 4
    )
    metrics["final_fit_seconds"] = round(final_seconds, 1)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    trees.export_onnx(booster, len(TREE_FEATURES), str(out / "sepsis_diagnosis.onnx"))
    booster.save_model(str(out / "sepsis_diagnosis.lgbm.txt"))
    np.savez_compressed(out / "sepsis_diagnosis_trees.npz", **trees.tree_table(booster))
    contrib_graph.write_contribution_graph(
        out / "sepsis_diagnosis.onnx", out / "sepsis_diagnosis_trees.npz", out / contrib_graph.CONTRIB_FILE
    )
    seq_files = seq_model.export_onnx(seq_final, out)
    reference.write_references(out, booster, seq_final, x, s, o, args.seed)
    drift_reference.write_training_reference(
        out / "training_reference.json", c.matrix, x, [n for n, _ in top[:20]], c.offsets
    )
    files = [
        "sepsis_diagnosis.onnx",
        "sepsis_diagnosis.lgbm.txt",
        "sepsis_diagnosis_trees.npz",
        contrib_graph.CONTRIB_FILE,
        "sepsis_diagnosis_reference.npz",
        *seq_files,
        "deterioration_reference.npz",
        "training_reference.json",
    ]
    total = time.perf_counter() - t_start
    metrics["total_seconds"] = round(total, 1)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "training_data": "PhysioNet/CinC Challenge 2019 training set A (ODbL 1.0), doi:10.13026/v64v-d857",
        "training_command": f"python -m vigil.models.train --seed {args.seed} --folds {args.folds}"
        + (" --teach-daily-labs" if taught is not None else " --no-teach-daily-labs")
        + f" --threshold-rule {args.threshold_rule} --sequence-model {args.sequence_model}"
        + f" --sequence-inputs {args.sequence_inputs} --hour-zero {args.hour_zero}"
        + (f" --sequence-epochs {args.sequence_epochs}" if args.sequence_epochs else ""),
        "training_seconds": round(total, 1),
        "platform": platform.platform(),
        "tree_features": TREE_FEATURES,
        "sequence_inputs": seq_names,
        "unseen_in_training": list(UNSEEN_IN_TRAINING),
        "hour_zero": args.hour_zero,
        "models": {
            "sepsis_diagnosis": {
                "version": f"sepsis_diagnosis-{VERSION}",
                "file": "sepsis_diagnosis.onnx",
                "kind": "lightgbm",
                "target": labels.TARGET,
                "threshold": thresholds["sepsis_diagnosis"],
                "contributions_file": "sepsis_diagnosis_trees.npz",
                "contributions_graph": contrib_graph.CONTRIB_FILE,
                "params": dict(
                    trees.WEIGHTED_PARAMS,
                    rounds=trees.WEIGHTED_ROUNDS,
                    negative_share=trees.NEGATIVE_SHARE,
                    monotone=trees.monotone_summary(),
                    taught_on=TAUGHT_ON[taught is not None],
                ),
            },
            "deterioration": {
                "version": f"deterioration-{VERSION}",
                "file": "deterioration_step.onnx",
                "sequence_file": "deterioration_sequence.onnx",
                **seq_model.serving(),
                "target": labels.TARGET,
                "threshold": thresholds["deterioration"],
                "params": seq_model.params(),
            },
            "combined": {
                "version": f"combined-{VERSION}",
                "method": "logistic stacker on the trees' log-odds (OOF, utility weights; the sequence model's "
                "weight held at 0, issue 12 shift tests v2) + isotonic calibration",
                "stacker": stack.params(),
                "calibration": stack.calibration(),
                "threshold": thresholds["combined"],
                "threshold_rule": THRESHOLD_RULES.get(
                    args.threshold_rule, f"threshold_rules {args.threshold_rule} on set-A OOF (calibrated risk)"
                ),
                "set_a_best_threshold": set_a_best,
            },
        },
        "files": {
            name: {
                "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(),
                "bytes": (out / name).stat().st_size,
            }
            for name in files
        },
    }
    # a site's threshold by its septic-stay prevalence, and the set-A alert share of each threshold
    # (the burden ceiling): models.site_threshold
    threshold_rules.pin_site_tables(manifest["models"]["combined"], site_table, comb_oof)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    carried = metrics_file.carry_recipe_studies(out / "metrics.json", metrics)
    if carried:
        log(f"kept from the previous metrics.json: {', '.join(carried)}")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"done in {total:.0f}s: combined {json.dumps({k: metrics['combined'][k] for k in ('cv', 'worst')})}")
    return 0


class _SequenceModel:
    """The deterioration model's training, prediction, export and manifest entry, by name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = {"attention": "attention-step", "gru": "gru-step"}[name]
        self.state_size = attention.state_size() if name == "attention" else sequence.HIDDEN
        self.module: Any = attention if name == "attention" else sequence

    def fit(self, s: np.ndarray, y: np.ndarray, w: np.ndarray, o: np.ndarray, stays: np.ndarray, seed: int) -> Any:
        if self.name == "attention":
            return attention.fit(s, y, w, o, stays, seed, log=log, epochs=attention.EPOCHS)
        return sequence.fit(s, y, w, o, stays, seed, log=log)

    def predict(self, model: Any, s: np.ndarray, o: np.ndarray, stays: np.ndarray) -> np.ndarray:
        return np.asarray(self.module.predict(model, s, o, stays))

    def export_onnx(self, model: Any, out: Path) -> list[str]:
        """The graphs of this model in ``out``; returns their file names."""
        files = ["deterioration_step.onnx", "deterioration_sequence.onnx"]
        if self.name == "attention":
            files.append(WINDOW_FILE)
        self.module.export_onnx(model, *(str(out / f) for f in files))
        return files

    def serving(self) -> dict[str, Any]:
        """What the serving side reads to step this model (``models.bundle``): its kind, its state size
        and, for a window model, its hours and the graph the stream scores with."""
        fields: dict[str, Any] = {"kind": self.kind, "hidden": self.state_size}
        if self.name == "attention":
            fields |= {"window_hours": attention.WINDOW, "window_file": WINDOW_FILE}
        return fields

    def params(self) -> dict[str, Any]:
        common = {
            "batch_stays": sequence.BATCH_STAYS,
            "lr": sequence.LR,
            "negative_stay_share": sequence.NEGATIVE_STAY_SHARE,
        }
        if self.name == "attention":
            return {
                "epochs": attention.EPOCHS,
                "d_model": attention.D_MODEL,
                "heads": attention.HEADS,
                **common,
            }
        return {"epochs": sequence.EPOCHS, "hidden": sequence.HIDDEN, **common}


def _columns(s: np.ndarray, cols: np.ndarray | None) -> np.ndarray:
    """The sequence inputs the model reads, of a cohort's full matrix (``stay_features.SEQUENCE_INPUTS``)."""
    return s if cols is None else np.asarray(s[:, cols])


def _septic(c: data.Cohort) -> np.ndarray:
    o = c.offsets
    return np.array([c.labels[a:b].any() for a, b in zip(o[:-1], o[1:], strict=True)])


def _check_unseen(matrix: np.ndarray) -> None:
    """Every channel the models read was measured in the training data; the unseen ones are not read."""
    measured = (~np.isnan(matrix)).mean(0)
    for code, rate in zip(DYNAMIC_CODES, measured, strict=True):
        if (rate == 0) != (code in UNSEEN_IN_TRAINING):
            raise SystemExit(f"{code}: measured in {rate:.4%} of hours; update stay_features.UNSEEN_IN_TRAINING")


if __name__ == "__main__":
    raise SystemExit(main())
