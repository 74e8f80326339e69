"""Train, cross-validate and export Vigil's clinical models.

    .venv-train/bin/python -m models.train [--data DIR] [--out models/artifacts] [--seed 2019]

Grouped 5-fold CV by patient (stratified by septic stay) gives out-of-fold (OOF) predictions for
every hour of set A; thresholds are chosen *nested* (on the other folds' OOF, applied to the held-out
fold) for the reported utility; the stored thresholds are then chosen on all OOF predictions, and
the exported models are refit on all stays.
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

from vigil.models.features import FEATURE_NAMES, HABIT_FEATURES, SEQUENCE_CHANNELS, WINDOW_HOURS
from vigil.models.train import data, sequence, trees
from vigil.models.utility import auroc_auprc, best_threshold, utility_tables

VERSION = "1.0.0"
RULE_CUTOFFS = {"NEWS2": 5, "qSOFA": 2, "SIRS": 2}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append(
                {
                    "bin": b,
                    "n": int(m.sum()),
                    "mean_predicted": round(float(p[m].mean()), 4),
                    "observed_rate": round(float(y[m].mean()), 4),
                }
            )
    return rows


def _evaluate(
    name: str,
    score: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    c: data.Cohort,
    row_fold: np.ndarray,
    k: int,
    fixed_cutoff: float | None = None,
    calibrated: bool = True,
) -> dict[str, Any]:
    """Pooled OOF AUROC/AUPRC (on ``rows``) + challenge utility with nested thresholds per fold."""
    auroc, auprc = auroc_auprc(y[rows], score[rows])
    per_fold = []
    o = c.offsets
    patient_fold = row_fold[o[:-1]]
    labels_by_patient = [c.labels[o[p] : o[p + 1]] for p in range(len(c.lengths))]
    u0, u1, _, _ = utility_tables(labels_by_patient)
    alerts = 0.0
    for f in range(k):
        test = row_fold == f
        train = ~test
        if fixed_cutoff is None:
            tr_best = sum(_best(labels_by_patient[p]) for p in np.nonzero(patient_fold != f)[0])
            thr = best_threshold(score[train], u0[train], u1[train], tr_best, float(u0[train].sum()))
        else:
            thr = fixed_cutoff
        te_best = sum(_best(labels_by_patient[p]) for p in np.nonzero(patient_fold == f)[0])
        pred = score[test] >= thr
        observed = float(np.where(pred, u1[test], u0[test]).sum())
        inaction = float(u0[test].sum())
        fa, fp_ = auroc_auprc(y[test & rows], score[test & rows])
        per_fold.append(
            {
                "fold": f,
                "threshold": float(thr),
                "utility": (observed - inaction) / (te_best - inaction),
                "auroc": fa,
                "auprc": fp_,
                "alerts_per_patient_day": 24.0 * float(pred.sum()) / float(test.sum()),
            }
        )
        alerts += float(pred.sum())
    util = [r["utility"] for r in per_fold]
    out: dict[str, Any] = {
        "name": name,
        "auroc": round(auroc, 4),
        "auprc": round(auprc, 4),
        "auroc_fold_sd": round(float(np.std([r["auroc"] for r in per_fold])), 4),
        "utility_nested_mean": round(float(np.mean(util)), 4),
        "utility_nested_sd": round(float(np.std(util)), 4),
        "alert_hours_per_patient_day": round(24.0 * alerts / len(score), 3),
        "folds": per_fold,
    }
    if calibrated:
        out["brier"] = round(float(np.mean((score[rows] - y[rows]) ** 2)), 5)
        out["reliability"] = _reliability(y[rows], score[rows])
    return out


_BEST_CACHE: dict[int, float] = {}


def _best(labels: np.ndarray) -> float:
    from vigil.models.utility import best_predictions, row_utilities

    u0, u1 = row_utilities(labels)
    return float(np.where(best_predictions(labels).astype(bool), u1, u0).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.train")
    ap.add_argument("--data", type=Path, default=data.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "artifacts")
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--max-patients", type=int, default=0, help="subsample stays (quick runs)")
    ap.add_argument(
        "--oof-out",
        type=Path,
        default=None,
        help="save the out-of-fold predictions and rule scores (alert-burden analysis)",
    )
    ap.add_argument("--cv-only", action="store_true", help="stop after cross-validation (artifacts untouched)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(int(os.environ.get("VIGIL_TRAIN_THREADS", "1")))
    c = data.load_cohort(args.data, log=log)
    if args.max_patients:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(c.lengths), args.max_patients, replace=False))
        o = c.offsets
        rows = np.concatenate([np.arange(o[p], o[p + 1]) for p in keep])
        c = data.Cohort(
            c.matrix[rows],
            c.labels[rows],
            c.lengths[keep],
            c.age[keep],
            c.gender[keep],
            c.names[keep],
            {k: v[rows] for k, v in c.rules.items()},
        )
    log(f"cohort: {len(c.lengths)} stays, {len(c.labels)} hours")
    x = data.all_features(c)
    y = c.labels.astype(np.int8)
    y_det, eligible = data.deterioration_target(c)
    patient_fold = data.grouped_folds(c, args.folds, args.seed)
    row_fold = np.repeat(patient_fold, c.lengths)
    log(f"features {x.shape}")

    oof_diag = np.zeros(len(y), np.float32)
    oof_det = np.zeros(len(y), np.float32)
    t_cv = time.perf_counter()
    for f in range(args.folds):
        test = row_fold == f
        booster = trees.fit(x[~test], y[~test], args.seed + f, FEATURE_NAMES)
        oof_diag[test] = booster.predict(x[test])
        train_patients = np.nonzero(patient_fold != f)[0]
        test_patients = np.nonzero(patient_fold == f)[0]
        gru = sequence.fit(c, train_patients, y_det, eligible, args.seed + f, log=log)
        oof_det[test] = sequence.predict_rows(gru, c, test_patients)
        log(
            f"fold {f}: diag AUROC {auroc_auprc(y[test], oof_diag[test])[0]:.3f}, "
            f"det AUROC {auroc_auprc(y_det[test & eligible], oof_det[test & eligible])[0]:.3f}"
        )
    cv_seconds = time.perf_counter() - t_cv
    combined = 0.5 * (oof_diag + oof_det)
    if args.oof_out:
        args.oof_out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            args.oof_out,
            diagnosis=oof_diag,
            deterioration=oof_det,
            combined=combined,
            labels=c.labels,
            lengths=c.lengths,
            patient_fold=patient_fold,
            **{f"rule_{k}": v for k, v in c.rules.items()},
        )
        log(f"out-of-fold predictions -> {args.oof_out}")
    if args.cv_only:
        return 0
    all_rows = np.ones(len(y), bool)
    metrics: dict[str, Any] = {
        "cv": {
            "folds": args.folds,
            "seed": args.seed,
            "patients": int(len(c.lengths)),
            "hours": int(len(y)),
            "septic_patients": int(
                sum(c.labels[a:b].any() for a, b in zip(c.offsets[:-1], c.offsets[1:], strict=True))
            ),
        },
        "sepsis_diagnosis": _evaluate("sepsis_diagnosis", oof_diag, y, all_rows, c, row_fold, args.folds),
        "deterioration": _evaluate("deterioration", oof_det, y_det, eligible, c, row_fold, args.folds),
        "combined": _evaluate("combined", combined, y, all_rows, c, row_fold, args.folds),
    }
    # the deterioration model also scored against SepsisLabel (the utility's label) for comparison
    metrics["deterioration_vs_sepsislabel"] = _evaluate(
        "deterioration", oof_det, y, all_rows, c, row_fold, args.folds, calibrated=False
    )
    for name, cutoff in RULE_CUTOFFS.items():
        s = c.rules[name].astype(np.float32)
        metrics[name] = _evaluate(name, s, y, all_rows, c, row_fold, args.folds, fixed_cutoff=cutoff, calibrated=False)
        metrics[name]["cutoff"] = cutoff
        metrics[name + "_vs_deterioration_target"] = {
            "auroc": round(auroc_auprc(y_det[eligible], s[eligible])[0], 4),
            "auprc": round(auroc_auprc(y_det[eligible], s[eligible])[1], 4),
        }
    metrics["cv_seconds"] = round(cv_seconds, 1)

    # stored thresholds: chosen on all OOF predictions
    o = c.offsets
    labels_by_patient = [c.labels[o[p] : o[p + 1]] for p in range(len(c.lengths))]
    u0, u1, best, inaction = utility_tables(labels_by_patient)
    thresholds = {
        "sepsis_diagnosis": best_threshold(oof_diag, u0, u1, best, inaction),
        "deterioration": best_threshold(oof_det, u0, u1, best, inaction),
        "combined": best_threshold(combined, u0, u1, best, inaction),
    }
    for name, score in (("sepsis_diagnosis", oof_diag), ("deterioration", oof_det), ("combined", combined)):
        pred = score >= thresholds[name]
        metrics[name]["stored_threshold"] = thresholds[name]
        metrics[name]["alert_hours_per_patient_day_at_stored_threshold_oof"] = round(24 * float(pred.mean()), 3)
    log(f"thresholds {thresholds}")

    # final models on all stays
    t_fit = time.perf_counter()
    booster = trees.fit(x, y, args.seed, FEATURE_NAMES)
    gru = sequence.fit(c, np.arange(len(c.lengths)), y_det, eligible, args.seed, log=log)
    final_seconds = time.perf_counter() - t_fit
    gain = booster.feature_importance("gain")
    share = {n: float(g / gain.sum()) for n, g in zip(FEATURE_NAMES, gain, strict=True)}
    metrics["sepsis_diagnosis"]["habit_feature_gain_share"] = round(sum(share[h] for h in HABIT_FEATURES), 4)
    metrics["sepsis_diagnosis"]["habit_feature_gain"] = {h: round(share[h], 4) for h in HABIT_FEATURES}
    metrics["sepsis_diagnosis"]["top_gain_features"] = [
        [n, round(v, 4)] for n, v in sorted(share.items(), key=lambda kv: -kv[1])[:15]
    ]

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    trees.export_onnx(booster, len(FEATURE_NAMES), str(out / "sepsis_diagnosis.onnx"))
    booster.save_model(str(out / "sepsis_diagnosis.lgbm.txt"))
    np.savez_compressed(out / "sepsis_diagnosis_trees.npz", **trees.tree_table(booster))
    sequence.export_onnx(gru, str(out / "deterioration.onnx"))

    # reference arrays for serving tests (no lightgbm/torch needed to compare)
    rng = np.random.default_rng(args.seed)
    ref_rows = rng.choice(len(y), 256, replace=False)
    np.savez_compressed(
        out / "sepsis_diagnosis_reference.npz",
        features=x[ref_rows],
        raw=booster.predict(x[ref_rows], raw_score=True),
        probability=booster.predict(x[ref_rows]),
    )
    from vigil.models.features import stay_sequence_inputs

    ref_patients = rng.choice(len(c.lengths), 16, replace=False)
    seq_ref = []
    for p in ref_patients:
        m, s, _ = c.stay(int(p))
        seq_ref.append(stay_sequence_inputs(m, s, np.array([len(m) - 1])))
    seq_ref_x = np.concatenate(seq_ref)
    with torch.no_grad():
        seq_ref_p = gru(torch.from_numpy(seq_ref_x)).numpy()
    np.savez_compressed(out / "deterioration_reference.npz", sequence=seq_ref_x, probability=seq_ref_p)

    files = [
        "sepsis_diagnosis.onnx",
        "sepsis_diagnosis.lgbm.txt",
        "sepsis_diagnosis_trees.npz",
        "sepsis_diagnosis_reference.npz",
        "deterioration.onnx",
        "deterioration_reference.npz",
    ]
    total_seconds = time.perf_counter() - t_start
    metrics["final_fit_seconds"] = round(final_seconds, 1)
    metrics["total_seconds"] = round(total_seconds, 1)
    manifest = {
        "version": VERSION,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "training_data": "PhysioNet/CinC Challenge 2019 training set A (ODbL 1.0), doi:10.13026/v64v-d857",
        "training_command": "python -m models.train"
        + (f" --max-patients {args.max_patients}" if args.max_patients else ""),
        "training_seconds": round(total_seconds, 1),
        "platform": platform.platform(),
        "window_hours": WINDOW_HOURS,
        "feature_names": FEATURE_NAMES,
        "sequence_channels": SEQUENCE_CHANNELS,
        "models": {
            "sepsis_diagnosis": {
                "version": f"sepsis_diagnosis-{VERSION}",
                "file": "sepsis_diagnosis.onnx",
                "kind": "lightgbm",
                "target": "SepsisLabel (sepsis within the challenge's 6 h early window)",
                "threshold": thresholds["sepsis_diagnosis"],
                "contributions_file": "sepsis_diagnosis_trees.npz",
                "contributions": "saabas path contributions, log-odds",
                "params": dict(trees.LGBM_PARAMS, rounds=trees.N_ROUNDS),
            },
            "deterioration": {
                "version": f"deterioration-{VERSION}",
                "file": "deterioration.onnx",
                "kind": "gru",
                "target": "sepsis onset (t_sepsis = first SepsisLabel hour + 6) within the next 12 h",
                "threshold": thresholds["deterioration"],
                "contributions": "occlusion by variable group, log-odds",
                "params": {
                    "hidden": sequence.HIDDEN,
                    "epochs": sequence.EPOCHS,
                    "negatives_per_stay": sequence.NEG_PER_STAY,
                },
            },
            "combined": {
                "version": f"combined-{VERSION}",
                "method": "mean of the two probabilities",
                "threshold": thresholds["combined"],
                "threshold_rule": "maximizes PhysioNet 2019 normalized utility on set-A 5-fold OOF",
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
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if out.resolve() == (Path(__file__).resolve().parents[1] / "artifacts"):
        from vigil.models.train import cards

        cards.main()
    log(
        f"done in {total_seconds:.0f}s: "
        + json.dumps(
            {
                k: {kk: v.get(kk) for kk in ("auroc", "auprc", "utility_nested_mean")}
                for k, v in metrics.items()
                if isinstance(v, dict) and "auroc" in v
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
