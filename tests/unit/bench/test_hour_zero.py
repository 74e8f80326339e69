"""bench.hour_zero scores each stay whose first row is empty twice, at the same clock hours: as
``vigil predict`` reads the file and as a feed's stream would (every hour one lower)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vigil.bench import hour_zero
from vigil.infra.dataset import SAMPLE_DIR
from vigil.models.offline import read_stay


def test_the_feeds_hours_are_the_files_less_its_empty_first_row() -> None:
    result = hour_zero.compare(SAMPLE_DIR, 30)
    empty_first = [s for s in map(read_stay, sorted(SAMPLE_DIR.glob("*.psv"))[:30]) if np.isnan(s.matrix[0]).all()]
    assert result["stays"] == len(empty_first) > 0
    for label in ("feed", "feed_without_age_sex"):
        r = result[label]
        assert isinstance(r, dict)
        assert r["hours"] == sum(len(s.matrix) - 1 for s in empty_first)
        assert r["alert_hours_predict"] >= 0 and r["hours_disagreeing"] <= r["hours"]
    assert isinstance(result["feed_without_age_sex"], dict) and result["feed_without_age_sex"]["max_abs_difference"] > 0


def test_no_data_is_one_line_and_a_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hour_zero.main(["--data", str(tmp_path), "--json"]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("error: no .psv files") and json.loads(out.out.strip().splitlines()[-1])["ok"] is False


def test_no_stay_to_compare_or_a_bad_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    measured = next(p for p in sorted(SAMPLE_DIR.glob("*.psv")) if not np.isnan(read_stay(p).matrix[0]).all())
    (tmp_path / measured.name).write_text(measured.read_text())
    assert hour_zero.main(["--data", str(tmp_path)]) == 2  # a traceback: nothing to concatenate
    assert "has an empty first row" in capsys.readouterr().err
    (tmp_path / "p999999.psv").write_text("not|a|challenge|file\n1|2\n")
    assert hour_zero.main(["--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
