"""The broker's jar folder may be a link to another home's (the tests link the user cache's): a
dangling or stale link is replaced by a fresh fetch, not an unexpected FileExistsError or a
refusal to remove a link."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vigil.infra.stack import jars
from vigil.infra.stack.processes import StackPaths


@pytest.fixture
def fake_maven(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(jars.shutil, "which", lambda name: f"/usr/bin/{name}")

    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(jars.subprocess, "run", run)
    return calls


@pytest.mark.parametrize("target", ["gone", "stale"])
def test_a_linked_jar_folder_is_replaced_by_a_fetch(tmp_path: Path, fake_maven: list[list[str]], target: str) -> None:
    paths = StackPaths(tmp_path / "home")
    paths.kafka.mkdir(parents=True)
    other = tmp_path / "other-libs"
    if target == "stale":
        other.mkdir()
        (other / "kafka.jar").write_text("another home's jar")
    paths.libs.symlink_to(other)
    assert jars.ensure_kafka_jars(paths) == paths.libs
    assert paths.libs.is_dir() and not paths.libs.is_symlink() and len(fake_maven) == 1
    assert target == "gone" or (other / "kafka.jar").exists()  # the other home's jars are left alone
