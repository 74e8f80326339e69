"""Feature matrices of a whole cohort through the stepping core's offline form, cached on disk
(``~/.cache/vigil/features-*.npy``): parsing and scanning set A once costs minutes on 2 cores."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from vigil.models.shift import Shift
from vigil.models.stay_features import N_SEQUENCE_INPUTS, N_TREE_FEATURES, SEQUENCE_INPUTS, TREE_FEATURES
from vigil.models.stepping import stay_inputs
from vigil.models.train.data import CACHE_DIR, Cohort, source_digest

# ("labs" | "vitals" | "panels", seed) or ("labs_every", hours); None = as recorded
from vigil.models.train.shifts import Copy

# the thinned-labs shift: each hour's lab draw kept with this probability, one copy per seed
LAB_KEEP = 0.1
THIN_SEEDS = (1, 2)
# the thinned-vitals shift: each hour's vital-sign charting kept with this probability (a unit
# charting every second hour), one copy per seed
VITALS_KEEP = 0.5
VITALS_SEEDS = (1, 2)
# the scheduled-labs shift (protocol 5): at most one lab draw per this many hours, deterministic
LAB_SCHEDULES = (24,)
# the ordering-habits shift (protocol 7): each optional lab panel ordered for a stay with this
# probability (``models.shift.omit_panels``), one copy per seed
PANELS_KEEP = 0.5
PANEL_SEEDS = (1,)


# what computes the cached features: the stepping core's offline form (``stepping.stay_inputs``) and
# the shifts that make the copies (``models.shift``), with every Vigil module they import
FEATURE_SOURCES = ("vigil.models.stepping", "vigil.models.shift")


def feature_key(c: Cohort, tag: str) -> str:
    """What a cohort's cached feature matrices are keyed by: the source of the code that computes them
    (``FEATURE_SOURCES`` and everything they import: stay_features, aggregates, standardize,
    branchfree, ...), the feature names, and the cohort's hours themselves (``Cohort.fingerprint``: a
    shifted copy's hours carry its shift's kind, share or schedule and seed); ``tag`` only names the file."""
    names = "|".join(TREE_FEATURES + SEQUENCE_INPUTS)
    parts = (source_digest(FEATURE_SOURCES), names, tag, c.fingerprint())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def shifted(c: Cohort, how: Shift, seed: int = 0) -> Cohort:
    """The cohort as a shifted hospital would record it, stay by stay (``models.shift.Shift``: random
    thinning draws from one generator over the stays in order, seeded; a schedule draws nothing)."""
    rng = np.random.default_rng(seed)
    o = c.offsets
    matrix = np.concatenate([how.apply(c.matrix[o[p] : o[p + 1]], rng) for p in range(len(c.lengths))])
    return Cohort(matrix, c.labels, c.lengths, c.age, c.gender, c.names, c.rules, c.unit)


def cohort_matrices(c: Cohort, tag: str, log=print) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(tree features [N, F], sequence inputs [N, S]) for every hour of every stay (memory-mapped cache)."""
    key = feature_key(c, tag)
    paths = [CACHE_DIR / f"features-{tag}-{key}-{kind}.npy" for kind in ("tree", "seq")]
    if all(p.exists() for p in paths):
        return np.load(paths[0], mmap_mode="r"), np.load(paths[1], mmap_mode="r")
    t0 = time.perf_counter()
    n = int(c.lengths.sum())
    x = np.empty((n, N_TREE_FEATURES), np.float32)
    s = np.empty((n, N_SEQUENCE_INPUTS), np.float32)
    o = c.offsets
    for p in range(len(c.lengths)):
        m, static, _ = c.stay(p)
        inputs = stay_inputs(m, static)
        x[o[p] : o[p + 1]] = inputs.tree_features(np.arange(len(m)), static)
        s[o[p] : o[p + 1]] = inputs.sequence
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for path, arr in zip(paths, (x, s), strict=True):
        np.save(path, arr)
    log(f"features {tag}: {x.shape} + {s.shape} in {time.perf_counter() - t0:.0f}s")
    return x, s


class Matrices:
    """Feature matrices of set A and its thinned copies (``copy``: None = as recorded), built on
    first use and cached on disk."""

    def __init__(self, c: Cohort, lab_keep: float = LAB_KEEP, vitals_keep: float = VITALS_KEEP) -> None:
        self.c, self.keep = c, {"labs": lab_keep, "vitals": vitals_keep, "panels": PANELS_KEEP}
        self._thin: dict[Copy, Cohort] = {}

    def cohort(self, copy: Copy | None) -> Cohort:
        if copy is None:
            return self.c
        if copy not in self._thin:
            kind, seed = copy  # for "labs_every" the "seed" is the schedule's hours
            how = Shift("labs", every_h=seed) if kind == "labs_every" else Shift(kind, keep=self.keep[kind])
            self._thin[copy] = shifted(self.c, how, seed)
        return self._thin[copy]

    def tag(self, copy: Copy | None) -> str:
        if copy is None:
            return "setA"
        if copy[0] == "labs_every":
            return f"labs-every{copy[1]}h"
        return f"{copy[0]}{self.keep[copy[0]]}-s{copy[1]}"

    def tree(self, copy: Copy | None) -> np.ndarray:
        return cohort_matrices(self.cohort(copy), self.tag(copy))[0]

    def sequence(self, copy: Copy | None) -> np.ndarray:
        return cohort_matrices(self.cohort(copy), self.tag(copy))[1]

    def reference(self, copy: Copy | None) -> np.ndarray:
        from vigil.models.train import reference_lgbm

        return reference_lgbm.cohort_features(self.cohort(copy), self.tag(copy))

    def v1(self, copy: Copy | None) -> np.ndarray:
        """The v1 bundle's 48-hour window features (``models.train.v1_features``): a second yardstick with a
        figure on the unseen hospital (issue 12)."""
        from vigil.models.train.data import all_features
        from vigil.models.train.v1_features import FEATURE_NAMES

        c = self.cohort(copy)
        parts = ("v1", source_digest(["vigil.models.train.v1_features"]), "|".join(FEATURE_NAMES), c.fingerprint())
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
        path = CACHE_DIR / f"features-v1-{self.tag(copy)}-{key}.npy"
        if not path.exists():
            np.save(path, all_features(c))
        return np.load(path, mmap_mode="r")
