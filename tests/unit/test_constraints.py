"""constraints.txt pins the whole dependency closure of ``vigil[dev]``, and every install reads it
(``make install``, ``make train``, the Dockerfile): the tests run the versions the image ships.
``deploy/lock.py --check`` compares the file with the environment the tests run in."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vigil_lock", ROOT / "deploy" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_this_environment_is_what_constraints_pins(capsys: pytest.CaptureFixture[str]) -> None:
    assert _lock().main(["--check"]) == 0, capsys.readouterr().err


def test_every_install_reads_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if re.search(r"pip install .*-e '\.\[", line)]
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs), installs  # dev, train
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = [line for line in dockerfile.splitlines() if line.startswith("RUN pip install")]
    assert runs and all("-c constraints.txt" in line for line in runs), runs
    assert re.search(r"^COPY .*\bconstraints\.txt\b.* \./$", dockerfile, re.MULTILINE)


def test_check_names_each_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = _lock()
    pins = lock.parse((ROOT / "constraints.txt").read_text())
    dropped = "pydantic"
    changed = "redis"
    assert {dropped, changed} <= pins.keys()
    edited = {k: v for k, v in pins.items() if k != dropped} | {changed: "0.0.1", "left-pad": "1.0"}
    stale = tmp_path / "constraints.txt"
    stale.write_text(lock.render(edited))
    assert lock.main(["--check", "--file", str(stale)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{dropped}: required (installed {pins[dropped]}) but not pinned" in err
    assert f"{changed}: installed {pins[changed]}, pinned 0.0.1" in err
    assert "left-pad: pinned 1.0 but nothing requires it" in err
    assert err[-1].endswith("run `make lock` (or reinstall: `make install`)") and len(err) == 4


def test_a_malformed_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "constraints.txt"
    bad.write_text("# header\nredis>=5\n")
    assert _lock().main(["--check", "--file", str(bad)]) == 2
    assert "line 2: 'redis>=5' is not NAME==VERSION" in capsys.readouterr().err


def test_the_file_is_what_lock_writes() -> None:
    """Sorted, canonical names, the header: a hand edit shows in the diff of the next `make lock`."""
    lock = _lock()
    text = (ROOT / "constraints.txt").read_text()
    assert text == lock.render(lock.parse(text))
