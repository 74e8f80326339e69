"""The fetch-stall probe's arguments: WAIT or WAIT:PREFETCH, anything else one line and exit 2."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.bench.fetch_stall import main, parse_settings


def test_wait_and_prefetch_are_read_in_milliseconds() -> None:
    assert parse_settings(["1500", "1500:50", "0:0"]) == [(1500, None), (1500, 50), (0, 0)]


@pytest.mark.parametrize("arg", ["", "fast", "1500:", ":50", "1500:50:5", "-1", "1.5", "1500 "])
def test_a_malformed_setting_is_refused_by_name(arg: str) -> None:
    with pytest.raises(ValueError, match="WAIT or WAIT:PREFETCH"):
        parse_settings([arg])


def test_main_ends_a_malformed_setting_in_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["1500", "x:y"]) == 2  # refused before any broker is started
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: 'x:y' is not WAIT or WAIT:PREFETCH in milliseconds (e.g. 1500 or 1500:50)"]


@given(st.text(max_size=20))
def test_any_text_parses_or_is_refused_with_value_error(arg: str) -> None:
    try:
        (wait, prefetch), *_ = parse_settings([arg])
    except ValueError:
        return
    assert wait >= 0 and (prefetch is None or prefetch >= 0)
