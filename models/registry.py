"""Model files, versions, thresholds and batched scoring (serving side: numpy + onnxruntime only).

``load_bundle()`` reads ``models/artifacts/manifest.json``, checks every file's sha256 against it
(a mismatch raises :class:`ArtifactIntegrityError`) and opens one ONNX session per model.
``ModelBundle.score()`` scores many patients' windows in one call per model and returns, per patient,
the ``schemas.scores.ModelScore`` list with explanations:

- sepsis_diagnosis (LightGBM): per-prediction Saabas path contributions in log-odds, computed in
  numpy from the exported tree table (the sum of contributions plus the bias equals the model's
  log-odds; tested against the ONNX output).
- deterioration (GRU): occlusion by variable group -- the change in log-odds when that group is
  removed from the 48 h window (as if never measured), all patients x groups in one batched run.
- combined: mean of the two probabilities; its explanation merges both lists, each contribution
  scaled to probability units (0.5 * p * (1 - p) * log-odds contribution).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vigil.models.bundle import ModelName, StayRisk, model_score
from vigil.models.features import (
    DYNAMIC_CODES,
    FEATURE_NAMES,
    N_DYNAMIC,
    SEQUENCE_CHANNELS,
    batch_sequence_inputs,
    batch_window_features,
    stay_features,
    stay_sequence_inputs,
)
from vigil.models.integrity import (  # noqa: F401  (re-exported: the serving API)
    ARTIFACTS_DIR,
    ArtifactIntegrityError,
    load_manifest,
    sha256_file,
    verify_artifacts,
)
from vigil.models.padding import bucket_size, run_padded  # noqa: F401
from vigil.models.tree_explain import tree_contributions
from vigil.schemas.scores import FeatureContribution, ModelScore

DEFAULT_BUCKETS: tuple[int, ...] = (1, 8, 32, 64, 256)
TOP_K = 5

# Occlusion groups for the sequence model: single vitals, lab panels, demographics.
OCCLUSION_GROUPS: dict[str, tuple[str, ...]] = {
    **{c: (c,) for c in ("HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "EtCO2")},
    "blood_gas": ("BaseExcess", "HCO3", "FiO2", "pH", "PaCO2", "SaO2"),
    "renal": ("BUN", "Creatinine"),
    "liver": ("AST", "Alkalinephos", "Bilirubin_direct", "Bilirubin_total"),
    "electrolytes": ("Calcium", "Chloride", "Magnesium", "Phosphate", "Potassium"),
    "Glucose": ("Glucose",),
    "Lactate": ("Lactate",),
    "TroponinI": ("TroponinI",),
    "blood_count": ("Hct", "Hgb", "WBC", "Platelets"),
    "coagulation": ("PTT", "Fibrinogen"),
}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class BundleScore:
    """One patient's scores at one hour."""

    scores: list[ModelScore]

    def by_model(self, name: str) -> ModelScore:
        return next(s for s in self.scores if s.model == name)


@dataclass
class ModelBundle:
    manifest: dict[str, Any]
    diagnosis_session: Any
    deterioration_session: Any
    tree_table: dict[str, np.ndarray]
    artifacts_dir: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def combined_threshold(self) -> float:
        return float(self.manifest["models"]["combined"]["threshold"])

    def _meta(self, name: str) -> dict[str, Any]:
        return self.manifest["models"][name]

    # ---------------------------------------------------------------- raw probabilities
    def diagnosis_probability(self, features: np.ndarray, buckets: Sequence[int] | None = None) -> np.ndarray:
        out = run_padded(self.diagnosis_session, "features", features.astype(np.float32), buckets)
        return np.asarray(out[1])[:, 1].astype(np.float32)

    def deterioration_probability(self, sequences: np.ndarray, buckets: Sequence[int] | None = None) -> np.ndarray:
        out = run_padded(self.deterioration_session, "sequence", sequences.astype(np.float32), buckets)
        return np.asarray(out[0]).reshape(-1).astype(np.float32)

    def combine(self, p_diag: np.ndarray, p_det: np.ndarray) -> np.ndarray:
        return (0.5 * (p_diag + p_det)).astype(np.float32)

    def stay_risks(self, matrices: Sequence[np.ndarray], statics: Sequence[Mapping[str, float]]) -> list[StayRisk]:
        """Every hour of every stay, batched: one ONNX call per model for the whole group."""
        lengths = [len(m) for m in matrices]
        if sum(lengths) == 0:
            return [StayRisk(*(np.zeros(0, np.float32),) * 3) for _ in matrices]
        feats = np.concatenate([stay_features(m, s) for m, s in zip(matrices, statics, strict=True)])
        seqs = np.concatenate([stay_sequence_inputs(m, s) for m, s in zip(matrices, statics, strict=True)])
        p_diag = self.diagnosis_probability(feats)
        p_det = self.deterioration_probability(seqs)
        comb = self.combine(p_diag, p_det)
        bounds = np.r_[0, np.cumsum(lengths)]
        return [StayRisk(p_diag[a:b], p_det[a:b], comb[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    # ---------------------------------------------------------------- streaming
    def score(
        self,
        windows: Sequence[np.ndarray],
        statics: Sequence[Mapping[str, float]],
        buckets: Sequence[int] | None = DEFAULT_BUCKETS,
        explain: Literal["all", "positive", "trees", "none"] = "positive",
    ) -> list[BundleScore]:
        """Score the newest hour of each patient's window (last <= 48 hourly rows, DYNAMIC_CODES order).

        Explanations: tree contributions for every patient unless ``explain="none"``; the sequence
        model's occlusion attribution (one extra window per variable group) for every patient with
        ``"all"``, and only for patients whose deterioration or combined score is positive with
        ``"positive"`` (the default: those are the scores a clinician is asked to act on), for none
        with ``"trees"`` (the stream's choice: the occlusion is computed when an alert opens).
        """
        if len(windows) != len(statics):
            raise ValueError("one static mapping per window")
        if not windows:
            return []
        t0 = time.perf_counter()
        feats = batch_window_features(windows, statics)
        seqs = batch_sequence_inputs(windows, statics)
        p_diag = self.diagnosis_probability(feats, buckets)
        p_det = self.deterioration_probability(seqs, buckets)
        comb = self.combine(p_diag, p_det)
        t1 = time.perf_counter()
        diag_top: list[list[FeatureContribution]] = [[] for _ in windows]
        det_top: list[list[FeatureContribution]] = [[] for _ in windows]
        if explain != "none":
            diag_top = self._explain_diagnosis(feats)
            chosen = np.arange(len(windows)) if explain != "trees" else np.arange(0)
            if explain == "positive":
                pos = (p_det >= self._meta("deterioration")["threshold"]) | (comb >= self.combined_threshold)
                chosen = np.nonzero(pos)[0]
            if len(chosen):
                tops = self._explain_deterioration(
                    [windows[int(i)] for i in chosen], seqs[chosen], p_det[chosen], buckets
                )
                for j, top in zip(chosen.tolist(), tops, strict=True):
                    det_top[j] = top
        self.timings = {"predict_s": t1 - t0, "explain_s": time.perf_counter() - t1}
        out = []
        for i in range(len(windows)):
            combined_top = sorted(
                [_scaled(fc, 0.5 * p_diag[i] * (1 - p_diag[i])) for fc in diag_top[i]]
                + [_scaled(fc, 0.5 * p_det[i] * (1 - p_det[i])) for fc in det_top[i]],
                key=lambda fc: -abs(fc.contribution),
            )[:TOP_K]
            out.append(
                BundleScore(
                    [
                        self._model_score("sepsis_diagnosis", float(p_diag[i]), diag_top[i]),
                        self._model_score("deterioration", float(p_det[i]), det_top[i]),
                        self._model_score("combined", float(comb[i]), combined_top),
                    ]
                )
            )
        return out

    def _model_score(self, name: ModelName, p: float, top: list[FeatureContribution]) -> ModelScore:
        return model_score(self._meta(name), name, p, top)

    def _explain_diagnosis(self, feats: np.ndarray) -> list[list[FeatureContribution]]:
        contrib, _ = tree_contributions(self.tree_table, feats)
        order = np.argsort(-np.abs(contrib), axis=1)[:, :TOP_K]
        out = []
        for i in range(len(feats)):
            row = []
            for j in order[i]:
                if contrib[i, j] == 0.0:
                    continue
                v = float(feats[i, j])
                row.append(
                    FeatureContribution(
                        feature=FEATURE_NAMES[j],
                        value=None if np.isnan(v) else v,
                        contribution=float(contrib[i, j]),
                    )
                )
            out.append(row)
        return out

    def _explain_deterioration(
        self,
        windows: Sequence[np.ndarray],
        seqs: np.ndarray,
        p_det: np.ndarray,
        buckets: Sequence[int] | None,
    ) -> list[list[FeatureContribution]]:
        idx = {c: i for i, c in enumerate(DYNAMIC_CODES)}
        names = list(OCCLUSION_GROUPS)
        avail = seqs[:, -1, N_DYNAMIC : 2 * N_DYNAMIC] > 0.5  # anything in the window, per code
        pairs: list[tuple[int, int]] = []
        for g, name in enumerate(names):
            cols = [idx[c] for c in OCCLUSION_GROUPS[name]]
            for i in np.nonzero(avail[:, cols].any(1))[0].tolist():
                pairs.append((i, g))
        if not pairs:
            return [[] for _ in windows]
        occluded = seqs[[i for i, _ in pairs]].copy()
        for k, (_, g) in enumerate(pairs):
            cols = [idx[c] for c in OCCLUSION_GROUPS[names[g]]]
            occluded[k][:, cols] = 0.0
            occluded[k][:, [N_DYNAMIC + c for c in cols]] = 0.0
        p_occ = self.deterioration_probability(occluded, buckets)
        delta = _logit(p_det[[i for i, _ in pairs]]) - _logit(p_occ)
        per_patient: list[list[tuple[float, str, float | None]]] = [[] for _ in windows]
        for k, (i, g) in enumerate(pairs):
            name = names[g]
            value = None
            if len(OCCLUSION_GROUPS[name]) == 1:
                col = np.asarray(windows[i], dtype=np.float32)[-48:, idx[name]]
                seen = col[~np.isnan(col)]
                value = float(seen[-1]) if len(seen) else None
            per_patient[i].append((float(delta[k]), name, value))
        return [
            [
                FeatureContribution(feature=n, value=v, contribution=d)
                for d, n, v in sorted(rows, key=lambda r: -abs(r[0]))[:TOP_K]
            ]
            for rows in per_patient
        ]


def _scaled(fc: FeatureContribution, factor: float) -> FeatureContribution:
    return FeatureContribution(feature=fc.feature, value=fc.value, contribution=float(fc.contribution * factor))


def load_bundle(
    artifacts_dir: str | Path | None = None,
    *,
    intra_op_threads: int | None = None,
    prefer_gpu: bool = True,
) -> ModelBundle:
    """Open the models pinned in the manifest after checking every file's sha256."""
    from vigil.models.session import create_session

    d = Path(artifacts_dir) if artifacts_dir else ARTIFACTS_DIR
    manifest = load_manifest(d)
    verify_artifacts(manifest, d)
    if list(manifest["feature_names"]) != FEATURE_NAMES:
        raise ArtifactIntegrityError("manifest feature list differs from models.features.FEATURE_NAMES")
    if list(manifest["sequence_channels"]) != SEQUENCE_CHANNELS:
        raise ArtifactIntegrityError("manifest sequence channels differ from models.features")
    models = manifest["models"]
    with np.load(d / models["sepsis_diagnosis"]["contributions_file"]) as z:
        table = {k: z[k] for k in z.files}
    return ModelBundle(
        manifest=manifest,
        diagnosis_session=create_session(
            d / models["sepsis_diagnosis"]["file"], intra_op_threads=intra_op_threads, prefer_gpu=prefer_gpu
        ),
        deterioration_session=create_session(
            d / models["deterioration"]["file"], intra_op_threads=intra_op_threads, prefer_gpu=prefer_gpu
        ),
        tree_table=table,
        artifacts_dir=d,
    )
