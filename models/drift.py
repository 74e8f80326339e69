"""Input drift: does a ward's live input still look like what the models were trained on?

Two kinds of input are compared with a training reference stored beside the artifacts
(``drift_reference.json``, built from the training cohort by ``DriftReference.build``):

- measurement habits: per variable, the share of patient-hours in which it was measured (a hospital
  that draws fewer labs moves the models' hours-since and rate inputs, issue 12);
- values: the distribution of the tree model's most important features, in the reference's decile
  bins plus one bin for "missing".

Each is scored with the population stability index, PSI = sum (q - p) ln(q / p) over bins (reference
shares p, live shares q; Siddiqi N., Credit Risk Scorecards, Wiley 2006, ch. 8; Yurdakul B., Statistical
properties of the population stability index, 2018). The usual convention calls > 0.25 a significant
shift (``PSI_DRIFTED``), but a ward is a small, correlated sample: a stay's hours share one patient
(BUN_max_stay barely moves within a stay), so the sample is about as large as the number of patients,
and wards of 20 set-A stays reach a largest PSI of 0.6-1.5 over the ~50 inputs. The reference
therefore carries a null table (``null_max_psi``): the 99th percentile of the largest PSI of wards
drawn from the training stays themselves, by number of patients and by hours in the window. Both
matter: fewer hours per patient read each patient's values more noisily, so a ward of 20 set-A stays
reaches a larger PSI by chance over 200 hours than over 2,000 (a table by patients alone, drawn over
2,000 hours, called 15 % of steady 20-patient wards drifted at 200 hours, 28 % of 40-patient ones). A
ward has drifted when its largest PSI exceeds both 0.25 and that percentile, interpolated at its
number of distinct patients and its hours; it is judged only from the smallest ward the table was
drawn for (``DriftReference.gate``: below it the table would be read outside its range, too low).

The live unit is a closed patient-hour (its row is final), the same unit as the reference's rows.
Pure: the worker feeds closed hours in and reads reports out (``agents.drift``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from vigil.models.stay_features import UNSEEN_IN_TRAINING

REFERENCE_FILE: Final[str] = "training_reference.json"
PSI_DRIFTED: Final[float] = 0.25
N_BINS: Final[int] = 10  # deciles of the reference, plus a "missing" bin
_FLOOR: Final[float] = 1e-4  # empty bins: PSI is undefined at 0, floor both shares (common practice)


def psi(expected: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """PSI along the last axis between reference shares ``expected`` and live counts or shares."""
    p = np.maximum(np.asarray(expected, np.float64), _FLOOR)
    q_raw = np.asarray(observed, np.float64)
    total = q_raw.sum(-1, keepdims=True)
    q = np.maximum(np.divide(q_raw, np.where(total > 0, total, 1.0)), _FLOOR)
    return ((q - p) * np.log(q / p)).sum(-1)  # type: ignore[no-any-return]


def bin_values(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index per value: i for edges[i-1] < v <= edges[i] (0..len(edges)), len(edges)+1 for NaN."""
    idx = np.searchsorted(edges, values, side="left")
    return np.where(np.isnan(values), len(edges) + 1, idx)


def ward_psi(
    reference: DriftReference, measured_counts: np.ndarray, hours: int, bin_counts: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(PSI per variable's measured share [V], PSI per feature's bins [K]) of ``hours`` patient-hours."""
    q = measured_counts / max(hours, 1)
    p = reference.measured_share
    rate = psi(np.stack([p, 1 - p], -1), np.stack([q, 1 - q], -1))
    value = np.array([float(psi(f.shares, c)) for f, c in zip(reference.features, bin_counts, strict=True)])
    return rate, value


@dataclass(frozen=True)
class FeatureReference:
    name: str
    edges: np.ndarray  # inner bin edges (reference deciles)
    shares: np.ndarray  # [len(edges) + 2]: one per bin, the last = missing


def _shares_from_deciles(deciles: np.ndarray, missing: float) -> tuple[np.ndarray, np.ndarray]:
    """Bins and shares from deciles alone (a reference written without bin shares): each decile
    interval holds a tenth of the measured values; tied deciles merge their intervals."""
    edges = np.unique(deciles[1:-1])
    cdf = np.array([np.flatnonzero(deciles[1:-1] <= e).max() + 1 for e in edges], np.float64) / 10.0
    if len(edges) and deciles[-1] == edges[-1]:
        cdf[-1] = 1.0  # the top decile is a point mass at the maximum
    inner = np.diff(np.r_[0.0, cdf, 1.0]) * (1.0 - missing)
    return edges, np.r_[inner, missing]


@dataclass(frozen=True)
class DriftReference:
    """The training cohort's input profile (``training_reference.json`` beside the model artifacts:
    measurement rate per variable, deciles of the top features with the share of each bin)."""

    source: str
    patient_hours: int
    variables: list[str]  # measured-share variables, in this order
    measured_share: np.ndarray  # [V]
    features: list[FeatureReference]
    # 99th percentile of the largest PSI of training wards [len(null_hours), len(null_patients)]: by
    # hours in the window (rows) and number of distinct patients (columns)
    null_patients: np.ndarray = field(default_factory=lambda: np.zeros(0))
    null_q99: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    null_hours: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def threshold(self, patients: int, hours: int) -> float:
        """The largest PSI a ward of ``patients`` distinct patients over ``hours`` patient-hours may
        show and still look like training: the table interpolated linearly on both (its percentiles
        fall, convex, with each: a straight line between two of them lies above, the safe side).
        Past the table's largest ward the largest's value (safe too: larger wards allow less); below
        its smallest the ward is not judged (``gate``)."""
        if not len(self.null_patients):
            return PSI_DRIFTED
        by_hours = [float(np.interp(patients, self.null_patients, row)) for row in self.null_q99]
        return max(PSI_DRIFTED, float(np.interp(hours, self.null_hours, by_hours)))

    def gate(self, min_hours: int, min_patients: int) -> tuple[int, int]:
        """(hours, patients) a ward's window must hold before it is judged: the settings' gate, raised
        to the smallest ward the null table was drawn for. Read below it, the table's smallest ward
        stands in for a smaller one, whose chance PSI is larger: healthy wards called drifted (a
        reference drawn over 2,000-hour windows only judges a ward once it holds 2,000 hours)."""
        if not len(self.null_patients):
            return min_hours, min_patients
        return max(min_hours, int(self.null_hours.min())), max(min_patients, int(self.null_patients.min()))

    @classmethod
    def build(
        cls,
        measured: np.ndarray,
        values: np.ndarray,
        variables: Sequence[str],
        feature_names: Sequence[str],
        source: str,
    ) -> DriftReference:
        """From the cohort's patient-hours: ``measured`` [N, V] bool, ``values`` [N, K] feature values."""
        feats = []
        for k, name in enumerate(feature_names):
            col = values[:, k].astype(np.float64)
            seen = col[~np.isnan(col)]
            deciles = np.quantile(seen, np.linspace(0, 1, N_BINS + 1)) if len(seen) else np.zeros(0)
            edges = np.unique(deciles[1:-1])
            counts = np.bincount(bin_values(col, edges), minlength=len(edges) + 2)
            feats.append(FeatureReference(name, edges, counts / max(len(col), 1)))
        return cls(source, len(measured), list(variables), measured.mean(0), feats)

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self.source,
                "patient_hours": self.patient_hours,
                "measurement_rate_per_hour": dict(
                    zip(self.variables, np.round(self.measured_share, 6).tolist(), strict=True)
                ),
                "top_feature_quantiles": {
                    f.name: {
                        "missing_share": round(float(f.shares[-1]), 6),
                        "edges": np.round(f.edges, 6).tolist(),
                        "shares": np.round(f.shares, 6).tolist(),
                    }
                    for f in self.features
                },
                **(
                    {
                        "null_max_psi": {
                            "patients": self.null_patients.tolist(),
                            "hours": self.null_hours.tolist(),
                            "q99": self.null_q99.tolist(),
                        }
                    }
                    if len(self.null_patients)
                    else {}
                ),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> DriftReference:
        """The reference as training writes it (``models.train.reference``); bin shares when stored,
        else derived from the deciles."""
        data: dict[str, Any] = json.loads(text)
        rates = data["measurement_rate_per_hour"]
        feats = []
        for name, f in data["top_feature_quantiles"].items():
            if "shares" in f:
                edges, shares = np.asarray(f["edges"], np.float64), np.asarray(f["shares"], np.float64)
            elif f.get("deciles"):
                edges, shares = _shares_from_deciles(np.asarray(f["deciles"], np.float64), float(f["missing_share"]))
            else:
                continue  # never measured in training: no distribution to compare with
            feats.append(FeatureReference(name, edges, shares))
        hours = int(data.get("patient_hours", 0))
        null_hours, q99 = _null_rows(data.get("null_max_psi", {}))
        return cls(
            data.get("source", ""),
            hours,
            list(rates),
            np.asarray(list(rates.values()), np.float64),
            feats,
            np.asarray(data.get("null_max_psi", {}).get("patients", []), np.float64),
            q99,
            null_hours,
        )

    @classmethod
    def load(cls, path: Path) -> DriftReference:
        return cls.from_json(path.read_text())

    def problems(self) -> list[str]:
        """What would make the drift check wrong with this reference (empty: usable): shares that are
        not shares, bins that are not ordered, a null table that is not one. The manifest pins the
        file's bytes, not its sense; `vigil bundle check` reports these and a worker turns drift off."""
        found = []
        share = self.measured_share
        if len(share) != len(self.variables) or len(set(self.variables)) != len(self.variables):
            found.append("measurement rates: not one per variable")
        elif not np.all((share >= 0) & (share <= 1)):  # NaN fails too
            found.append("measurement rates: a rate outside [0, 1]")
        for f in self.features:
            if not np.all(np.isfinite(f.edges)) or np.any(np.diff(f.edges) <= 0):
                found.append(f"{f.name}: bin edges not finite and increasing")
            elif len(f.shares) != len(f.edges) + 2:
                found.append(f"{f.name}: {len(f.shares)} bin shares for {len(f.edges) + 2} bins")
            elif not np.all(f.shares >= 0) or abs(float(f.shares.sum()) - 1.0) > 1e-3:
                found.append(f"{f.name}: bin shares do not sum to 1 (missing included)")
        n, h, q = self.null_patients, self.null_hours, self.null_q99
        if len(n) and (q.ndim != 2 or q.shape != (len(h), len(n))):
            found.append("null table: percentiles not one per window's hours and ward size")
        elif len(n) and (np.any(np.diff(n) <= 0) or not np.all(n > 0)):
            found.append("null table: ward sizes not increasing")
        elif len(n) and (np.any(np.diff(h) <= 0) or not np.all(h > 0)):
            found.append("null table: window hours not increasing")
        elif len(n) and (
            not np.all(np.isfinite(q) & (q > 0)) or np.any(np.diff(q, axis=0) > 0) or np.any(np.diff(q, axis=1) > 0)
        ):
            found.append("null table: percentiles not positive and falling with ward size and hours")
        return found


def _null_rows(null: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(hours, q99 [hours, patients]) of a stored null table. A table written by patients alone (one
    row, drawn over ``window_hours``, 2,000 before they were stored) is that one row: wards are then
    judged from that many hours on (``DriftReference.gate``)."""
    q99 = np.asarray(null.get("q99", []), np.float64)
    if "hours" in null:
        return np.asarray(null["hours"], np.float64), q99
    if not len(q99):
        return np.zeros(0), np.zeros((0, 0))
    return np.asarray([float(null.get("window_hours", 2000))]), q99.reshape(1, -1)


NULL_PATIENTS: Final[tuple[int, ...]] = (10, 20, 40, 80, 160, 320)
# from the smallest window a ward is judged on (``DriftSettings.min_hours``) to the default window
NULL_HOURS: Final[tuple[int, ...]] = (200, 500, 1000, 2000)


def ward_hours(lengths: np.ndarray, hours: int) -> np.ndarray:
    """Hours taken from each stay of a drawn ward so that they add up to ``hours`` (at least one
    each), shared as evenly as the stays' ``lengths`` allow: a short stay gives all it has and the
    longer ones make up for it. Stays too short for ``hours`` give everything: the ward then holds
    fewer hours, its chance PSI is larger and the percentile higher, the safe side."""
    take = np.zeros(len(lengths), np.int64)
    left = max(int(hours), len(lengths))
    order = np.argsort(lengths, kind="stable")
    for i, stay in enumerate(order.tolist()):
        take[stay] = max(1, min(int(lengths[stay]), left // (len(order) - i)))
        left -= int(take[stay])
    return take


def null_max_psi(
    reference: DriftReference,
    measured: np.ndarray,
    values: np.ndarray,
    offsets: np.ndarray,
    hours: Sequence[int] = NULL_HOURS,
    draws: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """99th percentile of the largest PSI of wards drawn from the training stays themselves, for each
    window's ``hours`` (rows) and ward size in ``NULL_PATIENTS`` (columns): each draw takes that many
    stays and that many hours shared between them (``ward_hours``: a contiguous run of each stay at a
    random place). ``measured`` [N, V] and ``values`` [N, K] are every hour of the cohort, ``offsets``
    the stays' row offsets."""
    rng = np.random.default_rng(seed)
    bins = np.stack([bin_values(values[:, k], f.edges) for k, f in enumerate(reference.features)], -1)
    lengths = np.diff(offsets)
    table = np.zeros((len(hours), len(NULL_PATIENTS)))
    for i, window in enumerate(hours):
        for j, n in enumerate(NULL_PATIENTS):
            maxes = []
            for _ in range(draws):
                # a cohort smaller than the ward (a smoke training) draws stays again: repeats make the
                # ward more alike within, so its PSI larger and the threshold looser, never tighter
                stays = rng.choice(len(lengths), n, replace=n > len(lengths))
                take = ward_hours(lengths[stays], window)
                start = offsets[stays] + (rng.random(n) * (lengths[stays] - take + 1)).astype(np.int64)
                rows = np.concatenate([np.arange(a, a + t) for a, t in zip(start.tolist(), take.tolist(), strict=True)])
                counts = [
                    np.bincount(bins[rows, k], minlength=len(f.edges) + 2) for k, f in enumerate(reference.features)
                ]
                rate, value = ward_psi(reference, measured[rows].sum(0), len(rows), counts)
                maxes.append(max(rate.max(initial=0.0), value.max(initial=0.0)))
            table[i, j] = float(np.quantile(maxes, 0.99))
    # a smaller ward (fewer patients or hours) never allows a smaller PSI than a larger one: where the
    # draws' noise says otherwise, the larger ward's percentile (the higher of the two) stands for both
    return np.maximum.accumulate(np.maximum.accumulate(table[::-1, ::-1], 0), 1)[::-1, ::-1]


@dataclass(frozen=True)
class WardDriftReport:
    ward: str
    patient_hours: int  # in the sliding window
    patients: int  # distinct patients among them
    threshold: float  # drifted when max_psi exceeds it (``DriftReference.threshold``: patients, hours)
    rate_psi: dict[str, float]  # per variable: measured / not measured, live vs reference
    value_psi: dict[str, float]  # per feature: decile bins + missing
    max_psi: float
    drifted: bool
    top: list[tuple[str, float]] = field(default_factory=list)  # the inputs that moved most


class WardWindow:
    """The last ``size`` closed patient-hours of one ward, as bin indices, with running counts."""

    def __init__(self, reference: DriftReference, size: int) -> None:
        self.size = size
        self.n_vars = len(reference.variables)
        self.n_bins = [len(f.edges) + 2 for f in reference.features]
        self._measured = np.zeros((size, self.n_vars), bool)
        self._bins = np.zeros((size, len(reference.features)), np.int16)
        self._patients = np.zeros(size, np.int64)  # a per-process key of each hour's patient
        self._rate_counts = np.zeros(self.n_vars, np.int64)
        self._bin_counts = [np.zeros(n, np.int64) for n in self.n_bins]
        self.filled = 0
        self._next = 0

    def add(self, measured: np.ndarray, bins: np.ndarray, patients: np.ndarray) -> None:
        measured, bins, patients = measured[-self.size :], bins[-self.size :], patients[-self.size :]
        slots = (self._next + np.arange(len(measured))) % self.size  # distinct: at most `size` rows
        old = slots[slots < self.filled] if self.filled < self.size else slots  # hours leaving the window
        self._rate_counts -= self._measured[old].sum(0)
        self._rate_counts += measured.sum(0)
        for k, counts in enumerate(self._bin_counts):
            np.subtract.at(counts, self._bins[old, k], 1)
            np.add.at(counts, bins[:, k], 1)
        self._measured[slots], self._bins[slots], self._patients[slots] = measured, bins, patients
        self._next = int((self._next + len(measured)) % self.size)
        self.filled = min(self.filled + len(measured), self.size)

    def patients(self) -> int:
        return len(np.unique(self._patients[: self.filled]))

    def report(self, ward: str, reference: DriftReference, top_n: int = 3) -> WardDriftReport:
        rate, value = ward_psi(reference, self._rate_counts, self.filled, self._bin_counts)
        rate_psi = dict(zip(reference.variables, np.round(rate, 4).tolist(), strict=True))
        value_psi = dict(zip([f.name for f in reference.features], np.round(value, 4).tolist(), strict=True))
        ranked = sorted(
            [(f"{k} measured", v) for k, v in rate_psi.items()] + list(value_psi.items()), key=lambda kv: -kv[1]
        )
        max_psi = ranked[0][1] if ranked else 0.0
        patients = self.patients()
        threshold = reference.threshold(patients, self.filled)
        return WardDriftReport(
            ward, self.filled, patients, threshold, rate_psi, value_psi, max_psi, max_psi > threshold, ranked[:top_n]
        )


class DriftMonitor:
    """Per-ward sliding windows of closed patient-hours compared with the training reference."""

    def __init__(
        self,
        reference: DriftReference,
        variable_index: Sequence[int],
        feature_index: Sequence[int],
        window_hours: int = 2000,
        min_hours: int = 200,
        min_patients: int = 10,
    ) -> None:
        self.reference = reference
        self._var_idx = np.asarray(variable_index, np.int64)  # columns of the hourly rows
        self._feat_idx = np.asarray(feature_index, np.int64)  # columns of the tree features
        self.window_hours = window_hours
        self.min_hours = min_hours
        self.min_patients = min_patients
        self.wards: dict[str, WardWindow] = {}

    @classmethod
    def for_inputs(
        cls, reference: DriftReference, row_codes: Sequence[str], feature_names: Sequence[str], **kw: int
    ) -> DriftMonitor:
        """Map the reference's variables and features onto the columns the stream computes. A variable
        no model reads, never measured in training (``stay_features.UNSEEN_IN_TRAINING``: EtCO2), is
        left out: its training rate of 0 made any ward charting capnography "drifted" for good, the
        alert firing for a channel no model sees and hiding a real drift behind it."""
        if kept := [i for i, v in enumerate(reference.variables) if v not in UNSEEN_IN_TRAINING]:
            reference = replace(
                reference,
                variables=[reference.variables[i] for i in kept],
                measured_share=np.asarray(reference.measured_share)[kept],
            )
        rows = {c: i for i, c in enumerate(row_codes)}
        feats = {c: i for i, c in enumerate(feature_names)}
        missing = [v for v in reference.variables if v not in rows] + [
            f.name for f in reference.features if f.name not in feats
        ]
        if missing:
            raise ValueError(f"drift reference names inputs the models do not have: {missing[:5]}")
        return cls(reference, [rows[v] for v in reference.variables], [feats[f.name] for f in reference.features], **kw)

    def observe(self, wards: Sequence[str], rows: np.ndarray, features: np.ndarray, patients: np.ndarray) -> None:
        """Closed patient-hours: their ward, hourly rows [n, N_VARS], tree features [n, F] and a key of
        their patient (any integer that is the same for a patient's hours, e.g. a hash)."""
        if not len(wards):
            return
        measured = ~np.isnan(rows[:, self._var_idx])
        values = features[:, self._feat_idx].astype(np.float64)
        bins = np.stack(
            [bin_values(values[:, k], f.edges) for k, f in enumerate(self.reference.features)], axis=-1
        ).astype(np.int16)
        names = np.asarray(wards, dtype=object)
        for ward in dict.fromkeys(wards):
            sel = names == ward
            window = self.wards.setdefault(ward, WardWindow(self.reference, self.window_hours))
            window.add(measured[sel], bins[sel], np.asarray(patients, np.int64)[sel])

    def forget(self, ward: str) -> None:
        """Drop ``ward``'s window (its patients left this worker, or the ward closed): a ward seen again
        starts an empty one rather than mixing its old hours in."""
        self.wards.pop(ward, None)

    def reports(self, wards: Sequence[str] | None = None) -> list[WardDriftReport]:
        """A report per ward with at least ``min_hours`` closed patient-hours and ``min_patients``
        distinct patients in its window."""
        chosen = self.wards if wards is None else {w: self.wards[w] for w in wards if w in self.wards}
        return [
            w.report(name, self.reference)
            for name, w in chosen.items()
            if w.filled >= self.min_hours and w.patients() >= self.min_patients
        ]
