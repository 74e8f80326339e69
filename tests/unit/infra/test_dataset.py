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


def set_a_archive(folder: Path, n: int) -> Path:
    """A set-A .tar.gz as the data folder holds it: training_setA/ with ``n`` stays."""
    import tarfile

    src = folder / "src" / "training_setA"
    for i in range(n):
        stay(src, f"p{i:06d}.psv", sepsis=i % 2 == 0)
    archive = folder / "data" / "training_setA.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="training_setA")
    return archive


def test_an_unpack_stopped_halfway_leaves_no_partial_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the first unpack of the archive: no part of the set is left where the next run
    would take it for the cache; that run unpacks every stay."""
    import tarfile

    archive = set_a_archive(tmp_path, 6)
    home = tmp_path / "home"

    def stopped(self: tarfile.TarFile, path: Path, **kwargs: object) -> None:
        for member in self.getmembers()[:3]:  # the folder and two stays, then Ctrl-C
            self.extract(member, path, filter="data")
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", stopped)
    with pytest.raises(KeyboardInterrupt):
        resolve_dataset(archive.parent, home, tmp_path / "no-sample")
    monkeypatch.undo()
    assert not list((home / "data").iterdir())  # neither the set nor its unpacking folder
    source = resolve_dataset(archive.parent, home, tmp_path / "no-sample")
    assert source.kind == "archive" and source.stays == 6
    assert resolve_dataset(archive.parent, home, tmp_path / "no-sample").kind == "cache"


def test_what_a_killed_unpack_left_is_removed_and_the_set_unpacked_again(tmp_path: Path) -> None:
    archive = set_a_archive(tmp_path, 3)
    home = tmp_path / "home"
    leftover = home / "data" / ".training_setA.unpacking-x1y2"
    stay(leftover / "training_setA", "p000000.psv", sepsis=True)  # a kill -9 halfway
    source = resolve_dataset(archive.parent, home, tmp_path / "no-sample")
    assert source.stays == 3 and not leftover.exists()
    assert sorted(p.name for p in (home / "data").iterdir()) == ["training_setA"]


def test_a_fetch_stopped_halfway_keeps_no_partial_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vigil data fetch` unpacks whole too: a write that fails on the second stay leaves no set (the
    demo then falls back to the sample, and says so), and the set fetched before is kept until the
    new one is complete."""
    import shutil

    members = {f"training_setA/p{i:06d}.psv": HEADER for i in range(4)}
    root = mirror(tmp_path, members)
    home = tmp_path / "home"
    real, calls = shutil.copyfileobj, []

    def full_disk(src, dst, *args):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst, *args)

    monkeypatch.setattr(shutil, "copyfileobj", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fetch_sets(["A"], home, root.as_uri())
    assert not (home / "data" / "training_setA").exists()
    assert [p.name for p in (home / "data").iterdir()] == ["training_setA.zip"]
    monkeypatch.setattr(shutil, "copyfileobj", real)
    assert fetch_sets(["A"], home, root.as_uri()) == {"A": 4}
    calls.clear()
    monkeypatch.setattr(shutil, "copyfileobj", full_disk)
    with pytest.raises(OSError):
        fetch_sets(["A"], home, root.as_uri())
    assert len(list((home / "data" / "training_setA").glob("*.psv"))) == 4  # the earlier set, whole


def test_a_sample_larger_than_the_folder_says_it_is_short(tmp_path: Path) -> None:
    """`data sample --n 100` from 5 stays wrote 5 and said nothing: the line and the summary say so."""
    import json

    import typer
    from typer.testing import CliRunner

    from vigil.cli.data import register

    for i in range(5):
        stay(tmp_path / "src", f"p{i:06d}.psv", sepsis=i < 2)
    (tmp_path / "src" / "folder.psv").mkdir()  # named like a stay, and none
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(
        app, ["data", "sample", "--from", str(tmp_path / "src"), "--out", str(tmp_path / "s"), "--n", "100", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert "only 5 of the 100 stays asked for" in " ".join(res.output.split())
    summary = json.loads(res.output.strip().split("\n")[-1])
    assert summary["stays"] == 5 and summary["requested"] == 100 and summary["septic"] == 2


def test_two_first_unpacks_at_once_install_one_whole_set(tmp_path: Path) -> None:
    """A second unpack that starts while the first writes waits for it, and keeps the set it installed:
    each removed the other's folder as a leftover, and a part of the set was installed."""
    import threading

    from vigil.infra.dataset import unpack_whole

    target = tmp_path / "training_setA"
    writing, finish = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(work: Path) -> Path:
        calls.append("slow")
        (work / "set").mkdir()
        for i in range(5):
            (work / "set" / f"p{i}.psv").write_text("HR|SepsisLabel\n80|0\n")
        writing.set()
        finish.wait(5)
        for i in range(5, 10):
            (work / "set" / f"p{i}.psv").write_text("HR|SepsisLabel\n80|0\n")
        return work / "set"

    def second(work: Path) -> Path:
        calls.append("second")
        return slow(work)

    has_psv = lambda folder: any(folder.glob("*.psv"))  # noqa: E731
    first = threading.Thread(target=unpack_whole, args=(target, slow, has_psv))
    first.start()
    assert writing.wait(5)
    other = threading.Thread(target=unpack_whole, args=(target, second, has_psv))
    other.start()
    other.join(0.3)
    assert other.is_alive()  # waits on the first
    finish.set()
    first.join(5)
    other.join(5)
    assert calls == ["slow"] and len(list(target.glob("*.psv"))) == 10


def test_a_sample_carries_its_licence_attribution_and_checksums(tmp_path: Path) -> None:
    """An extract of an ODbL database travels with its notice and licence: `vigil data sample` wrote
    the stays alone."""
    import hashlib

    from vigil.infra.dataset import write_sample

    out = tmp_path / "s"
    chosen = write_sample(SAMPLE_DIR, out, n=4)
    assert (out / "LICENSE.txt").read_bytes() == (SAMPLE_DIR / "LICENSE.txt").read_bytes()
    readme = (out / "README.md").read_text()
    assert "ODbL" in readme and "doi:10.13026/v64v-d857" in readme and "--n 4" in readme
    sums = parse_sha256sums((out / "SHA256SUMS.txt").read_text())
    assert sums == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in chosen}


def test_a_folder_that_holds_a_sample_is_refused(tmp_path: Path) -> None:
    """A second draw into the same folder was added to the first: the summary said 10 stays, the folder
    held 20, SHA256SUMS vouched for all 20 and the README named the first seed."""
    import json

    import typer
    from typer.testing import CliRunner

    from vigil.cli.data import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "s"
    draw = ["data", "sample", "--from", str(SAMPLE_DIR), "--out", str(out), "--n", "4", "--json"]
    assert CliRunner().invoke(app, [*draw, "--seed", "1"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = CliRunner().invoke(app, [*draw, "--seed", "2"])
    assert isinstance(refused.exception, UserError)
    assert str(refused.exception) == (
        f"--out {out} already holds a sample (4 .psv files): empty it (rm {out}/*.psv) or give another --out"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    for stay_file in out.glob("*.psv"):  # emptied as the line says: the new draw, and its own notice
        stay_file.unlink()
    again = CliRunner().invoke(app, [*draw, "--seed", "2"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.strip().splitlines()[-1])["stays"] == len(list(out.glob("*.psv"))) == 4
    assert "--seed 2" in (out / "README.md").read_text()
    assert len(parse_sha256sums((out / "SHA256SUMS.txt").read_text())) == 4


def test_the_shipped_samples_own_readme_is_kept(tmp_path: Path) -> None:
    """Drawn again into its emptied folder (how its README says it was drawn), the shipped sample keeps
    the README that says more than the notice."""
    from vigil.infra.dataset import write_sample

    out = tmp_path / "physionet2019-sample"
    out.mkdir()
    (out / "README.md").write_bytes((SAMPLE_DIR / "README.md").read_bytes())
    write_sample(SAMPLE_DIR, out, n=4)
    assert (out / "README.md").read_bytes() == (SAMPLE_DIR / "README.md").read_bytes()
