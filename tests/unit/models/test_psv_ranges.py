"""What `vigil predict` and `evaluate` read from a challenge .psv is what the stream's window holds:
a value the stream's ingest refuses (``out_of_range``: set A's FiO2 below 0.21, a value float32
cannot hold) reads as missing and is counted; a header with a BOM, a folder named like a stay and a
cohort without a septic stay are each read as what they are."""

from __future__ import annotations

import json
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import typer
from synthetic import HEADER
from typer.testing import CliRunner

from vigil.infra.dataset import septic
from vigil.models.offline import evaluate_dir, list_psv, predict_dir, read_psv, read_stay
from vigil.models.stream_step import served_bundle_dir
from vigil.schemas.codes import DYNAMIC_CODES, LABS, canonical_unit, plausible_range
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent
from vigil.schemas.normalize import normalize_event

ART = Path(os.environ.get("VIGIL_TEST_ARTIFACTS", served_bundle_dir()))
SAMPLE = Path(__file__).parents[3] / "data" / "physionet2019-sample"


def stream_takes(code: str, value: float) -> bool:
    """Whether the stream's ingest keeps the value (``normalize_event``), as a replay sends it."""
    event = PatientEvent(
        event_id="e",
        patient_id="p",
        observed_at=datetime.now(UTC),
        source="replay",
        kind="lab" if code in LABS else "vital",
        code=code,
        value=value,
        unit=canonical_unit(code),
    )
    return not isinstance(normalize_event(event, datetime.now(UTC)), Rejected)


def one_row_stay(tmp_path: Path, values: dict[str, str], name: str = "p000001.psv") -> Path:
    cells = {c: "NaN" for c in HEADER} | {"Age": "60", "Gender": "1", "ICULOS": "1", "SepsisLabel": "0"} | values
    path = tmp_path / name
    path.write_text("|".join(HEADER) + "\n" + "|".join(cells[c] for c in HEADER) + "\n")
    return path


def test_the_reader_blanks_exactly_what_the_stream_refuses(tmp_path: Path) -> None:
    """Each code's bounds and the values just past them, read from a file and sent to the stream's
    ingest: missing offline where, and only where, the stream dead-letters it."""
    for code in DYNAMIC_CODES:
        low, high = plausible_range(code)
        step = max(1e-3, 1e-3 * (high - low))
        for value in (low, high, low - step, high + step):
            stay = read_stay(one_row_stay(tmp_path, {code: repr(value)}))
            read = float(stay.matrix[0, DYNAMIC_CODES.index(code)])
            assert np.isnan(read) == (not stream_takes(code, value)), (code, value)
            assert stay.out_of_range == int(np.isnan(read))


def test_a_fio2_below_room_air_is_scored_as_the_stream_scores_it(tmp_path: Path) -> None:
    """Set A holds 321 FiO2 values below 0.21 (0.04, 0.0...): the stream refuses them, and so the
    stay's scores are those of the stay without them; predict and evaluate count them."""
    source = (SAMPLE / "p000058.psv").read_text().splitlines()
    col = source[0].split("|").index("FiO2")
    raw, blank = tmp_path / "raw", tmp_path / "blank"
    raw.mkdir()
    blank.mkdir()
    lines_raw, lines_blank = [source[0]], [source[0]]
    for n, line in enumerate(source[1:]):
        cells = line.split("|")
        if n % 3 == 0:
            cells[col] = "0.04"
        lines_raw.append("|".join(cells))
        cells[col] = "NaN" if n % 3 == 0 else cells[col]
        lines_blank.append("|".join(cells))
    (raw / "p000058.psv").write_text("\n".join(lines_raw) + "\n")
    (blank / "p000058.psv").write_text("\n".join(lines_blank) + "\n")
    blanked = len(range(0, len(source) - 1, 3))
    got = predict_dir(raw, tmp_path / "pred-raw", artifacts_dir=ART)
    want = predict_dir(blank, tmp_path / "pred-blank", artifacts_dir=ART)
    assert got["values_out_of_range"] == blanked and want["values_out_of_range"] == 0
    assert (tmp_path / "pred-raw" / "p000058.psv").read_text() == (tmp_path / "pred-blank" / "p000058.psv").read_text()
    assert evaluate_dir(raw, tmp_path / "pred-raw")["values_out_of_range"] == blanked


def test_a_value_float32_cannot_hold_is_out_of_range_not_infinite(tmp_path: Path) -> None:
    """HR 1e39 is finite in float64 and infinite in float32: out of range like the stream's, with no
    overflow warning and no infinity handed to the models."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stay = read_stay(one_row_stay(tmp_path, {"HR": "1e39", "Temp": "-1e39", "O2Sat": "97"}))
    assert np.isnan(stay.matrix[0, DYNAMIC_CODES.index("HR")]) and np.isnan(stay.matrix[0, DYNAMIC_CODES.index("Temp")])
    assert stay.matrix[0, DYNAMIC_CODES.index("O2Sat")] == 97.0
    assert np.isfinite(stay.matrix[~np.isnan(stay.matrix)]).all() and stay.out_of_range == 2


def test_a_static_value_out_of_its_range_is_missing_too(tmp_path: Path) -> None:
    stay = read_stay(one_row_stay(tmp_path, {"Age": "250", "Gender": "1"}))
    assert np.isnan(stay.static["Age"]) and stay.static["Gender"] == 1.0 and stay.out_of_range == 1


def test_a_header_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 export starts with a BOM: the header's first column was read as '\\ufeffHR'."""
    text = (SAMPLE / "p000058.psv").read_text()
    path = tmp_path / "p000058.psv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    got, want = read_psv(path), read_psv(SAMPLE / "p000058.psv")
    np.testing.assert_array_equal(got[0], want[0])


def test_a_folder_named_like_a_stay_is_no_stay(tmp_path: Path) -> None:
    one_row_stay(tmp_path, {"HR": "80"})
    (tmp_path / "p000002.psv").mkdir()
    assert [p.name for p in list_psv(tmp_path)] == ["p000001.psv"]


def test_auroc_is_undefined_without_a_septic_stay(tmp_path: Path) -> None:
    """No septic stay: AUROC and AUPRC are null and the line says why, not 0.000 (a model that ranks
    every septic hour last)."""
    from vigil.cli.models import register

    data = tmp_path / "data"
    data.mkdir()
    for path in [p for p in sorted(SAMPLE.glob("*.psv")) if not septic(p)][:3]:
        (data / path.name).write_text(path.read_text())
    assert list_psv(data)
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["evaluate", "--data", str(data), "--artifacts", str(ART), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().split("\n")[-1])
    assert summary["model"]["auroc"] is None and summary["model"]["auprc"] is None
    assert summary["NEWS2"]["auroc"] is None
    assert "AUROC undefined: no septic stay" in res.output
