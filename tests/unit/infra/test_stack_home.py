"""VIGIL_HOME, where the embedded stack keeps its data: an empty value (an empty line in .env,
``VIGIL_HOME=${X:-}`` in compose or CI) was the current folder, and ``vigil stack down --wipe``
deleted ./kafka/data and ./redis of wherever it ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vigil.infra.settings import Settings
from vigil.infra.stack import StackError, stack_down
from vigil.infra.stack.processes import stack_lock


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_home_is_refused_in_one_line_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vigil.cli.errors import explain

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_HOME", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    line, code = explain(caught.value)
    assert "VIGIL_HOME is empty" in line and "\n" not in line and code == 2


def test_a_relative_or_tilde_home_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert Settings(home="vigil-home").home == tmp_path / "vigil-home"
    assert Settings(home="~/stack").home == tmp_path / "user" / "stack"
    assert Settings(home=tmp_path / "a" / ".." / "b").home == tmp_path / "b"
    assert Settings().home.is_absolute()  # the default, ~/.cache/vigil


def _folder_with_data(folder: Path) -> None:
    (folder / "redis").mkdir(parents=True)
    (folder / "redis" / "my-own-file.txt").write_text("not Vigil's")
    (folder / "kafka" / "data").mkdir(parents=True)


def test_wipe_deletes_nothing_in_a_folder_the_stack_never_ran_in(tmp_path: Path) -> None:
    _folder_with_data(tmp_path)
    tmp_path.chmod(0o755)
    with pytest.raises(StackError, match="not a Vigil home, nothing deleted; check VIGIL_HOME"):
        stack_down(Settings(home=tmp_path), wipe=True)
    assert (tmp_path / "redis" / "my-own-file.txt").exists() and (tmp_path / "kafka" / "data").is_dir()
    assert tmp_path.stat().st_mode & 0o777 == 0o755 and not (tmp_path / "stack.lock").exists()


@pytest.mark.parametrize("marker", ["stack.lock", "kafka/cluster.id"])  # a home older than the lock has its cluster id
def test_wipe_still_empties_a_home_the_stack_ran_in(tmp_path: Path, marker: str) -> None:
    _folder_with_data(tmp_path)
    if marker == "stack.lock":
        with stack_lock(tmp_path):
            pass
    else:
        (tmp_path / marker).write_text("AbCdEfGhIjKlMnOpQrStUw")
    assert stack_down(Settings(home=tmp_path), wipe=True) == {"kafka": False, "redis": False}
    assert not (tmp_path / "redis").exists() and not (tmp_path / "kafka" / "data").exists()
