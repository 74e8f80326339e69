"""Where the PhysioNet/CinC 2019 data come from: a configured folder, the cache, the sample shipped in
the repository, or a download from PhysioNet checked against its published SHA-256 sums.

"Early Prediction of Sepsis from Clinical Data: the PhysioNet/Computing in Cardiology Challenge 2019",
v1.0.0, https://physionet.org/content/challenge-2019/1.0.0/ (Open Data Commons ODbL 1.0). The sample in
``data/physionet2019-sample/`` carries the license and the attribution beside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.models.offline import list_psv
from vigil.schemas.errors import UserError

PHYSIONET_2019 = "https://physionet.org/files/challenge-2019/1.0.0/"
PROJECT_PAGE = "https://physionet.org/content/challenge-2019/1.0.0/"
SETS = {"A": "training/training_setA.zip", "B": "training/training_setB.zip"}
# the sample of set A: data/physionet2019-sample in a clone or an editable install, vigil/data/ in a
# wheel (package data; the Docker image), so `vigil bundle check` and the demo find stays anywhere
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "physionet2019-sample"
CHUNK = 1 << 20


@dataclass(frozen=True)
class DataSource:
    path: Path
    kind: str  # "configured" | "cache" | "archive" | "sample"

    @property
    def stays(self) -> int:
        return sum(1 for _ in self.path.glob("*.psv"))


def _has_psv(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.psv"))


def resolve_dataset(data_dir: Path, cache: Path, sample_dir: Path = SAMPLE_DIR) -> DataSource:
    """The stays to replay: ``data_dir`` (its .psv files, or its set-A archive unpacked to the cache),
    the cache (``vigil data fetch``), else the sample shipped with the repository."""
    if _has_psv(data_dir):
        return DataSource(data_dir, "configured")
    target = cache / "data" / "training_setA"
    if _has_psv(target):
        return DataSource(target, "cache")
    archive = data_dir / "training_setA.tar.gz"
    if archive.is_file():
        unpack_whole(target, lambda work: _untar_set(archive, work, target.name), unless=_has_psv)
        return DataSource(target, "archive")
    if _has_psv(sample_dir):
        return DataSource(sample_dir, "sample")
    raise UserError(
        f"no PhysioNet 2019 stays in {data_dir} or {target}: run `vigil data fetch`, "
        "or set VIGIL_DATA_DIR to a folder of .psv files"
    )


def _untar_set(archive: Path, work: Path, name: str) -> Path:
    """Unpack the set's .tar.gz into ``work``: the folder ``name`` it holds (the set's stays)."""
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    if not (work / name).is_dir():
        raise UserError(
            f"{archive}: no folder {name}/ of stays in it: replace it with set A's archive, "
            "or set VIGIL_DATA_DIR to a folder of .psv files"
        )
    return work / name


def unpack_whole(target: Path, unpack: Callable[[Path], Path], unless: Callable[[Path], bool] | None = None) -> None:
    """``unpack`` into a sibling folder of ``target`` and give ``target`` the folder it returns only
    once that is complete: an unpack stopped halfway (Ctrl-C, a full disk, a kill) never leaves a
    part of a set where every later run would take it, silently, for the whole cache. What a killed
    unpack leaves behind is removed here, and the set unpacked again. One unpack at a time (a lock
    on the folder that holds ``target``): two first runs at once (a demo and the tests) each removed the other's
    folder as a leftover, and a part of the set was installed. ``unless(target)``, asked once the
    lock is held: the set another process installed meanwhile is kept, not unpacked again."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(target.parent, os.O_RDONLY)  # the folder itself: no lock file left beside the set
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when it closes (a killed process: by the kernel)
        if unless is not None and unless(target):
            return
        prefix = f".{target.name}.unpacking-"
        for leftover in target.parent.glob(prefix + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        try:
            done = unpack(work)
            if target.exists():  # a set fetched before, or a folder without stays: replaced as a whole
                shutil.rmtree(target)
            done.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        os.close(lock)


def ensure_dataset(data_dir: Path, cache: Path) -> Path:
    """A folder of .psv files (``resolve_dataset``'s path)."""
    return resolve_dataset(data_dir, cache).path


# --- the sample ----------------------------------------------------------------------------------


def septic(path: Path) -> bool:
    """SepsisLabel (the last column) is 1 at some hour. A file that is not a challenge .psv (not text,
    no SepsisLabel column) is a ``UserError`` naming it: a sample holds real stays only."""
    try:
        with path.open() as f:
            header = next(f, "")
            if not header.rstrip().endswith("|SepsisLabel"):
                raise UserError(f"{path}: not a challenge .psv (its header ends in SepsisLabel): remove it from --from")
            return any(line.rstrip().endswith("|1") for line in f)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file, not a challenge .psv: remove it from --from") from None


def sample_stays(source: Path, n: int = 100, septic_share: float = 0.5, seed: int = 2019) -> list[Path]:
    """A reproducible sample: files in a seeded random order, the first septic and non-septic ones
    until each share is full (the same source and seed always give the same files)."""
    files = list_psv(source)  # a folder named *.psv is no stay
    if not files:
        raise UserError(f"no .psv files in {source}")
    want_septic = round(n * septic_share)
    picked: dict[bool, list[Path]] = {True: [], False: []}
    for i in np.random.default_rng(seed).permutation(len(files)):
        path = files[int(i)]
        bucket = septic(path)
        if len(picked[bucket]) < (want_septic if bucket else n - want_septic):
            picked[bucket].append(path)
        if len(picked[True]) >= want_septic and len(picked[False]) >= n - want_septic:
            break
    return sorted(picked[True] + picked[False])


def write_sample(source: Path, out: Path, n: int = 100, seed: int = 2019) -> list[Path]:
    """Copy ``sample_stays`` into ``out`` with its notice. A folder that already holds stays is
    refused: the new draw was added to the old one, and the checksums and the count vouched for
    both, as one sample of neither seed."""
    if out.resolve() == source.resolve():
        raise UserError(f"--out {out} is the --from folder: give the sample a folder of its own")
    if out.is_dir() and (held := list_psv(out)):
        raise UserError(
            f"--out {out} already holds a sample ({len(held)} .psv files): empty it (rm {out}/*.psv) "
            "or give another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    chosen = sample_stays(source, n, seed=seed)
    for path in chosen:
        shutil.copyfile(path, out / path.name)
    write_sample_notice(out, len(chosen), seed)
    return chosen


SAMPLE_NOTICE = """# A sample of PhysioNet/CinC Challenge 2019 stays

{n} ICU stays copied unchanged by `vigil data sample --n {n} --seed {seed}`.

- **Source**: "Early Prediction of Sepsis from Clinical Data: the PhysioNet/Computing in Cardiology
  Challenge 2019", v1.0.0, https://physionet.org/content/challenge-2019/1.0.0/ (doi:10.13026/v64v-d857).
- **Cite**: Reyna MA, Josef CS, Jeter R, et al. Crit Care Med 48(2):210-217 (2020),
  doi:10.1097/CCM.0000000000004145; Goldberger AL et al., Circulation 101(23):e215-e220 (2000).
- **License**: Open Data Commons Open Database License v1.0 (`LICENSE.txt`). This folder is an extract
  of that database, redistributed under the same license: keep this notice and the license with any
  copy, and keep any public modified copy under ODbL 1.0. `SHA256SUMS.txt` lists every stay.
"""


_NOTICE_TITLE = SAMPLE_NOTICE.splitlines()[0]


def write_sample_notice(out: Path, n: int, seed: int) -> None:
    """The licence, the attribution and the checksums beside a sample's stays: an extract of an ODbL
    database travels with its notice and licence (the stays alone were written before)."""
    shutil.copyfile(SAMPLE_DIR / "LICENSE.txt", out / "LICENSE.txt")
    readme = out / "README.md"
    # the shipped sample's own README says more: kept; a notice an earlier draw wrote names its n and seed
    if not readme.exists() or readme.read_text(encoding="utf-8", errors="replace").startswith(_NOTICE_TITLE):
        readme.write_text(SAMPLE_NOTICE.format(n=n, seed=seed))
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in list_psv(out)]
    (out / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")


# --- the download ----------------------------------------------------------------------------------


def parse_sha256sums(text: str) -> dict[str, str]:
    """PhysioNet's SHA256SUMS.txt: ``<hex digest> <relative path>`` per line."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        if len(digest) == 64 and name:
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def _open(url: str, timeout_s: float, stays_folder: Path) -> object:
    """``url`` opened, or one line saying where to put the stays by hand (``stays_folder``, under
    VIGIL_HOME: where `vigil data fetch` would have unpacked them)."""
    if urllib.parse.urlsplit(url).scheme not in ("https", "http", "file"):
        raise UserError(f"{url} is not a URL to download from: give --base-url as https://... (or file:///...)")
    try:
        return urllib.request.urlopen(url, timeout=timeout_s)  # noqa: S310 - https/file URLs only
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"cannot download {url} ({reason}): download it yourself from {PROJECT_PAGE} "
            f"and put the .psv files in {stays_folder} (or set VIGIL_DATA_DIR)"
        ) from exc


def download_checked(url: str, dest: Path, sha256: str, timeout_s: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` and keep it only if its SHA-256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with _open(url, timeout_s, dest.with_suffix("")) as response, part.open("wb") as out:  # type: ignore[attr-defined]
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256.lower():
        part.unlink(missing_ok=True)
        raise UserError(f"{dest.name}: SHA-256 {digest.hexdigest()} does not match PhysioNet's {sha256}; try again")
    part.replace(dest)
    return dest


def extract_psv(archive: Path, out: Path) -> int:
    """Unpack the .psv files of a set's zip into ``out`` (flat; no path leaves ``out``), whole or not
    at all (``unpack_whole``): ``out`` is replaced by the set once every stay is written."""
    if not zipfile.is_zipfile(archive):
        raise UserError(f"{archive.name}: not a zip archive, though its SHA-256 matched: check --base-url's mirror")
    count = 0

    def unzip(work: Path) -> Path:
        nonlocal count
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = Path(info.filename).name
                if info.is_dir() or not name.endswith(".psv"):
                    continue
                with zf.open(info) as src, (work / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                count += 1
        return work

    unpack_whole(out, unzip)
    return count


def fetch_sets(
    sets: list[str],
    cache: Path,
    base_url: str = PHYSIONET_2019,
    timeout_s: float = 60.0,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, int]:
    """Download each set's zip, check it against PhysioNet's SHA256SUMS.txt, unpack it into
    ``<cache>/data/training_set<X>``; return the stays per set."""
    base = base_url.rstrip("/") + "/"
    with _open(base + "SHA256SUMS.txt", timeout_s, cache / "data" / "training_setA") as response:  # type: ignore[attr-defined]
        sums = parse_sha256sums(response.read().decode())
    done: dict[str, int] = {}
    for name in sets:
        relative = SETS[name]
        if relative not in sums:
            raise UserError(f"{relative} is not in {base}SHA256SUMS.txt: check --base-url")
        archive = cache / "data" / Path(relative).name
        say(f"downloading {base}{relative}")
        download_checked(base + relative, archive, sums[relative], timeout_s)
        done[name] = extract_psv(archive, cache / "data" / Path(relative).stem)
        say(f"set {name}: {done[name]} stays, SHA-256 {sums[relative][:12]}… checked")
    return done
