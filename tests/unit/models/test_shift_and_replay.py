from __future__ import annotations

import numpy as np
import pytest
from synthetic import synthetic_stay

from vigil.models.alert_replay import AlertReplay
from vigil.models.shift import PANELS, Shift, omit_panels, parse_shift, schedule, thin, thin_labs
from vigil.models.train.burden import burden
from vigil.schemas.codes import DYNAMIC_CODES, VITALS

LABS = [i for i, c in enumerate(DYNAMIC_CODES) if c not in VITALS]
VITAL_COLS = [i for i, c in enumerate(DYNAMIC_CODES) if c in VITALS]


@pytest.mark.parametrize(
    ("kind", "keep", "share"),
    [("labs", 0.1, (0.03, 0.2)), ("vitals", 0.5, (0.4, 0.6))],
)
def test_thin_drops_whole_draws_of_its_kind_and_keeps_the_other(
    kind: str, keep: float, share: tuple[float, float]
) -> None:
    m = synthetic_stay(np.random.default_rng(1), 400)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    cols, other = (LABS, VITAL_COLS) if kind == "labs" else (VITAL_COLS, LABS)
    sparse = thin(m, kind, keep, np.random.default_rng(5))
    np.testing.assert_array_equal(sparse[:, other], m[:, other])
    had = ~np.isnan(m[:, cols]).all(1)
    kept = ~np.isnan(sparse[:, cols]).all(1)
    assert not (kept & ~had).any()
    assert share[0] < kept.sum() / had.sum() < share[1]
    # a kept draw is kept whole; seeded; keep=1 changes nothing
    np.testing.assert_array_equal(sparse[kept][:, cols], m[kept][:, cols])
    np.testing.assert_array_equal(sparse, thin(m, kind, keep, np.random.default_rng(5)))
    np.testing.assert_array_equal(thin(m, kind, 1.0, np.random.default_rng(0)), m)


def test_thinning_draws_one_uniform_per_hour_in_order() -> None:
    # the cached thinned copies of set A (keyed by their tag, not by this code) depend on it
    m = synthetic_stay(np.random.default_rng(2), 400)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    dropped = np.random.default_rng(5).random(len(m)) >= 0.1
    sparse = thin_labs(m, 0.1, np.random.default_rng(5))
    assert np.isnan(sparse[np.ix_(dropped, LABS)]).all()
    np.testing.assert_array_equal(sparse[~dropped], m[~dropped])
    with pytest.raises(ValueError, match="unknown kind"):
        thin(m, "notes", 0.5, np.random.default_rng(0))


def test_parse_shift() -> None:
    assert parse_shift("labs=0.1") == Shift("labs", keep=0.1)
    assert parse_shift("vitals=0.5") == Shift("vitals", keep=0.5)
    assert parse_shift("labs=every24h") == Shift("labs", every_h=24)
    assert str(parse_shift("labs=every24h")) == "labs=every24h" and str(parse_shift("labs=0.1")) == "labs=0.1"
    assert parse_shift("panels=0.5") == Shift("panels", keep=0.5)
    assert str(parse_shift("panels=0.5")) == "panels=0.5"
    bad = ("labs=0", "labs=1.5", "vitals=0", "vitals=", "bp=0.5", "labs", "labs=x", "vitals=nan", "panels=0")
    for spec in (
        *bad,
        "panels=every24h",
        "panels=1.5",
        "labs=every0h",
        "labs=every24",
        "labs=every-2h",
        "labs=every9999h",
        "labs=every 24h",
    ):
        with pytest.raises(ValueError):
            parse_shift(spec)


def test_omit_panels_removes_whole_optional_panels_for_the_stay_and_keeps_the_rest() -> None:
    m = synthetic_stay(np.random.default_rng(6), 200)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    m[::7, :] = 1.0  # every column measured at some hours, whatever the synthetic stay draws
    panel_cols = {name: [DYNAMIC_CODES.index(c) for c in codes] for name, codes in PANELS.items()}
    optional = sorted(i for cols in panel_cols.values() for i in cols)
    core = [i for i in range(len(DYNAMIC_CODES)) if i not in optional]
    assert {"Lactate", "pH", "AST", "PTT"} <= {DYNAMIC_CODES[i] for i in optional}
    assert {"HR", "BUN", "Creatinine", "WBC", "Platelets", "FiO2"} <= {DYNAMIC_CODES[i] for i in core}
    omitted = {name: 0 for name in PANELS}
    stays = 400
    for s in range(stays):
        rng = np.random.default_rng([9, s])
        out = omit_panels(m, 0.5, rng)
        np.testing.assert_array_equal(out[:, core], m[:, core])
        for name, cols in panel_cols.items():
            gone = np.isnan(out[:, cols]).all()
            omitted[name] += int(gone)
            if not gone:  # an ordered panel is kept at every hour
                np.testing.assert_array_equal(out[:, cols], m[:, cols])
        # one uniform per panel, in PANELS order: the cached copies of set A depend on it
        draws = np.random.default_rng([9, s]).random(len(PANELS))
        assert [bool(np.isnan(out[:, c]).all()) for c in panel_cols.values()] == list(draws >= 0.5)
    assert all(0.4 * stays < n < 0.6 * stays for n in omitted.values()), omitted
    np.testing.assert_array_equal(omit_panels(m, 1.0, np.random.default_rng(0)), m)
    assert np.isnan(omit_panels(m, 0.0, np.random.default_rng(0))[:, optional]).all()
    shift = parse_shift("panels=0.5")
    expected = omit_panels(m, 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(shift.apply(m, np.random.default_rng(3)), expected)
    with pytest.raises(ValueError, match="keep"):
        omit_panels(m, 1.5, np.random.default_rng(0))


def _draw_hours(m: np.ndarray, cols: list[int]) -> np.ndarray:
    return np.nonzero(~np.isnan(m[:, cols]).all(1))[0]


@pytest.mark.parametrize("every_h", [1, 6, 24, 100])
def test_schedule_keeps_at_most_one_draw_per_period_and_the_first_whole(every_h: int) -> None:
    m = synthetic_stay(np.random.default_rng(3), 400)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    m[np.ix_(np.random.default_rng(4).random(len(m)) < 0.5, LABS)] = np.nan  # draws at irregular hours
    out = schedule(m, "labs", every_h)
    np.testing.assert_array_equal(out[:, VITAL_COLS], m[:, VITAL_COLS])
    had, kept = _draw_hours(m, LABS), _draw_hours(out, LABS)
    assert len(had) > 100 and (every_h == 1 or len(kept) < len(had))
    assert kept[0] == had[0] and set(kept) <= set(had)
    assert (np.diff(kept) >= every_h).all()
    # greedy: every dropped draw falls within every_h hours of the last kept one before it
    for t in sorted(set(had) - set(kept)):
        assert t - kept[kept < t].max() < every_h
    np.testing.assert_array_equal(out[kept][:, LABS], m[kept][:, LABS])
    np.testing.assert_array_equal(schedule(m, "labs", 1), m)


def test_schedule_spaces_draws_by_the_hours_between_them() -> None:
    m = np.full((60, len(DYNAMIC_CODES)), np.nan, np.float32)
    m[[0, 5, 23, 24, 30, 47, 48, 59], LABS[0]] = 1.0
    assert _draw_hours(schedule(m, "labs", 24), LABS).tolist() == [0, 24, 48]
    assert _draw_hours(schedule(m, "labs", 12), LABS).tolist() == [0, 23, 47, 59]
    with pytest.raises(ValueError, match="every_h"):
        schedule(m, "labs", 0)
    # a Shift applies its schedule whatever the generator
    shift = parse_shift("labs=every24h")
    np.testing.assert_array_equal(shift.apply(m, np.random.default_rng(1)), shift.apply(m, np.random.default_rng(2)))


def test_alert_replay_counts_pages_and_lead_time() -> None:
    replay = AlertReplay()
    hours = 40
    labels = np.zeros(hours, np.int8)
    labels[20:] = 1  # onset (t_sepsis) = 26
    prob = np.full(hours, 0.01)
    prob[15:] = 0.5  # paged at hour 15: 11 h before onset
    news2 = np.zeros(hours, int)
    replay.add(labels, prob, (prob >= 0.3).astype(np.int8), news2, np.zeros(hours, bool))
    quiet = np.zeros(hours)
    replay.add(np.zeros(hours, np.int8), np.full(hours, 0.01), np.zeros(hours, np.int8), quiet, quiet.astype(bool))
    out = replay.summary()
    assert out["septic_stays_paged_before_onset"] == 1.0
    assert out["median_lead_h"] == 11.0
    assert out["pages_per_patient_day"] == pytest.approx(24 * 1 / 80)
    assert out["model_threshold"] == pytest.approx(0.5)


def test_alert_replay_tells_an_alert_in_the_rewarded_12_hours_from_one_a_day_early() -> None:
    replay = AlertReplay()
    hours, quiet = 60, np.zeros(60, int)

    def stay(septic_from: int | None, high_from: int | None) -> None:
        labels = np.zeros(hours, np.int8)
        if septic_from is not None:
            labels[septic_from:] = 1
        prob = np.full(hours, 0.01)
        if high_from is not None:
            prob[high_from:] = 0.5
        replay.add(labels, prob, (prob >= 0.3).astype(np.int8), quiet, quiet.astype(bool))

    stay(septic_from=40, high_from=20)  # onset 46, opened 26 h before: early, not within 12 h
    stay(septic_from=40, high_from=36)  # opened 10 h before onset
    stay(septic_from=40, high_from=None)  # never paged
    stay(septic_from=None, high_from=30)  # a page for a stay that never became septic
    stay(septic_from=None, high_from=None)
    out = replay.summary(0.3)
    assert out["septic_stays_paged_before_onset"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["septic_stays_alert_opened_within_12h_before_onset"] == pytest.approx(1 / 3, abs=1e-4)
    assert out["non_septic_stays_paged"] == 0.5
    assert out["median_lead_h"] == 18.0


def test_alert_replay_exits_below_the_threshold_the_labels_were_set_at() -> None:
    # served threshold 0.30: no hour falls on it, so the lowest probability labelled positive is 0.5
    hours = 40
    prob = np.full(hours, 0.01)
    prob[5], prob[6:20], prob[20] = 0.5, 0.27, 0.5  # 0.27: below 0.30, above its exit (0.30 x 0.8)
    quiet = np.zeros(hours, int)

    def replayed(threshold: float | None) -> dict[str, float | int | str | None]:
        replay = AlertReplay()
        replay.add(np.zeros(hours, np.int8), prob, (prob >= 0.30).astype(np.int8), quiet, quiet.astype(bool))
        return replay.summary(threshold)

    given, inferred = replayed(0.30), replayed(None)
    assert given["model_threshold"] == 0.30 and given["model_threshold_from"] == "given"
    assert inferred["model_threshold"] == 0.5 and inferred["model_threshold_from"] != "given"
    # at 0.30 the alert stays open through the 0.27 hours: one page; read back at 0.5 it closes
    # below 0.4 and pages again at hour 20, after the suppression window
    assert given["pages_per_patient_day"] == pytest.approx(24 / hours)
    assert inferred["pages_per_patient_day"] == pytest.approx(2 * 24 / hours)


def _septic_stay(alert_from: int, hours: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(labels, NEWS2) of a stay septic from hour 40 (t_sepsis 46) whose NEWS2 reaches 5 at ``alert_from``."""
    labels, news2 = np.zeros(hours, np.int8), np.zeros(hours, int)
    labels[40:] = 1
    news2[alert_from:] = 5
    return labels, news2


@pytest.mark.parametrize(("opened_at", "within"), [(34, 0.0), (35, 1.0)])
def test_an_alert_exactly_12_h_before_onset_is_not_in_the_rewarded_hours(opened_at: int, within: float) -> None:
    # the PhysioNet 2019 utility rewards t_sepsis - 12 < t (its reward is 0 at t_sepsis - 12, as
    # models/train/labels.py reads it); an alert opening at t_sepsis - 12 was counted
    labels, news2 = _septic_stay(opened_at)
    replay = AlertReplay()
    replay.add(labels, np.full(len(labels), 0.01), np.zeros(len(labels), np.int8), news2, np.zeros(len(labels), bool))
    out = replay.summary(0.3)
    assert out["septic_stays_paged_before_onset"] == 1.0
    assert out["septic_stays_alert_opened_within_12h_before_onset"] == within


@pytest.mark.parametrize(("opened_at", "within"), [(34, 0.0), (35, 1.0)])
def test_the_burden_counts_the_rewarded_12_hours_as_evaluate_does(tmp_path, opened_at: int, within: float) -> None:
    # models.train.burden counted the same metric with its own bound (``onset - 12 <= t``): one helper now
    stays = [_septic_stay(opened_at), (np.zeros(60, np.int8), np.zeros(60, int))] * 2
    labels = np.concatenate([lab for lab, _ in stays])
    news2 = np.concatenate([n for _, n in stays])
    oof = tmp_path / "oof.npz"
    np.savez(
        oof,
        lengths=np.full(len(stays), 60),
        labels=labels,
        combined=np.random.default_rng(0).random(len(labels)) * 0.01,
        patient_fold=np.array([0, 0, 1, 1]),
        rule_NEWS2=news2,
        rule_NEWS2_single3=np.zeros(len(labels), bool),
        rule_qSOFA=np.zeros(len(labels)),
        rule_SIRS=np.zeros(len(labels)),
    )
    out = burden(oof, "best")["news2_only"]
    assert out["septic_alerted_before_onset"] == 1.0
    assert out["septic_alerted_within_12h_before_onset"] == within
