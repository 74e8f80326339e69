"""Offline prediction and evaluation in the PhysioNet/CinC 2019 challenge layout.

One ``.psv`` per ICU stay in, one ``.psv`` per stay out (``PredictedProbability|PredictedLabel``),
scored with :mod:`models.utility` (the challenge's own normalized utility). Each stay is stepped
hour by hour through the stepping bundle (:mod:`models.stepping`), the same path the streaming
agents use, from its first measured row, hour 0 as a feed's stream counts it (``models.hour_zero``);
its rows before it are written 0.0 (no score, no alert).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.models.hour_zero import first_measured_row
from vigil.models.shift import Shift
from vigil.models.site_threshold import Site
from vigil.schemas.codes import DYNAMIC_CODES, plausible_range
from vigil.schemas.errors import UserError

if TYPE_CHECKING:
    from vigil.models.bundle import StayRisk

SeededShift = tuple[Shift, int]  # a shift and its seed (each stay's generator: [seed, stay index])

STATIC_COLUMNS = ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime")
LABEL_COLUMN = "SepsisLabel"

ProgressFn = Callable[[int, int], None]


class PsvFormatError(UserError):
    """A file that is not a challenge ``.psv`` (one line: which file, where, what a .psv holds)."""


@dataclass(frozen=True)
class PsvStay:
    """One challenge file as every offline path reads it (``read_stay``)."""

    matrix: np.ndarray  # float32 [T, len(DYNAMIC_CODES)]
    static: dict[str, float]
    labels: np.ndarray | None
    out_of_range: int  # values blanked: outside the range the stream's ingest accepts


def read_psv(path: str | Path) -> tuple[np.ndarray, dict[str, float], np.ndarray | None]:
    """Read one challenge file: (matrix float32 [T, len(DYNAMIC_CODES)], static, labels or None);
    ``read_stay`` without the count of values it blanked."""
    stay = read_stay(path)
    return stay.matrix, stay.static, stay.labels


def read_stay(path: str | Path) -> PsvStay:
    """Read one challenge file, with the values the stream would not take blanked.

    Static values are taken from the first row (they are constant within a stay in set A);
    a missing static value is NaN, and so is an empty field. A value outside its code's plausible
    range (``schemas.codes.plausible_range``, the one the stream's ingest checks:
    ``schemas.normalize``) is NaN too, and counted: the stream dead-letters it as ``out_of_range``, so
    `vigil predict`, `evaluate` and training (``models.train.data``, through this reader) see the
    rows the worker's window holds, not set A's 321 FiO2 values below 0.21 it never scores. Every
    range lies well within float32, so a value that float32 cannot hold (HR 1e39) is out of range,
    blanked before the cast. A file without the challenge's columns, with a row of another length, a
    value that is not a number, or an infinite one, is a ``PsvFormatError`` naming the file and the
    place: never a stay scored from misread columns.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's export starts with a BOM
    except UnicodeDecodeError:
        raise PsvFormatError(f"{path.name}: not a text file: {_PSV_HINT}") from None
    lines = [line.strip() for line in text.strip().splitlines()]
    header = lines[0].split("|") if lines else []
    col = {name: i for i, name in enumerate(header)}
    missing = [c for c in DYNAMIC_CODES if c not in col]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise PsvFormatError(f"{path.name}: no column {', '.join(missing[:3])}{more} in its header: {_PSV_HINT}")
    if len(lines) < 2:
        raise PsvFormatError(f"{path.name}: a header and no hour: a stay has at least one row: {_PSV_HINT}")
    values = _psv_values(path.name, lines[1:], len(header))
    dynamic, out_of_range = _within_ranges(values[:, [col[c] for c in DYNAMIC_CODES]], DYNAMIC_CODES)
    matrix = dynamic.astype(np.float32)
    static: dict[str, float] = {}
    for name in STATIC_COLUMNS:
        static[name] = float(values[0, col[name]]) if name in col else float("nan")
    first, static_out = _within_ranges(np.array([list(static.values())]), STATIC_COLUMNS)
    static = dict(zip(STATIC_COLUMNS, first[0].tolist(), strict=True))
    labels = None
    if LABEL_COLUMN in col:
        raw = values[:, col[LABEL_COLUMN]]
        if not np.isin(raw, (0.0, 1.0)).all():
            raise PsvFormatError(f"{path.name}: {LABEL_COLUMN} must be 0 or 1 on every row: {_PSV_HINT}")
        labels = raw.astype(np.int8)
    return PsvStay(matrix, static, labels, out_of_range + static_out)


def _within_ranges(values: np.ndarray, codes: Sequence[str]) -> tuple[np.ndarray, int]:
    """``values`` (float64, one column per code) with every value outside its code's plausible
    range made NaN, and how many were."""
    bounds = np.array([plausible_range(c) for c in codes], dtype=np.float64).reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        outside = (values < bounds[:, 0]) | (values > bounds[:, 1])  # NaN compares False: stays NaN
    return np.where(outside, np.nan, values), int(outside.sum())


_PSV_HINT = "a challenge .psv is a header of its columns (HR|O2Sat|...|ICULOS) and one row per hour, pipe-separated"


def _psv_values(name: str, rows: list[str], ncol: int, hint: str = "") -> np.ndarray:
    """The body as float64 [T, ncol]: one parse of the whole body (``vigil predict``'s speed), and
    only when that fails a row-by-row pass, which reads an empty field as NaN or says where the
    body is wrong."""
    hint = hint or _PSV_HINT
    if not rows:
        return np.zeros((0, ncol), np.float64)
    try:
        values = np.array("|".join(rows).split("|"), dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and all(row.count("|") == ncol - 1 for row in rows) and not np.isinf(values).any():
        return values.reshape(len(rows), ncol)
    out = np.empty((len(rows), ncol), np.float64)
    for n, row in enumerate(rows):
        fields = row.split("|")
        if len(fields) != ncol:
            raise PsvFormatError(f"{name}, line {n + 2}: {len(fields)} fields where the header has {ncol}: {hint}")
        for j, field in enumerate(fields):
            try:
                out[n, j] = float(field) if field.strip() else np.nan
            except ValueError:
                raise PsvFormatError(f"{name}, line {n + 2}: {field[:20]!r} is not a number: {hint}") from None
            if np.isinf(out[n, j]):
                raise PsvFormatError(f"{name}, line {n + 2}: {field[:20]!r} is not a finite value: {hint}")
    return out


def list_psv(data_dir: str | Path) -> list[Path]:
    """The stays' files in ``data_dir``: files named ``*.psv`` (a folder so named is no stay)."""
    return sorted(p for p in Path(data_dir).iterdir() if p.suffix == ".psv" and p.is_file())


def _chunks(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_predictions(path: Path, probability: np.ndarray, label: np.ndarray) -> None:
    rows = [f"{p:.6f}|{int(b)}" for p, b in zip(probability.tolist(), label.tolist(), strict=True)]
    path.write_text("PredictedProbability|PredictedLabel\n" + "".join(r + "\n" for r in rows))


def shifted_matrix(matrix: np.ndarray, shift: SeededShift | None, stay_index: int) -> np.ndarray:
    """The stay as a shifted hospital would record it (``models.shift``); seeded per stay, so the
    result does not depend on batching."""
    if shift is None:
        return matrix
    how, seed = shift
    return how.apply(matrix, np.random.default_rng([seed, stay_index]))


def stay_risks_measured(bundle: Any, matrices: Sequence[np.ndarray], stays: Sequence[PsvStay]) -> list[StayRisk]:
    """``bundle.stay_risks`` of each stay's hours from its first measurement (``matrices``), a stay
    without any measurement scored with no hour (a feed never sends it)."""
    from vigil.models.bundle import StayRisk

    scored = [i for i, m in enumerate(matrices) if len(m)]
    risks = bundle.stay_risks([matrices[i] for i in scored], [stays[i].static for i in scored])
    empty = StayRisk(*(np.zeros(0, np.float32) for _ in range(3)))
    out = [empty] * len(matrices)
    for i, risk in zip(scored, risks, strict=True):
        out[i] = risk
    return out


def from_file_start(risk: StayRisk, start: int, n_rows: int) -> StayRisk:
    """A stay's scores as its file's rows: the ``start`` rows before its first measurement
    (``models.hour_zero``), which no feed sends and the stream never scores, at 0.0, so no alert."""
    from vigil.models.bundle import StayRisk

    def pad(values: np.ndarray) -> np.ndarray:
        out = np.zeros(n_rows, dtype=values.dtype)
        out[start:] = values
        return out

    return StayRisk(pad(risk.diagnosis), pad(risk.deterioration), pad(risk.combined))


def measured_rows(matrix: np.ndarray, shift: SeededShift | None, stay_index: int) -> tuple[int, np.ndarray]:
    """(the stay's first measured row, its rows from there as a shifted hospital would record them):
    the hours `vigil predict` scores, and the rows `vigil evaluate`'s rules read, alike; thinned from
    hour 0 on (``shifted_matrix``), so the rows kept do not depend on how many empty rows a file
    starts with."""
    start = first_measured_row(matrix)
    return start, shifted_matrix(matrix[start:], shift, stay_index)


def _open_bundle(artifacts_dir: str | Path | None, site: Site | None = None) -> Any:
    """The stepping bundle in ``artifacts_dir``, or the one the stream serves when none is given
    (``models.stream_step.served_bundle_dir``), at the site's alert threshold. Its sequence graphs use
    every core; its trees one thread, as the worker's (``bundle.TREE_THREADS``: the same bits)."""
    from vigil.models.bundle import load_stepping_bundle, require_stepping_bundle
    from vigil.models.stream_step import load_served_bundle

    if artifacts_dir is None:
        return load_served_bundle(site=site)
    require_stepping_bundle(
        artifacts_dir, "", "point --artifacts at such a folder, or leave it out to use the bundle the stream serves"
    )
    return load_stepping_bundle(artifacts_dir).at_site(site)


def predict_dir(
    data_dir: str | Path,
    out_dir: str | Path,
    progress: ProgressFn | None = None,
    *,
    artifacts_dir: str | Path | None = None,
    chunk_patients: int = 256,
    shift: SeededShift | None = None,
    site: Site | None = None,
    on_stay: Callable[[Path, StayRisk], None] | None = None,
) -> dict[str, Any]:
    """Score every ``.psv`` in ``data_dir`` and write the challenge output format to ``out_dir``.

    Batched across patients: every hour of ``chunk_patients`` stays goes through the models in one
    call per model (the stepping bundle: one tree call and one one-step call per hour index). The
    probability is the combined risk, the label uses the site's alert threshold
    (``models.site_threshold``: the shipped one unless ``site`` gives a septic-stay prevalence, a mean
    risk or an alert-share ceiling, as ``VIGIL_SITE__*`` does for the worker). ``mean_risk`` in the
    summary is the combined risk averaged over every hour from a stay's first measurement (the hours
    the stream scores, ``models.hour_zero``; the rows before it are written 0.0): a site's
    ``VIGIL_SITE__MEAN_RISK`` when the stays are an export of its own (no labels needed). ``shift``:
    (``models.shift.Shift``, seed) scores the stays, from their first measurement as recorded (as
    training's shifted copies), as a hospital drawing fewer labs (``labs=0.1``, ``labs=every24h``)
    or charting vital signs less often (``vitals=0.5``) would record them. ``on_stay``: called with each stay's
    file and every score of its hours (``vigil replay`` keeps the deterioration score so).
    ``values_out_of_range``: the values read as missing, outside the ranges the stream's ingest
    accepts (``read_stay``).
    """
    started = time.perf_counter()
    bundle = _open_bundle(artifacts_dir, site)
    files = list_psv(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_rows = n_scored = n_alert_rows = out_of_range = 0
    risk_sum = 0.0
    done = 0
    for chunk in _chunks(files, chunk_patients):
        stays = [read_stay(p) for p in chunk]
        out_of_range += sum(s.out_of_range for s in stays)
        measured = [measured_rows(s.matrix, shift, done + i) for i, s in enumerate(stays)]
        starts, matrices = [a for a, _ in measured], [m for _, m in measured]
        risks = [
            from_file_start(risk, start, len(s.matrix))
            for risk, start, s in zip(stay_risks_measured(bundle, matrices, stays), starts, stays, strict=True)
        ]
        for path, risk, stay, start in zip(chunk, risks, stays, starts, strict=True):
            label = (risk.combined >= bundle.combined_threshold).astype(np.int8)
            write_predictions(out / path.name, risk.combined, label)
            if on_stay is not None:
                on_stay(path, risk)
            n_rows += len(label)
            n_scored += len(stay.matrix) - start
            risk_sum += float(risk.combined.sum())
            n_alert_rows += int(label.sum())
        done += len(chunk)
        if progress is not None:
            progress(done, len(files))
    seconds = time.perf_counter() - started
    return {
        "patients": len(files),
        "rows": n_rows,
        "alert_rows": n_alert_rows,
        "mean_risk": round(risk_sum / n_scored, 6) if n_scored else None,
        "values_out_of_range": out_of_range,
        "threshold": bundle.combined_threshold,
        "threshold_choice": bundle.alert_threshold.summary(),
        "model_version": bundle.version,
        "artifacts": str(bundle.artifacts_dir),
        "seconds": round(seconds, 2),
        "out": str(out),
    }


_PREDICTION_HINT = "a prediction .psv (`vigil predict` writes them) is PredictedProbability|PredictedLabel by hour"


def _read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise PsvFormatError(f"{path.name}: no predictions for this stay in {path.parent}: {_PREDICTION_HINT}")
    try:
        lines = [line.strip() for line in path.read_text().strip().splitlines()]
    except UnicodeDecodeError:
        raise PsvFormatError(f"{path.name}: not a text file: {_PREDICTION_HINT}") from None
    if not lines or lines[0].split("|") != ["PredictedProbability", "PredictedLabel"]:
        raise PsvFormatError(f"{path.name}: not a prediction file's header: {_PREDICTION_HINT}")
    values = _psv_values(path.name, lines[1:], 2, _PREDICTION_HINT)
    probability, label = values[:, 0], values[:, 1]
    if not ((probability >= 0.0) & (probability <= 1.0)).all():
        raise PsvFormatError(
            f"{path.name}: PredictedProbability must be between 0 and 1 on every row: {_PREDICTION_HINT}"
        )
    if not np.isin(label, (0.0, 1.0)).all():
        raise PsvFormatError(f"{path.name}: PredictedLabel must be 0 or 1 on every row: {_PREDICTION_HINT}")
    return probability, label.astype(np.int8)


def rule_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """NEWS2, qSOFA and SIRS totals per row, plus NEWS2's single-parameter-3 flag, from the newest
    value of each variable measured within the last ``RULE_MAX_AGE_H`` hours: the same "current
    observation set" the stream scores (``PatientWindow.current_values``).

    Uses :mod:`models.early_warning` (the one implementation of the rules).
    """
    from vigil.models import early_warning as ew
    from vigil.models.window import RULE_MAX_AGE_H

    filled = _ffill(np.asarray(matrix, dtype=np.float32), max_age=RULE_MAX_AGE_H)
    n = len(filled)
    out = {"NEWS2": np.zeros(n), "qSOFA": np.zeros(n), "SIRS": np.zeros(n), "NEWS2_single3": np.zeros(n)}
    for t, row in enumerate(filled):
        values = {c: float(v) for c, v in zip(DYNAMIC_CODES, row, strict=True) if not np.isnan(v)}
        obs = ew.observations_from_row(values)
        news2 = ew.news2(obs)
        out["NEWS2"][t] = news2.total
        out["NEWS2_single3"][t] = news2.single_parameter_3
        out["qSOFA"][t] = ew.qsofa(obs).total
        out["SIRS"][t] = ew.sirs(obs).total
    return out


def _ffill(matrix: np.ndarray, max_age: int | None = None) -> np.ndarray:
    """Forward fill each column; with ``max_age``, only from rows less than ``max_age`` hours back."""
    rows = np.arange(len(matrix))[:, None]
    idx = np.where(~np.isnan(matrix), rows, -1)
    idx = np.maximum.accumulate(idx, axis=0)
    filled = matrix[np.clip(idx, 0, None), np.arange(matrix.shape[1])[None, :]]
    stale = idx < 0 if max_age is None else (idx < 0) | (rows - idx >= max_age)
    filled[stale] = np.nan
    return filled


def evaluate_dir(
    data_dir: str | Path,
    pred_dir: str | Path,
    *,
    with_rules: bool = True,
    progress: ProgressFn | None = None,
    shift: SeededShift | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Official normalized utility, AUROC and AUPRC of ``pred_dir`` against the labels in ``data_dir``.

    With ``with_rules``, NEWS2 (>= 5), qSOFA (>= 2) and SIRS (>= 2) computed from the same rows are
    scored side by side (their totals as the continuous score for AUROC/AUPRC), and the alert
    agent's lifecycle is replayed over the model and NEWS2 (``alerting``: pages per patient-day,
    septic stays paged before onset, median lead time). ``shift`` must be the one the predictions
    were made with (the rules then see the rows they were made from: ``measured_rows``);
    ``threshold`` the one their labels were set at (``predict_dir``'s), which the replay's hysteresis
    needs (without it, it is read back from the labels: ``AlertReplay.summary``).
    """
    from vigil.models.alert_replay import AlertReplay
    from vigil.models.utility import auroc_auprc, normalized_utility

    started = time.perf_counter()
    files = list_psv(data_dir)
    labels: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    preds: list[np.ndarray] = []
    rules: dict[str, list[np.ndarray]] = {}
    replay = AlertReplay()
    out_of_range = 0
    for i, path in enumerate(files):
        stay = read_stay(path)
        out_of_range += stay.out_of_range
        start, rows = measured_rows(stay.matrix, shift, i)  # the rows vigil predict scored
        matrix, lab = np.concatenate([stay.matrix[:start], rows]), stay.labels
        if lab is None:
            raise PsvFormatError(f"{path.name}: no SepsisLabel column: `vigil evaluate` scores labelled stays")
        p, b = _read_predictions(Path(pred_dir) / path.name)
        if len(p) != len(lab):
            raise PsvFormatError(f"{path.name}: {len(p)} predictions for {len(lab)} hours: predict these stays again")
        labels.append(lab)
        probs.append(p)
        preds.append(b)
        if with_rules:
            stay_rules = rule_scores(matrix)
            for name, score in stay_rules.items():
                rules.setdefault(name, []).append(score)
            replay.add(lab, p, b, stay_rules["NEWS2"], stay_rules["NEWS2_single3"])
        if progress is not None and (i + 1) % 200 == 0:
            progress(i + 1, len(files))
    if progress is not None:
        progress(len(files), len(files))
    summary = _metrics(labels, probs, preds, auroc_auprc, normalized_utility)
    result: dict[str, Any] = {
        "patients": len(files),
        "rows": int(sum(len(x) for x in labels)),
        "values_out_of_range": out_of_range,
        "model": summary,
    }
    cutoffs = {"NEWS2": 5, "qSOFA": 2, "SIRS": 2}
    for name in cutoffs:
        if name not in rules:
            continue
        scores = rules[name]
        bins = [(s >= cutoffs[name]).astype(np.int8) for s in scores]
        result[name] = _metrics(labels, scores, bins, auroc_auprc, normalized_utility)
        result[name]["cutoff"] = cutoffs[name]
    if with_rules:
        result["alerting"] = replay.summary(threshold)
    if shift is not None:
        result["shift"] = {**shift[0].summary(), "seed": shift[1]}
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _metrics(
    labels: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    binary: Sequence[np.ndarray],
    auroc_auprc: Callable[..., tuple[float, float]],
    normalized_utility: Callable[..., float],
) -> dict[str, float | None]:
    """The figures of one score; AUROC and AUPRC None where undefined (no septic stay: no positive
    hour to rank), not the 0.0 a curve without positives reads."""
    y = np.concatenate(labels)
    s = np.concatenate(scores)
    auroc, auprc = auroc_auprc(y, s)
    hours = float(len(y))
    alerts = float(np.concatenate(binary).sum())
    return {
        "auroc": round(auroc, 4) if np.isfinite(auroc) else None,
        "auprc": round(auprc, 4) if np.isfinite(auprc) else None,
        "utility": round(normalized_utility(labels, binary), 4),
        "alert_hours_per_patient_day": round(24.0 * alerts / max(hours, 1.0), 3),
    }
