"""The challenge .psv reader (``models.offline.read_psv``) under property tests: whatever a file holds,
it returns the stay as written (a value the stream's ingest refuses as missing) or raises
``PsvFormatError`` (one line naming the file and the place), never another exception and never a
stay read from misplaced columns."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import HEADER

from vigil.models.offline import STATIC_COLUMNS, PsvFormatError, read_psv, read_stay
from vigil.schemas.codes import CATALOGUE, DYNAMIC_CODES, plausible_range

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("VIGIL_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CELL = st.one_of(
    st.none(),  # NaN
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
)


def in_range(code: str, value: float) -> bool:
    low, high = plausible_range(code)
    return low <= value <= high


def write(tmp: Path, text: str | bytes) -> Path:
    path = tmp / "p000001.psv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@PROPERTY_SETTINGS
@given(
    order=st.permutations(HEADER),
    extra=st.lists(st.sampled_from(["EtCO2x", "Note", "Bed"]), unique=True, max_size=2),
    rows=st.lists(st.lists(CELL, min_size=len(HEADER) + 2, max_size=len(HEADER) + 2), min_size=1, max_size=12),
    label_bits=st.lists(st.booleans(), min_size=12, max_size=12),
    empty_nan=st.booleans(),
)
def test_any_column_order_reads_back_the_values_written(
    tmp_path: Path, order: list[str], extra: list[str], rows: list[list[float | None]], label_bits, empty_nan: bool
) -> None:
    columns = [*order, *extra]
    nan = "" if empty_nan else "NaN"
    lines = ["|".join(columns)]
    want = np.full((len(rows), len(columns)), np.nan)
    blanked = 0
    for r, row in enumerate(rows):
        cells = []
        for j, name in enumerate(columns):
            value = float(label_bits[r]) if name == "SepsisLabel" else row[j]
            cells.append(nan if value is None else repr(float(value)))
            want[r, j] = np.nan if value is None else float(value)
            if value is not None and name in CATALOGUE and not in_range(name, float(value)):
                want[r, j] = np.nan  # what the stream's ingest refuses reads as missing
                blanked += name in DYNAMIC_CODES or (r == 0 and name in STATIC_COLUMNS)
        lines.append("|".join(cells))
    stay = read_stay(write(tmp_path, "\n".join(lines) + "\n"))
    matrix, static, labels = stay.matrix, stay.static, stay.labels
    assert stay.out_of_range == blanked
    assert matrix.shape == (len(rows), len(DYNAMIC_CODES)) and matrix.dtype == np.float32
    for k, code in enumerate(DYNAMIC_CODES):
        np.testing.assert_array_equal(matrix[:, k], want[:, columns.index(code)].astype(np.float32))
    assert labels is not None and labels.tolist() == [int(b) for b in label_bits[: len(rows)]]
    if rows:
        got, expected = static["Age"], want[0, columns.index("Age")]
        assert (np.isnan(got) and np.isnan(expected)) or got == expected


@PROPERTY_SETTINGS
@given(text=st.one_of(st.text(max_size=400), st.binary(max_size=400)))
def test_any_text_reads_or_fails_with_one_readable_line(tmp_path: Path, text: str | bytes) -> None:
    try:
        matrix, _, _ = read_psv(write(tmp_path, text))
    except PsvFormatError as exc:
        message = str(exc)
        assert message.startswith("p000001.psv") and "\n" not in message
    else:
        assert matrix.shape[1] == len(DYNAMIC_CODES)


@PROPERTY_SETTINGS
@given(
    row=st.integers(0, 4),
    column=st.integers(0, len(HEADER) - 2),
    bad=st.sampled_from(["abc", "1,5", "inf", "-Infinity", "1e999", "--1", "0x10"]),
)
def test_a_bad_value_is_named_with_its_line(tmp_path: Path, row: int, column: int, bad: str) -> None:
    body = [["80.0"] * (len(HEADER) - 1) + ["0"] for _ in range(5)]
    body[row][column] = bad
    text = "\n".join(["|".join(HEADER), *("|".join(r) for r in body)])
    with pytest.raises(PsvFormatError, match=f"line {row + 2}: "):
        read_psv(write(tmp_path, text))


def test_a_short_row_and_a_missing_column_are_named(tmp_path: Path) -> None:
    rows = ["|".join(["80"] * len(HEADER)) for _ in range(3)]
    rows[1] = "|".join(["80"] * (len(HEADER) - 1))
    with pytest.raises(PsvFormatError, match="line 3: 40 fields where the header has 41"):
        read_psv(write(tmp_path, "\n".join(["|".join(HEADER), *rows])))
    without_hr = [c for c in HEADER if c != "HR"]
    with pytest.raises(PsvFormatError, match="no column HR in its header"):
        read_psv(write(tmp_path, "|".join(without_hr) + "\n" + "|".join(["1"] * len(without_hr))))
    labelled = "\n".join(["|".join(HEADER), "|".join(["80"] * (len(HEADER) - 1) + ["2"])])
    with pytest.raises(PsvFormatError, match="SepsisLabel must be 0 or 1"):
        read_psv(write(tmp_path, labelled))
