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

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

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
from vigil.schemas.errors import VigilError
from vigil.schemas.scores import FeatureContribution, ModelScore

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
DEFAULT_BUCKETS: tuple[int, ...] = (1, 8, 32, 64, 256)
TOP_K = 5
ModelName = Literal["sepsis_diagnosis", "deterioration", "combined"]

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


class ArtifactIntegrityError(VigilError):
    """A model file does not match the sha256 pinned in the manifest."""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def bucket_size(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n (n larger than every bucket is split by the caller)."""
    for b in sorted(buckets):
        if b >= n:
            return b
    return n


def run_padded(session: Any, name: str, x: np.ndarray, buckets: Sequence[int] | None) -> list[np.ndarray]:
    """Run ``session`` on ``x`` in chunks padded to bucket sizes; returns every output, unpadded."""
    if not buckets:
        return list(session.run(None, {name: x}))
    top = max(buckets)
    outs: list[list[np.ndarray]] = []
    for start in range(0, max(len(x), 1), top):
        chunk = x[start : start + top]
        size = bucket_size(len(chunk), buckets)
        if size > len(chunk):
            pad = np.zeros((size - len(chunk), *x.shape[1:]), dtype=x.dtype)
            chunk = np.concatenate([chunk, pad])
        res = session.run(None, {name: chunk})
        outs.append([r[: min(top, len(x) - start)] for r in res])
    return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]


def tree_contributions(table: Mapping[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Saabas path contributions of a LightGBM ensemble: (contrib [B, F], bias [B]) in log-odds.

    LightGBM's numerical decision: NaN is treated as 0 unless the split's missing type is NaN;
    missing-type Zero/NaN values go to the default child, others go left when x <= threshold.
    """
    n_trees, n_max = table["feature"].shape
    feat, thr = table["feature"].ravel(), table["threshold"].ravel()
    left, right = table["left"].ravel(), table["right"].ravel()
    value, leaf = table["value"].ravel(), table["leaf"].ravel()
    default_left, missing = table["default_left"].ravel(), table["missing"].ravel()
    b, n_feat = x.shape
    base = (np.arange(n_trees) * n_max)[None, :]
    node = np.broadcast_to(base, (b, n_trees)).copy()  # flat node index per (row, tree)
    rows = np.arange(b)[:, None] * n_feat
    xd = x.astype(np.float64).ravel()
    keys: list[np.ndarray] = []
    deltas: list[np.ndarray] = []
    for _ in range(int(table["max_depth"])):
        active = ~leaf[node]
        if not active.any():
            break
        node_a = node[active]
        f = feat[node_a]
        v = xd[(np.broadcast_to(rows, node.shape)[active]) + f]
        miss_t = missing[node_a]
        is_nan = np.isnan(v)
        v0 = np.where(is_nan & (miss_t != 2), 0.0, v)
        use_default = ((miss_t == 1) & (np.abs(v0) < 1e-35)) | ((miss_t == 2) & is_nan)
        go_left = np.where(use_default, default_left[node_a], v0 <= thr[node_a])
        child = np.where(go_left, left[node_a], right[node_a]) + (node_a // n_max) * n_max
        keys.append(np.broadcast_to(rows, node.shape)[active] + f)
        deltas.append(value[child] - value[node_a])
        node[active] = child
    contrib = np.bincount(
        np.concatenate(keys) if keys else np.zeros(0, np.int64),
        weights=np.concatenate(deltas) if deltas else None,
        minlength=b * n_feat,
    ).astype(np.float64)
    value = table["value"]
    bias = np.full(b, value[:, 0].sum())
    return contrib.reshape(b, n_feat), bias


@dataclass(frozen=True)
class BundleScore:
    """One patient's scores at one hour."""

    scores: list[ModelScore]

    def by_model(self, name: str) -> ModelScore:
        return next(s for s in self.scores if s.model == name)


@dataclass(frozen=True)
class StayRisk:
    """Per-hour probabilities for a whole stay (offline prediction)."""

    diagnosis: np.ndarray
    deterioration: np.ndarray
    combined: np.ndarray


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
        meta = self._meta(name)
        thr = float(meta["threshold"])
        p = float(min(max(p, 0.0), 1.0))
        return ModelScore(
            model=name,
            version=str(meta["version"]),
            probability=p,
            threshold=thr,
            positive=p >= thr,
            top_features=top,
        )

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


def load_manifest(artifacts_dir: str | Path | None = None) -> dict[str, Any]:
    d = Path(artifacts_dir) if artifacts_dir else ARTIFACTS_DIR
    return json.loads((d / "manifest.json").read_text())


def verify_artifacts(manifest: Mapping[str, Any], artifacts_dir: Path) -> None:
    for name, meta in manifest["files"].items():
        path = artifacts_dir / name
        if not path.exists():
            raise ArtifactIntegrityError(f"{name}: missing from {artifacts_dir}")
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise ArtifactIntegrityError(f"{name}: sha256 {digest[:12]}... != manifest {meta['sha256'][:12]}...")


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
