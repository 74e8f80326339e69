"""onnxruntime's telemetry is off in every Vigil process (models/__init__.py): a session that Vigil
opens leaves no device id or queued events in the user's cache, where onnxruntime alone, in the same
environment, does (the control: without it the test could not fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import vigil.models

MODEL = Path(vigil.models.__file__).parent / "artifacts" / "stepping" / "deterioration_step.onnx"


def _traces(home: Path, code: str) -> list[str]:
    """What a Python process running ``code`` with ``home`` as its home leaves there."""
    env = {k: v for k, v in os.environ.items() if k not in {"ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME"}}
    env["HOME"] = str(home)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def test_a_vigil_session_sends_and_stores_no_telemetry(tmp_path: Path) -> None:
    plain = _traces(
        tmp_path / "plain",
        f"import onnxruntime as ort; ort.InferenceSession({str(MODEL)!r}, providers=['CPUExecutionProvider'])",
    )
    if not plain:
        pytest.skip("this onnxruntime build keeps no telemetry (built without it)")
    assert any("onnxruntime" in p for p in plain), plain  # e.g. .cache/Microsoft/DeveloperTools/.onnxruntime/deviceid
    assert (
        _traces(tmp_path / "vigil", f"from vigil.models.session import create_session; create_session({str(MODEL)!r})")
        == []
    )
    assert _traces(tmp_path / "bench", "import vigil.bench.tree_options") == []  # onnxruntime loaded by a bench


def test_an_operator_may_turn_it_on() -> None:
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"  # this process imported vigil.models
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="0")
    code = "import os, vigil.models; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "0"
