"""The training caches (``~/.cache/vigil``): a cohort's stays and its feature matrices are keyed by
what shapes them (the files read, the hours themselves, the source of the code that computes them),
so a changed input computes them again instead of reading what the old one left."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vigil.models.shift import Shift
from vigil.models.train import cohort_features, data
from vigil.models.train.data import Cohort
from vigil.schemas.codes import DYNAMIC_CODES

SAMPLE = Path(__file__).parents[3] / "data" / "physionet2019-sample"


def _cohort(seed: int = 0) -> Cohort:
    rng = np.random.default_rng(seed)
    lengths = np.array([30, 20, 25])
    matrix = rng.normal(80, 5, (int(lengths.sum()), len(DYNAMIC_CODES))).astype(np.float32)
    matrix[rng.random(matrix.shape) < 0.6] = np.nan
    n = len(lengths)
    return Cohort(matrix, np.zeros(len(matrix), np.int8), lengths, np.full(n, 60.0), np.ones(n), np.arange(n), {})


def test_every_module_that_shapes_the_features_is_in_their_key() -> None:
    """stay_inputs' own imports, at any depth, and the shifts that make the thinned copies."""
    seen, todo = set(), list(cohort_features.FEATURE_SOURCES)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += data.vigil_imports(module)
    short = {m.rsplit(".", 1)[-1] for m in seen}
    assert {"stepping", "stay_features", "aggregates", "standardize", "branchfree", "shift", "window", "codes"} <= short


def test_an_edit_to_an_imported_module_changes_the_source_digest(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The digest follows imports: editing a module two imports away from the root changes it."""
    (tmp_path / "root.py").write_text("from vigil.models.middle import f\n")
    (tmp_path / "middle.py").write_text("def f():\n    from vigil.models.leaf import g\n")
    (tmp_path / "leaf.py").write_text("G = 1\n")

    def source_file(module: str) -> Path | None:
        path = tmp_path / f"{module.rsplit('.', 1)[-1]}.py"
        return path if module.startswith("vigil.models.") and path.exists() else None

    monkeypatch.setattr(data, "source_file", source_file)
    before = data.source_digest(["vigil.models.root"])
    assert data.vigil_imports("vigil.models.root") == {"vigil.models.middle"}
    (tmp_path / "leaf.py").write_text("G = 2\n")
    assert data.source_digest(["vigil.models.root"]) != before
    assert data.source_digest(["vigil.models.root"], follow=False) == data.source_digest(
        ["vigil.models.root"], follow=False
    )


def test_the_feature_key_changes_with_the_sources_the_hours_and_the_shift(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    c = _cohort()
    key = cohort_features.feature_key(c, "setA")
    assert key == cohort_features.feature_key(_cohort(), "setA")  # the same hours: the same key
    # one value of one hour, the same stays and hours otherwise (the old key: tag + counts)
    other = _cohort()
    other.matrix[5, 0] = 99.0
    assert cohort_features.feature_key(other, "setA") != key
    # a shifted copy under the same tag: other parameters or another seed are other hours
    how = Shift("labs", keep=0.5)
    thinned = [
        cohort_features.shifted(c, how, 1),
        cohort_features.shifted(c, Shift("labs", keep=0.2), 1),
        cohort_features.shifted(c, how, 2),
    ]
    keys = {cohort_features.feature_key(t, "labs-s1") for t in thinned}
    assert len(keys) == 3 and key not in keys
    # an edit to the code that computes them (here: the digest of standardize.py's source)
    real = data.source_file

    def edited(module: str) -> Path | None:
        path = real(module)
        if module == "vigil.models.standardize" and path is not None:
            copy = tmp_path / "standardize.py"
            copy.write_bytes(path.read_bytes() + b"\n# edited\n")
            return copy
        return path

    monkeypatch.setattr(data, "source_file", edited)
    assert cohort_features.feature_key(c, "setA") != key


@pytest.mark.skipif(not SAMPLE.exists(), reason="the shipped sample of set A")
def test_the_cohort_cache_is_keyed_by_the_files_not_the_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "training_setA"
    shutil.copytree(SAMPLE, folder)
    files = sorted(folder.glob("*.psv"))
    key = data.cohort_key(folder)
    assert data.cohort_key(folder) == key
    files[0].write_text(files[0].read_text() + files[0].read_text().splitlines()[-1] + "\n")  # one more hour
    grown = data.cohort_key(folder)
    assert grown != key
    files[1].unlink()  # a stay less
    assert data.cohort_key(folder) not in (key, grown)
