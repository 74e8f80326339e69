"""Render the model cards in docs/model-cards/ from models/artifacts/{manifest,metrics}.json.

    python -m models.train.cards      (run by models.train after training; needs no torch)

Every figure in a card comes from the training run's metrics.json, so the cards cannot drift
from the artifacts they describe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
CARDS = ROOT / "docs" / "model-cards"

ATTRIBUTION = """\
PhysioNet/CinC Challenge 2019 training set A: 20,336 ICU stays (one row per hour), 790,215 hours,
1,790 stays with `SepsisLabel = 1` at some hour.

- Source: "Early Prediction of Sepsis from Clinical Data: the PhysioNet/Computing in Cardiology
  Challenge 2019", v1.0.0, https://physionet.org/content/challenge-2019/1.0.0/ (doi:10.13026/v64v-d857).
- Cite: Reyna MA, Josef CS, Jeter R, et al. Crit Care Med 48(2):210-217 (2020),
  doi:10.1097/CCM.0000000000004145; and Goldberger AL et al., PhysioBank, PhysioToolkit, and
  PhysioNet, Circulation 101(23):e215-e220 (2000).
- License: Open Data Commons Open Database License v1.0. This model was trained on that database;
  the attribution above travels with the model. No data is shipped with Vigil."""

INTENDED_USE = """\
Decision support for ICU clinicians: a score, its threshold and the features that drove it, shown
to a clinician who reviews the patient. It is **not** an autonomous diagnosis, does not order
treatment, and must not delay care of a patient the clinician is worried about. Not validated for
children, for wards outside the ICU, or for any hospital other than the one in set A."""

LIMITATIONS = """\
- Trained and cross-validated on **one hospital system** (set A). The challenge's hidden hospital
  showed that set-A figures drop elsewhere (anchors on another system: NEWS2 AUROC ~0.70, a quick
  gradient-boosting model ~0.73 and utility ~0.18). Expect lower figures on a new site; re-validate
  (and re-choose the threshold) on local data before use.
- `SepsisLabel` is a retrospective Sepsis-3 label from the challenge (suspicion of infection +
  SOFA change); it inherits that definition's timing noise.
- Set A lacks EtCO2 entirely and has no ACVPU/GCS, so NEWS2 here is a lower bound (consciousness and
  supplemental oxygen partly unknown); NEWS2/qSOFA/SIRS comparisons favour the models for that reason.
- Hourly rows only: the feature window is the last 48 hourly rows; events more than 48 h old are ignored.
- Thresholds maximize the challenge utility, which weights a missed case 40x a false-alarm hour; a
  site with a different alarm tolerance should re-choose the threshold (alert budget)."""


AT_THR = "alert_hours_per_patient_day_at_stored_threshold_oof"
VS_DET = "_vs_deterioration_target"


def _fmt(x: Any, nd: int = 3) -> str:
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _comparison(metrics: dict[str, Any], names: list[str]) -> str:
    rows = [
        "| score | AUROC (pooled OOF) | AUROC fold sd | AUPRC | utility (nested, mean ± sd over folds) "
        "| alert hours / patient-day |",
        "|---|---|---|---|---|---|",
    ]
    for n in names:
        m = metrics[n]
        label = n if "cutoff" not in m else f"{n} ≥ {m['cutoff']}"
        rows.append(
            f"| {label} | {_fmt(m['auroc'])} | {_fmt(m['auroc_fold_sd'])} | {_fmt(m['auprc'])} | "
            f"{_fmt(m['utility_nested_mean'])} ± {_fmt(m['utility_nested_sd'])} | "
            f"{_fmt(m['alert_hours_per_patient_day'], 2)} |"
        )
    return "\n".join(rows)


def _reliability(m: dict[str, Any]) -> str:
    if "reliability" not in m:
        return ""
    rows = ["| decile | hours | mean predicted | observed rate |", "|---|---|---|---|"]
    for r in m["reliability"]:
        rows.append(f"| {r['bin']} | {r['n']} | {r['mean_predicted']:.4f} | {r['observed_rate']:.4f} |")
    return f"Brier score {m['brier']:.5f} (pooled OOF).\n\n" + "\n".join(rows)


def _folds(m: dict[str, Any]) -> str:
    rows = [
        "| fold | threshold (chosen on the other 4 folds' OOF) | held-out utility | AUROC | AUPRC |",
        "|---|---|---|---|---|",
    ]
    for r in m["folds"]:
        rows.append(
            f"| {r['fold']} | {r['threshold']:.4f} | {r['utility']:.3f} | {r['auroc']:.3f} | {r['auprc']:.3f} |"
        )
    return "\n".join(rows)


def _gain_shares(artifacts: Path) -> dict[str, float]:
    """Gain share per feature from the native model (empty without lightgbm)."""
    try:
        import lightgbm as lgb
    except ImportError:
        return {}
    booster = lgb.Booster(model_file=str(artifacts / "sepsis_diagnosis.lgbm.txt"))
    gain = booster.feature_importance("gain")
    return {n: float(g / gain.sum()) for n, g in zip(booster.feature_name(), gain, strict=True)}


def _implicit_habit(shares: dict[str, float]) -> str:
    if not shares:
        return ""
    delta = sum(v for k, v in shares.items() if k.endswith("_delta"))
    return (
        f" Lab `*_delta` features (change since the previous draw) exist only when a lab was drawn twice "
        f"within 48 h, so they also carry measurement frequency implicitly: together **{delta:.1%}** of the "
        "gain. Read the explicit habit share as a lower bound."
    )


def render(manifest: dict[str, Any], metrics: dict[str, Any], shares: dict[str, float] | None = None) -> dict[str, str]:
    cv = metrics["cv"]
    run = (
        f"Trained {manifest['trained_at']} with seed {manifest['seed']} by `make train` "
        "(= `vigil train` = `.venv-train/bin/python -m models.train`) in "
        f"{metrics['total_seconds'] / 60:.1f} min "
        f"on 2 CPU cores (5-fold CV {metrics['cv_seconds'] / 60:.1f} min, final refit "
        f"{metrics['final_fit_seconds'] / 60:.1f} min). Platform: {manifest['platform']}."
    )
    cvtext = (
        f"Grouped {cv['folds']}-fold cross-validation by patient (seed {cv['seed']}, stratified by "
        f"septic stay; a patient's hours never straddle folds): {cv['patients']} stays, {cv['hours']} hours, "
        f"{cv['septic_patients']} septic stays. Figures are pooled out-of-fold (OOF) predictions; "
        "the utility is **nested**: each fold's threshold is chosen on the other folds' OOF "
        "predictions and applied to the "
        "held-out fold, so no reported utility is tuned on the numbers it reports."
    )
    rules = ["NEWS2", "qSOFA", "SIRS"]
    d, q, c = metrics["sepsis_diagnosis"], metrics["deterioration"], metrics["combined"]
    habit = ", ".join(f"`{k}` {v:.1%}" for k, v in d["habit_feature_gain"].items())
    top = ", ".join(f"`{n}` {v:.1%}" for n, v in d["top_gain_features"][:10])
    models = manifest["models"]
    dparams = models["sepsis_diagnosis"]["params"]
    det_vs_label = {**metrics, "deterioration": metrics["deterioration_vs_sepsislabel"]}

    def sha(name: str) -> str:
        return str(manifest["files"][name]["sha256"][:16])

    cards: dict[str, str] = {}
    cards["sepsis-diagnosis.md"] = f"""# Model card: sepsis_diagnosis ({models["sepsis_diagnosis"]["version"]})

LightGBM ({dparams["rounds"]} trees, {dparams["num_leaves"]}
leaves) on the {len(manifest["feature_names"])} window features of `models/features.py`, exported to ONNX
(`sepsis_diagnosis.onnx`, sha256 `{sha("sepsis_diagnosis.onnx")}…`).

## Target
`SepsisLabel` at the current hour: 1 from 6 h before the clinical onset of sepsis (Sepsis-3,
challenge definition) onwards. "Is this patient septic, or about to be within 6 h, now?"

## Training data
{ATTRIBUTION}

## Inputs
Last ≤ 48 hourly rows of the 34 PhysioNet vitals/labs (forward fill, rolling statistics, slopes and
trends bounded to the 48 h window), Age and Gender. Never: Unit1/Unit2, HospAdmTime, ICULOS (site habits).
Two measurement-habit features (`habit_hours_since_lab`, `habit_lab_values_24h`) carry
**{d["habit_feature_gain_share"]:.1%}** of the total split gain ({habit}).
{_implicit_habit(shares or {})}
Top gain: {top}.

## Cross-validated performance (set A)
{cvtext}

{_comparison(metrics, ["sepsis_diagnosis"] + rules)}

NEWS2/qSOFA/SIRS are computed from the same rows (latest charted values) by `models/early_warning.py`
and scored on the same folds at their clinical cut-offs (NEWS2 ≥ 5, qSOFA ≥ 2, SIRS ≥ 2); their totals
are the continuous score for AUROC/AUPRC.

Per fold:

{_folds(d)}

### Calibration (reliability by decile of predicted probability)
{_reliability(d)}

## Threshold
Stored threshold **{models["sepsis_diagnosis"]["threshold"]:.4f}** (maximizes the normalized utility on all
OOF predictions); alert hours per patient-day at it (OOF): {d[AT_THR]:.2f}.
Alerts in Vigil use the **combined** score (see combined.md).

## Explanations
Per prediction, Saabas path contributions in log-odds, computed in numpy from the exported tree table
(`sepsis_diagnosis_trees.npz`): along each tree's decision path, the change in node value is credited
to the split feature. Contributions plus the bias equal the model's log-odds exactly (tested against
the ONNX output). They are local and honest about the path taken, but unlike TreeSHAP they over-credit
features split near the root; read them as "what moved this score", not as causal effects.

## Run
{run}

## Limitations
{LIMITATIONS}

## Intended use
{INTENDED_USE}
"""
    cards["deterioration.md"] = (
        f"""# Model card: deterioration ({models["deterioration"]["version"]})

GRU (1 layer, hidden {models["deterioration"]["params"]["hidden"]}) over the last 48 h window, PyTorch →
ONNX (`deterioration.onnx`, dynamic batch axis, sha256 `{sha("deterioration.onnx")}…`).

## Target
**Sepsis onset within the next 12 h**: hour t is positive when t_sepsis − 12 ≤ t < t_sepsis, with
t_sepsis = first `SepsisLabel` hour + 6 (the challenge's onset). Hours at or after onset are outside
this model's task (excluded from its training and from the figures below); non-septic stays: every hour
negative. NEWS2 ≥ 7 was considered as a second target but not used: in set A, with consciousness and
oxygen often uncharted, ~10% of hours already score ≥ 7, which would turn the model into a NEWS2 copy.

Training samples: every positive hour plus {models["deterioration"]["params"]["negatives_per_stay"]} seeded
random negative hours per stay, negatives weighted by the inverse sampling rate so outputs stay
calibrated on all hours; {models["deterioration"]["params"]["epochs"]} epochs, Adam.

## Training data
{ATTRIBUTION}

## Inputs
`models.features.sequence_inputs(window, static)` → [48, 70]: per hour the 34 variables forward-filled
**within the window**, transformed (log1p for skewed labs) and standardized by fixed set-A median/IQR,
34 availability masks (a value exists in the window so far — not "measured this hour", to limit
measurement-habit signal), Age, Gender. Stays shorter than 48 h are left-padded with rows
that look exactly like hours with nothing measured yet: no "row present" flag, so the ICU length of stay
(a site habit) is not an explicit input.

## Cross-validated performance (set A)
{cvtext}

On this model's own target (eligible hours only):

| score | AUROC | AUPRC |
|---|---|---|
| deterioration | {q["auroc"]:.3f} | {q["auprc"]:.3f} |
"""
        + "\n".join(f"| {r} | {metrics[r + VS_DET]['auroc']:.3f} | {metrics[r + VS_DET]['auprc']:.3f} |" for r in rules)
        + f"""

Against `SepsisLabel` with the challenge utility (same folds, nested thresholds):

{_comparison(det_vs_label, ["deterioration"] + rules)}

Per fold (own target):

{_folds(q)}

### Calibration (own target, eligible hours)
{_reliability(q)}

## Threshold
Stored threshold **{models["deterioration"]["threshold"]:.4f}** (utility-maximizing on OOF); alert hours per
patient-day at it (OOF): {q[AT_THR]:.2f}.

## Explanations
Occlusion by variable group, in ONNX at serving time: for each group (each vital; lab panels: blood gas,
renal, liver, electrolytes, glucose, lactate, troponin, blood count, coagulation) present in the window,
the window is re-scored with that group removed (values and masks zeroed = "never measured"), batched
with the other patients; the contribution is the change in log-odds. Cost is one extra window per group
present, so by default it runs only for patients whose deterioration or combined score is positive
(`ModelBundle.score(..., explain="positive")`); `explain="all"` does every patient.

## Run
{run}

## Limitations
{LIMITATIONS}
- The reference GRU outputs (`deterioration_reference.npz`) pin ONNX to PyTorch within 1e-5.

## Intended use
{INTENDED_USE}
"""
    )
    cards["combined.md"] = f"""# Model card: combined risk ({models["combined"]["version"]})

`combined = (p_sepsis_diagnosis + p_deterioration) / 2` — the score Vigil's alerts use.

## Training data
{ATTRIBUTION}

## Threshold
**{models["combined"]["threshold"]:.4f}**, chosen to maximize the PhysioNet 2019 normalized utility on all
set-A OOF predictions (5-fold grouped CV), stored in `models/artifacts/manifest.json` with the model
versions and file hashes. Alert hours per patient-day at it (OOF): **{c[AT_THR]:.2f}**
(an "alert hour" is an hour with the score at or above threshold; the alert agent's hysteresis and
dedup turn runs of such hours into far fewer notifications). The challenge utility charges a false-alarm
hour only 0.05 against 1 for a timely detection and -2 for a miss, so its optimum alerts on a large share
of hours; a ward that cannot absorb that should set a higher threshold (an alert budget) and accept a
lower utility.

## Cross-validated performance (set A, label = SepsisLabel)
{cvtext}

{_comparison(metrics, ["combined", "sepsis_diagnosis"] + rules)}

Per fold:

{_folds(c)}

### Calibration
{_reliability(c)}

## Explanations
The union of both models' top contributions, each rescaled to probability units
(0.5 · p · (1 − p) · log-odds contribution), top 5.

## Run
{run}

## Limitations
{LIMITATIONS}

## Intended use
{INTENDED_USE}
"""
    return cards


def main() -> int:
    manifest = json.loads((ARTIFACTS / "manifest.json").read_text())
    metrics = json.loads((ARTIFACTS / "metrics.json").read_text())
    CARDS.mkdir(parents=True, exist_ok=True)
    for name, text in render(manifest, metrics, _gain_shares(ARTIFACTS)).items():
        (CARDS / name).write_text(text)
        print(CARDS / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
