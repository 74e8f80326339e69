"""The ``--json`` line (``cli.jsonout``) is strict JSON whatever the summary holds: a figure that is
not a number is null (Python's json writes a bare NaN, which jq and JSON.parse refuse)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from vigil.cli.jsonout import emit_json, strict_json_value


def strict(line: str) -> object:
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in {line}"))


def test_not_a_number_and_infinities_are_null_at_any_depth(capsys: pytest.CaptureFixture[str]) -> None:
    emit_json(
        {
            "nan": float("nan"),
            "inf": float("inf"),
            "nested": {"values": [1.5, float("-inf"), (np.float32("nan"), np.float64(2.0))]},
            "array": np.array([0.25, np.nan]),
            "count": np.int64(3),
            "ok": np.bool_(True),
        }
    )
    assert strict(capsys.readouterr().out) == {
        "nan": None,
        "inf": None,
        "nested": {"values": [1.5, None, [None, 2.0]]},
        "array": [0.25, None],
        "count": 3,
        "ok": True,
    }


def test_what_json_cannot_write_is_its_text_and_never_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    at = datetime(2019, 1, 1, tzinfo=UTC)
    emit_json({"path": Path("/tmp/x"), "at": at, ("a", 1): "tuple key", float("nan"): "nan key", 2: "int key"})
    assert strict(capsys.readouterr().out) == {
        "path": "/tmp/x",
        "at": str(at),
        "('a', 1)": "tuple key",
        "nan": "nan key",
        "2": "int key",
    }


def test_finite_values_are_left_as_they_are() -> None:
    summary = {"a": 0.1, "b": [1, "x", None, True], "c": {"d": -2.5e-7}}
    assert strict_json_value(summary) == summary
