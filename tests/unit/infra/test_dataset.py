"""Where the PhysioNet data come from: the shipped sample, the checked download, the order of sources."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from vigil.infra.dataset import SAMPLE_DIR, fetch_sets, parse_sha256sums, resolve_dataset, sample_stays, septic
from vigil.schemas.errors import UserError

HEADER = "HR|O2Sat|Temp|SBP|MAP|DBP|Resp|ICULOS|SepsisLabel\n"


def stay(folder: Path, name: str, sepsis: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(HEADER + "80|97|37|120|80|60|16|1|0\n" + f"90|95|38|110|75|55|20|2|{int(sepsis)}\n")
    return path


def mirror(tmp_path: Path, members: dict[str, str], digest: str | None = None) -> Path:
    """A PhysioNet-shaped folder: training/training_setA.zip and SHA256SUMS.txt (served as file://)."""
    root = tmp_path / "mirror"
    (root / "training").mkdir(parents=True)
    archive = root / "training" / "training_setA.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    real = hashlib.sha256(archive.read_bytes()).hexdigest()
    (root / "SHA256SUMS.txt").write_text(f"{digest or real} training/training_setA.zip\n{'0' * 64} LICENSE.txt\n")
    return root


def test_the_shipped_sample_is_small_balanced_and_licensed() -> None:
    files = sorted(SAMPLE_DIR.glob("*.psv"))
    assert len(files) == 100 and sum(map(septic, files)) == 50
    assert sum(f.stat().st_size for f in files) < 3_000_000
    assert (SAMPLE_DIR / "LICENSE.txt").read_text().startswith("## ODC Open Database License")
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert "doi:10.13026/v64v-d857" in readme and "vigil data sample" in readme
    sums = parse_sha256sums((SAMPLE_DIR / "SHA256SUMS.txt").read_text())
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == sums


def test_sample_is_reproducible_and_keeps_the_septic_share(tmp_path) -> None:
    for i in range(40):
        stay(tmp_path / "src", f"p{i:06d}.psv", sepsis=i % 4 == 0)
    first = sample_stays(tmp_path / "src", n=10, seed=3)
    assert first == sample_stays(tmp_path / "src", n=10, seed=3)
    assert len(first) == 10 and sum(map(septic, first)) == 5
    assert first != sample_stays(tmp_path / "src", n=10, seed=4)


def test_sources_in_order_configured_cache_sample(tmp_path) -> None:
    sample = tmp_path / "sample"
    stay(sample, "p000001.psv", True)
    home = tmp_path / "home"
    assert resolve_dataset(tmp_path / "none", home, sample).kind == "sample"
    stay(home / "data" / "training_setA", "p000002.psv", False)
    assert resolve_dataset(tmp_path / "none", home, sample).kind == "cache"
    stay(tmp_path / "mine", "p000003.psv", False)
    assert resolve_dataset(tmp_path / "mine", home, sample).kind == "configured"
    with pytest.raises(UserError, match="vigil data fetch"):
        resolve_dataset(tmp_path / "none", tmp_path / "empty-home", tmp_path / "no-sample")


def test_fetch_checks_the_sha256_and_unpacks_flat(tmp_path) -> None:
    members = {"training_setA/p000001.psv": HEADER, "training_setA/p000002.psv": HEADER, "../evil.psv": HEADER}
    root = mirror(tmp_path, members)
    home = tmp_path / "home"
    assert fetch_sets(["A"], home, root.as_uri()) == {"A": 3}
    unpacked = home / "data" / "training_setA"
    assert sorted(p.name for p in unpacked.glob("*.psv")) == ["evil.psv", "p000001.psv", "p000002.psv"]
    assert not (home / "data" / "evil.psv").exists()  # nothing leaves the target folder


def test_fetch_refuses_a_file_whose_sha256_differs(tmp_path) -> None:
    root = mirror(tmp_path, {"training_setA/p000001.psv": HEADER}, digest="f" * 64)
    home = tmp_path / "home"
    with pytest.raises(UserError, match="does not match PhysioNet's"):
        fetch_sets(["A"], home, root.as_uri())
    assert not list((home / "data").glob("*.zip*"))  # no partial or unchecked file is kept
