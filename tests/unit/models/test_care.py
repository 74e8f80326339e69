from datetime import UTC, datetime

from vigil.models.care import care_categories


def _state(**kw):
    base = {
        "map_mmhg": 70.0,
        "sbp_mmhg": 110.0,
        "lactate_mmol_l": 1.5,
        "weight_kg": 70.0,
        "news2_total": 3,
        "news2_single_parameter_3": False,
        "suspected_sepsis": True,
        "time_zero": datetime(2025, 1, 1, tzinfo=UTC),
    }
    base.update(kw)
    return base


def test_categories_ignore_changes_that_cannot_move_the_care_score() -> None:
    assert care_categories(_state(map_mmhg=72.0, news2_total=4)) == care_categories(_state())


def test_categories_follow_guideline_thresholds() -> None:
    assert care_categories(_state(map_mmhg=64.0)) != care_categories(_state())  # MAP < 65: hypotension
    assert care_categories(_state(sbp_mmhg=89.0, map_mmhg=None)) != care_categories(_state(map_mmhg=None))
    assert care_categories(_state(news2_total=5)) != care_categories(_state())  # NEWS2 band change
    assert care_categories(_state(news2_single_parameter_3=True)) != care_categories(_state())
