"""``write_private``: a file its owner alone reads, written whole or not at all, and never a copy of
the secret left beside it when the replace fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vigil.cli.errors import explain
from vigil.cli.stack import register
from vigil.infra.secrets import write_private


def test_a_folder_where_the_file_goes_leaves_no_tmp_and_the_line_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker makes a missing bind-mount source a folder: the rename failed, left `<name>.tmp` with the
    secret in it, and the line named that tmp (the rename's source) instead of the path given."""
    out = tmp_path / "out.conf"
    out.mkdir()
    monkeypatch.setenv("VIGIL_REDIS_PASSWORD", "abcdefghijklmnopqrstuvwx")
    app = typer.Typer()
    register(app)
    argv = ["stack", "redis-users", "--out", str(out)]
    refused = CliRunner().invoke(app, argv)
    assert isinstance(refused.exception, IsADirectoryError)
    line, code = explain(refused.exception, argv)
    assert code == 2
    assert line == f"{out} is a folder, where a file is wanted: change --out {out} to a file's path"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.conf"]  # no out.conf.tmp


def test_a_failed_write_removes_its_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_private(tmp_path / "secret", b"the secret")
    assert not list(tmp_path.iterdir())


def test_files_written_together_replace_none_when_one_cannot_be_replaced(tmp_path: Path) -> None:
    from vigil.infra.secrets import write_private_together

    (tmp_path / "a.pem").write_bytes(b"old a")
    (tmp_path / "b.pem").mkdir()
    with pytest.raises(IsADirectoryError) as refused:
        write_private_together({tmp_path / "a.pem": b"new a", tmp_path / "b.pem": b"new b"})
    assert refused.value.filename2 == str(tmp_path / "b.pem")
    assert (tmp_path / "a.pem").read_bytes() == b"old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pem", "b.pem"]
    write_private_together({tmp_path / "a.pem": b"new a", tmp_path / "c.pem": b"c"}, modes={tmp_path / "c.pem": 0o644})
    assert (tmp_path / "a.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "c.pem").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pem", "b.pem", "c.pem"]
