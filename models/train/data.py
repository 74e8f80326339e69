"""Set A loading, labels, targets and grouped folds for training."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vigil.models.hour_zero import first_measured_row
from vigil.models.offline import list_psv, read_psv, rule_scores
from vigil.models.train.v1_features import N_FEATURES, stay_features

DEFAULT_DATA = Path(os.environ.get("VIGIL_DATA_DIR", Path.home() / ".cache/vigil/data/training_setA"))
CACHE_DIR = Path(os.environ.get("VIGIL_CACHE_DIR", Path.home() / ".cache/vigil"))
DETERIORATION_HORIZON_H = 12
# what ``load_cohort`` calls to read a stay: ``offline.read_psv`` / ``rule_scores`` and the rules' code
COHORT_SOURCES = ("vigil.models.offline", "vigil.models.early_warning", "vigil.models.window")


def source_file(module: str) -> Path | None:
    """The source file of a Vigil module, found without importing it (None: no such module, such as
    a name imported from a module rather than a module)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "vigil":
        return None
    spec = importlib.util.find_spec(".".join(parts[:2]))  # vigil.models, vigil.schemas: where they are
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts[2:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def vigil_imports(module: str) -> set[str]:
    """The Vigil modules ``module`` imports anywhere in its source (inside functions too)."""
    path = source_file(module)
    assert path is not None, module
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vigil":
            out.add(node.module)
            # ``from vigil.models import early_warning`` imports a module
            out |= {f"{node.module}.{a.name}" for a in node.names if source_file(f"{node.module}.{a.name}")}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "vigil"}
    return {m for m in out if source_file(m) is not None}


def source_digest(roots: Iterable[str], follow: bool = True) -> str:
    """sha256 of the source of the modules ``roots`` and (``follow``) every Vigil module they import,
    directly or not: what a cache of their results must be keyed by, so an edit to any of them
    computes the cache again instead of serving what the old code computed."""
    todo, seen = list(roots), set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            if follow:
                todo += vigil_imports(module)
    h = hashlib.sha256()
    for module in sorted(seen):
        path = source_file(module)
        assert path is not None, f"{module}: no such Vigil module"
        h.update(module.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass
class Cohort:
    matrix: np.ndarray  # [N, V] float32, all hours of all stays
    labels: np.ndarray  # [N] int8 SepsisLabel
    lengths: np.ndarray  # [P]
    age: np.ndarray  # [P]
    gender: np.ndarray  # [P]
    names: np.ndarray  # [P]
    rules: dict[str, np.ndarray]  # NEWS2/qSOFA/SIRS totals per row
    unit: np.ndarray | None = None  # [P] 1 = Unit1 (medical ICU), 2 = Unit2 (surgical ICU), 0 = unknown
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def fingerprint(self) -> str:
        """sha256 of what shapes every hour's features: the recorded hours (as shifted, for a shifted
        copy: its kind, share and seed are in them), the stays' lengths and statics. Caches of a
        cohort's features are keyed by it, never by its name or size alone."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for a in (self.matrix, self.lengths, self.age, self.gender):
                arr = np.ascontiguousarray(a)
                h.update(f"{arr.dtype.str}{arr.shape}".encode())
                h.update(arr.data)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    @property
    def offsets(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.lengths)]

    def stay(self, p: int) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
        o = self.offsets
        return (
            self.matrix[o[p] : o[p + 1]],
            {"Age": float(self.age[p]), "Gender": float(self.gender[p])},
            self.labels[o[p] : o[p + 1]],
        )

    def septic_stays(self) -> np.ndarray:
        """[P] bool: the stay has a SepsisLabel hour."""
        o = self.offsets
        return np.array([self.labels[o[p] : o[p + 1]].any() for p in range(len(self.lengths))])

    def patient_of_row(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    def hour_of_row(self) -> np.ndarray:
        return np.concatenate([np.arange(n) for n in self.lengths])


def cached_hour_block(  # type: ignore[no-untyped-def]
    path: Path, c: Cohort, width: int, stay_rows: Callable[[int], np.ndarray], what: str, log=print
) -> np.ndarray:
    """A [hours, width] float32 block of every hour of ``c``, memory-mapped from ``path`` (its name
    completed by the cohort's ``fingerprint``, so other hours never read it); when the file is absent,
    computed stay by stay (``stay_rows(p)``: the rows of stay ``p``) and saved."""
    path = path.with_name(f"{path.stem}-{c.fingerprint()[:12]}{path.suffix}")
    if path.exists():
        return np.load(path, mmap_mode="r")
    t0 = time.perf_counter()
    out = np.empty((int(c.lengths.sum()), width), np.float32)
    o = c.offsets
    for p in range(len(c.lengths)):
        out[o[p] : o[p + 1]] = stay_rows(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    log(f"{what}: {out.shape} in {time.perf_counter() - t0:.0f}s")
    return np.load(path, mmap_mode="r")


def cohort_key(data_dir: Path) -> str:
    """What ``load_cohort``'s cache is keyed by: every .psv file's name, size and modification time,
    and the source of the code that reads them (``COHORT_SOURCES``, and this module); a folder of the
    same name with other files, or an edit to the reader, reads the stays again."""
    h = hashlib.sha256()
    for path in list_psv(data_dir):
        st = path.stat()
        h.update(f"{path.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(source_digest([*COHORT_SOURCES, __name__], follow=False).encode())
    h.update(source_digest(COHORT_SOURCES[1:]).encode())  # the rules' code and what it imports
    return h.hexdigest()[:12]


def load_cohort(data_dir: Path = DEFAULT_DATA, log=print) -> Cohort:  # type: ignore[no-untyped-def]
    cache = CACHE_DIR / f"cohort-v2-{data_dir.name}-{cohort_key(data_dir)}.npz"
    if cache.exists():
        d = np.load(cache)
        rules = {k[5:]: d[k] for k in d.files if k.startswith("rule_")}
        return Cohort(d["matrix"], d["labels"], d["lengths"], d["age"], d["gender"], d["names"], rules, d["unit"])
    t0 = time.perf_counter()
    mats, labs, lens, ages, genders, names, units = [], [], [], [], [], [], []
    rules: dict[str, list[np.ndarray]] = {}
    for path in list_psv(data_dir):
        m, s, lab = read_psv(path)
        assert lab is not None
        mats.append(m)
        labs.append(lab)
        lens.append(len(m))
        ages.append(s["Age"])
        genders.append(s["Gender"])
        names.append(path.stem)
        units.append(1 if s["Unit1"] == 1 else 2 if s["Unit2"] == 1 else 0)
        for k, v in rule_scores(m).items():
            rules.setdefault(k, []).append(v.astype(np.int8))
    if not rules:
        raise RuntimeError("models.early_warning is not importable: NEWS2/qSOFA/SIRS baselines need it")
    c = Cohort(
        np.concatenate(mats),
        np.concatenate(labs),
        np.array(lens),
        np.array(ages, dtype=np.float32),
        np.array(genders, dtype=np.float32),
        np.array(names),
        {k: np.concatenate(v) for k, v in rules.items()},
        np.array(units, dtype=np.int8),
    )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        matrix=c.matrix,
        labels=c.labels,
        lengths=c.lengths,
        age=c.age,
        gender=c.gender,
        names=c.names,
        unit=c.unit,
        **{f"rule_{k}": v for k, v in c.rules.items()},
    )
    log(f"read {len(lens)} stays in {time.perf_counter() - t0:.0f}s (cached at {cache})")
    return c


def all_features(c: Cohort) -> np.ndarray:
    x = np.empty((len(c.matrix), N_FEATURES), dtype=np.float32)
    o = c.offsets
    for p in range(len(c.lengths)):
        m, s, _ = c.stay(p)
        x[o[p] : o[p + 1]] = stay_features(m, s)
    return x


def deterioration_target(c: Cohort) -> tuple[np.ndarray, np.ndarray]:
    """(target, eligible) per row.

    Target: sepsis onset within the next 12 h, i.e. t_sepsis - 12 <= t < t_sepsis with
    t_sepsis = first SepsisLabel hour + 6 (challenge definition). Eligible: hours before onset
    (non-septic stays: every hour); hours at or after onset are not part of this model's task.
    """
    y = np.zeros(len(c.labels), dtype=np.int8)
    eligible = np.ones(len(c.labels), dtype=bool)
    o = c.offsets
    for p in range(len(c.lengths)):
        lab = c.labels[o[p] : o[p + 1]]
        if lab.any():
            t_sepsis = int(np.argmax(lab)) + 6
            t = np.arange(len(lab))
            y[o[p] : o[p + 1]] = (t >= t_sepsis - DETERIORATION_HORIZON_H) & (t < t_sepsis)
            eligible[o[p] : o[p + 1]] = t < t_sepsis
    return y, eligible


def grouped_folds(c: Cohort, k: int, seed: int) -> np.ndarray:
    """Fold per patient, stratified by whether the stay is ever septic (grouped: a patient's rows
    never straddle folds)."""
    rng = np.random.default_rng(seed)
    septic = c.septic_stays()
    fold = np.empty(len(c.lengths), dtype=np.int64)
    for group in (np.nonzero(septic)[0], np.nonzero(~septic)[0]):
        perm = rng.permutation(group)
        fold[perm] = np.arange(len(perm)) % k
    return fold


def from_first_measurement(c: Cohort) -> tuple[Cohort, dict[str, int]]:
    """The cohort as a hospital feed shows it (``models.hour_zero``): each stay from its first
    measured row on, so that row is hour 0 (``icu_hours`` 0) as in the stream's window; a stay with no
    measured row is left out. Labels and the rules' rows go with their hours: a SepsisLabel hour
    before the first measurement is left out too (counted), and with it that stay's onset moves
    later by the hours left out before it. Returns the cohort and what was left out."""
    o = c.offsets
    starts = np.array([first_measured_row(c.matrix[o[p] : o[p + 1]]) for p in range(len(c.lengths))])
    keep = np.nonzero(starts < c.lengths)[0]
    rows = np.concatenate([np.arange(o[p] + starts[p], o[p + 1]) for p in keep])
    dropped = np.ones(len(c.labels), dtype=bool)
    dropped[rows] = False
    trimmed = _take(c, keep, rows, c.lengths[keep] - starts[keep])
    left_out = {
        "stays_without_measurement": int(len(c.lengths) - len(keep)),
        "stays_trimmed": int((starts[keep] > 0).sum()),
        "hours_left_out": int(dropped.sum()),
        "septic_hours_left_out": int(c.labels[dropped].sum()),
    }
    return trimmed, left_out


def load_cohort_anchored(anchor: str, data_dir: Path = DEFAULT_DATA, log=print) -> Cohort:  # type: ignore[no-untyped-def]
    """Set A with each stay's hours from where a bundle's training counted them (its manifest's
    ``hour_zero``: ``first-measurement`` since 2.7, ``first-row`` before): the tools that rebuild or
    study one bundle's figures read the hours it was trained on."""
    c = load_cohort(data_dir, log=log)
    return from_first_measurement(c)[0] if anchor == "first-measurement" else c


def subsample(c: Cohort, n: int, seed: int) -> Cohort:
    """A seeded random subset of ``n`` stays (quick runs)."""
    keep = np.sort(np.random.default_rng(seed).choice(len(c.lengths), n, replace=False))
    o = c.offsets
    rows = np.concatenate([np.arange(o[p], o[p + 1]) for p in keep])
    return _take(c, keep, rows, c.lengths[keep])


def _take(c: Cohort, keep: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> Cohort:
    """The stays ``keep`` of ``c`` with their hours ``rows`` (``lengths`` of them per stay)."""
    return Cohort(
        c.matrix[rows],
        c.labels[rows],
        lengths,
        c.age[keep],
        c.gender[keep],
        c.names[keep],
        {k: v[rows] for k, v in c.rules.items()},
        None if c.unit is None else c.unit[keep],
    )
