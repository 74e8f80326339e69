"""`vigil demo` as a user runs it (the real console script, its own embedded stack, no data configured):
it replays the sample shipped in the repository, prints its --keep --json summary while it keeps
running, adds its user to the users file `vigil serve` reads, and SIGTERM stops its worker too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, link_cached_kafka_jars, wait_for

pytestmark = pytest.mark.integration
VIGIL = str(Path(sys.executable).parent / "vigil")


def own_stack_env(home: Path) -> dict[str, str]:
    """The environment of a console-script run on an embedded stack of its own (its home, free ports,
    the cached Kafka jars), with no VIGIL_ setting of the caller's."""
    link_cached_kafka_jars(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return env | {
        "VIGIL_HOME": str(home),
        "VIGIL_KAFKA__EMBEDDED_PORT": str(free_port()),
        "VIGIL_KAFKA__EMBEDDED_CONTROLLER_PORT": str(free_port()),
        "VIGIL_REDIS__EMBEDDED_PORT": str(free_port()),
    }


def tear_down(command: subprocess.Popen, home: Path, env: dict[str, str]) -> None:  # type: ignore[type-arg]
    """Whatever a test left: the command, the workers of its home, its stack."""
    if command.poll() is None:
        command.kill()
    for pid in workers_of(home):
        os.kill(pid, signal.SIGKILL)
    subprocess.run([VIGIL, "stack", "down"], env=env, capture_output=True, timeout=120)


def workers_of(home: Path) -> list[int]:
    """The `vigil worker` processes started for this VIGIL_HOME (Linux /proc; no extra dependency)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vigil.cli" in cmdline and b"worker" in cmdline and f"VIGIL_HOME={home}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_demo_from_the_sample_keep_json_users_file_and_sigterm(tmp_path) -> None:
    home = tmp_path / "home"
    env = own_stack_env(home) | {
        "VIGIL_WEB_PORT": str(free_port()),
        "VIGIL_DATA_DIR": str(tmp_path / "no-data"),  # nothing configured: the shipped sample
    }
    errors = (tmp_path / "demo.err").open("w")  # logs go to stderr; stdout carries the summary
    demo = subprocess.Popen(
        [VIGIL, "demo", "--patients", "6", "--speed", "0", "--bad", "3", "--keep", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    out: list[str] = []
    try:
        deadline = time.monotonic() + 300
        summary = None
        while time.monotonic() < deadline and summary is None:
            line = demo.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            out.append(line)
            if line.startswith("{"):
                summary = json.loads(line)
        assert summary is not None, "".join(out[-30:]) + (tmp_path / "demo.err").read_text()[-3000:]
        assert summary.get("lost") == 0, "".join(out[-30:])
        assert summary["patients"] == 6 and summary["dead_letters"] == 3
        assert any("sample of PhysioNet 2019 set A" in line for line in out)
        users = json.loads((home / "users.json").read_text())["users"]
        assert [u["username"] for u in users] == ["demo"]  # a later `vigil serve` signs the demo user in
        assert demo.poll() is None, "--keep keeps running after the summary"
        assert workers_of(home), "the demo's worker runs while the demo is kept"

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0
        assert wait_for(lambda: not workers_of(home), timeout=30), "SIGTERM must stop the demo's worker"
    finally:
        tear_down(demo, home, env)
        errors.close()
