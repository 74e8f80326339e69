"""``vigil data``: the PhysioNet/CinC 2019 challenge data (fetch with checksums, or a reproducible sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vigil.cli.jsonout import emit_json

data_app = typer.Typer(
    help="PhysioNet/CinC 2019 data: download with checksums, sample, where it is", no_args_is_help=True
)
console = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]


@data_app.command("fetch")
def fetch(
    sets: Annotated[str, typer.Option("--sets", help="which training sets: A, B or A,B")] = "A,B",
    base_url: Annotated[str, typer.Option(help="PhysioNet project files (a mirror, or file:// for a local copy)")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Download the challenge training sets from PhysioNet, check each zip against PhysioNet's
    SHA256SUMS.txt and unpack the stays into ~/.cache/vigil/data/training_setA and _setB (VIGIL_HOME;
    where training and the demo look first)."""
    from vigil.infra.dataset import PHYSIONET_2019, SETS, fetch_sets
    from vigil.infra.settings import get_settings
    from vigil.schemas.errors import UserError

    chosen = [s.strip().upper() for s in sets.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SETS]
    if unknown or not chosen:
        raise UserError(f"--sets takes A, B or A,B (got {sets!r})")
    home = get_settings().home
    counts = fetch_sets(chosen, home, base_url or PHYSIONET_2019, say=lambda line: console.print(line))
    console.print(f"stays in {home / 'data'}: " + ", ".join(f"set {k} {v}" for k, v in counts.items()))
    if json_out:
        emit_json({"sets": counts, "folder": str(home / "data")})


@data_app.command("sample")
def sample(
    source: Annotated[Path, typer.Option("--from", help="a folder of set-A .psv files")],
    out: Annotated[Path, typer.Option(help="where to write the sample")] = Path("data/physionet2019-sample"),
    n: Annotated[int, typer.Option(min=1, help="stays (half septic)")] = 100,
    seed: Annotated[int, typer.Option(help="the seed of the draw")] = 2019,
    json_out: JsonFlag = False,
) -> None:
    """Copy a reproducible sample of stays (half of them septic): the one shipped in data/. An --out
    that already holds .psv files is refused (two draws mixed in one folder are neither); to draw the
    shipped one again, remove its stays first (rm data/physionet2019-sample/*.psv: its README is kept)."""
    from vigil.infra.dataset import septic, write_sample
    from vigil.schemas.errors import UserError

    if not source.exists():
        raise UserError(f"{source} does not exist: pass --from DIR, a folder of set-A .psv files")
    if not source.is_dir():
        raise UserError(f"{source} is not a folder: pass --from DIR, a folder of set-A .psv files")
    chosen = write_sample(source, out, n, seed)
    n_septic = sum(septic(p) for p in chosen)
    console.print(f"{len(chosen)} stays ({n_septic} septic) -> {out}")
    if len(chosen) < n:  # the folder holds too few septic (or non-septic) stays for half of n
        console.print(f"only {len(chosen)} of the {n} stays asked for: {source} has too few for a half-septic draw")
    if json_out:
        emit_json({"stays": len(chosen), "requested": n, "septic": n_septic, "out": str(out), "seed": seed})


@data_app.command("where")
def where(json_out: JsonFlag = False) -> None:
    """Which stays the demo and the replay would use, and why."""
    from vigil.infra.dataset import resolve_dataset
    from vigil.infra.settings import get_settings

    settings = get_settings()
    source = resolve_dataset(settings.data_dir, settings.home)
    console.print(f"{source.stays} stays in {source.path} ({source.kind})")
    if json_out:
        emit_json({"path": str(source.path), "kind": source.kind, "stays": source.stays})


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
