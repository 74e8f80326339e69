"""One import name: the rooms at the top of the repository install as ``vigil.<room>`` and nothing
else reaches site-packages (pyproject.toml's package-dir mapping, docs/architecture.md)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("agents", "models", "schemas", "infra", "cli", "bench")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_dirs() -> set[str]:
    """Every folder of a room that Python or setuptools would treat as a package (code or data)."""
    found = set()
    for room in ROOMS:
        for path in (ROOT / room).rglob("*"):
            if path.is_dir() and path.name != "__pycache__" and any(p.is_file() for p in path.iterdir()):
                found.add("vigil." + ".".join(path.relative_to(ROOT).parts))
        found.add(f"vigil.{room}")
    return {name for name in found if "results" not in name}


def test_every_room_maps_to_the_vigil_namespace() -> None:
    tool = _pyproject()["tool"]["setuptools"]
    # and the data-only room: the sample of set A, with its license (docs/architecture.md)
    assert tool["package-dir"] == {f"vigil.{room}": room for room in ROOMS} | {"vigil.data": "data"}
    listed = set(tool["packages"])
    assert _package_dirs() - {"vigil.bench.results"} <= listed, "a package folder is missing from pyproject"
    assert all(name.startswith("vigil.") for name in listed)


BARE_IMPORT = re.compile(rf"^\s*(from|import) ({'|'.join(ROOMS)})(\.|\s)", re.M)


@pytest.mark.parametrize("folder", [*ROOMS, "tests"])
def test_no_module_imports_a_room_by_its_bare_name(folder: str) -> None:
    """``import agents`` would work from the repository root by accident and break when installed."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / folder).rglob("*.py")
        if BARE_IMPORT.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_wheel_holds_only_vigil_paths(tmp_path: Path) -> None:
    """What `pip install vigil` puts into site-packages: ``vigil/...`` and the dist-info, nothing generic."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        env={"PYTHONWARNINGS": "ignore::UserWarning", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        check=False,
    )
    if proc.returncode != 0 and "No matching distribution found for setuptools" in proc.stderr:
        pytest.skip("no package index reachable for the build backend")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("vigil-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"vigil", next(t for t in tops if t.endswith(".dist-info"))}
    for expected in (
        "vigil/cli/main.py",
        "vigil/models/artifacts/stepping/manifest.json",
        "vigil/agents/web/static/app.js",
        "vigil/infra/kafka/pom.xml",
        # `vigil demo` / `replay` / `bundle check` in an image without a clone (dataset.SAMPLE_DIR)
        "vigil/data/physionet2019-sample/LICENSE.txt",
        "vigil/data/physionet2019-sample/README.md",
    ):
        assert expected in names
    assert sum(name.startswith("vigil/data/physionet2019-sample/p") and name.endswith(".psv") for name in names) == 100
    assert not any("/tests/" in name or name.startswith("vigil/tests") for name in names)
