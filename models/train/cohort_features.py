"""Feature matrices of a whole cohort through the stepping core's offline form, cached on disk
(``~/.cache/vigil/features-*.npy``): parsing and scanning set A once costs minutes on 2 cores."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from vigil.models.shift import thin_labs
from vigil.models.stay_features import N_SEQUENCE_INPUTS, N_TREE_FEATURES, SEQUENCE_INPUTS, TREE_FEATURES
from vigil.models.stepping import stay_inputs
from vigil.models.train.data import CACHE_DIR, Cohort


def _key(tag: str) -> str:
    src = (Path(__file__).resolve().parents[1] / "stay_features.py").read_bytes()
    src += (Path(__file__).resolve().parents[1] / "aggregates.py").read_bytes()
    names = "|".join(TREE_FEATURES + SEQUENCE_INPUTS).encode()
    return hashlib.sha256(src + names + tag.encode()).hexdigest()[:12]


def thinned(c: Cohort, keep: float, seed: int) -> Cohort:
    """The cohort with each hour's lab draw kept with probability ``keep`` (seeded, per stay)."""
    rng = np.random.default_rng(seed)
    o = c.offsets
    matrix = np.concatenate([thin_labs(c.matrix[o[p] : o[p + 1]], keep, rng) for p in range(len(c.lengths))])
    return Cohort(matrix, c.labels, c.lengths, c.age, c.gender, c.names, c.rules, c.unit)


def cohort_matrices(c: Cohort, tag: str, log=print) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(tree features [N, F], sequence inputs [N, S]) for every hour of every stay (memory-mapped cache)."""
    key = _key(f"{tag}-{len(c.lengths)}-{int(c.lengths.sum())}")
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
