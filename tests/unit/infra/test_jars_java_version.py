"""The embedded broker needs Java 17 (Kafka 4's class files): an older Java, Ubuntu 20.04's and
Debian 11's default 11, passed the check (only its presence was), and the first java command ended in
a many-line UnsupportedClassVersionError. Now one line says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.infra.stack.processes import StackError


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.9" 2023-10-17\nOpenJDK Runtime Environment (build 17.0.9+9)', 17),
        ('openjdk version "17.0.21.1" 2026-11-17', 17),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('Picked up JAVA_TOOL_OPTIONS: -Xss1m\nopenjdk version "25.0.1" 2025-10-21', 25),
        ("bash: java: not what you think", None),
    ],
)
def test_the_major_version_is_read_from_java_version(output: str, major: int | None) -> None:
    from vigil.infra.stack.jars import parse_java_major

    assert parse_java_major(output) == major


def fake_java(folder: Path, version: str) -> None:
    """A ``java`` that answers ``-version`` on stderr, as the real one does."""
    folder.mkdir()
    (folder / "java").write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2024-07-16' >&2\n")
    (folder / "java").chmod(0o755)


def test_java_11_is_refused_in_one_line_saying_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.infra.settings import Settings
    from vigil.infra.stack import kafka

    fake_java(tmp_path / "bin", "11.0.24")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(StackError) as caught:
        kafka._prepare_node(Settings(home=tmp_path / "home"), 0, None)
    line = str(caught.value)
    assert "is Java 11" in line and "needs Java 17+" in line and "apt-get install openjdk-17-jre-headless" in line
    assert "\n" not in line


def test_java_17_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.infra.stack.jars import require_java

    fake_java(tmp_path / "bin", "17.0.9")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert require_java() == str(tmp_path / "bin" / "java")
