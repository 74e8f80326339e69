"""Ward input drift: PSI against the training reference, per ward, over a sliding window."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vigil.models.drift import (
    NULL_HOURS,
    NULL_PATIENTS,
    PSI_DRIFTED,
    DriftMonitor,
    DriftReference,
    WardWindow,
    bin_values,
    null_max_psi,
    psi,
    ward_hours,
)

VARS = ["HR", "Lactate"]
FEATS = ["HR_last", "icu_hours"]


def cohort(rng: np.random.Generator, n: int, hr_shift: float = 0.0, lactate_share: float = 0.1) -> tuple:
    """Rows [n, 2] (HR, Lactate; NaN = not measured) and features [n, 2] (HR_last, icu_hours)."""
    rows = np.full((n, 2), np.nan)
    hr = rng.normal(85 + hr_shift, 12, n)
    seen = rng.random(n) < 0.9
    rows[seen, 0] = hr[seen]
    lac = rng.random(n) < lactate_share
    rows[lac, 1] = rng.lognormal(0.3, 0.4, lac.sum())
    feats = np.stack([np.where(seen, hr, np.nan), rng.integers(0, 200, n).astype(float)], -1)
    return rows, feats


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    rows, feats = cohort(np.random.default_rng(0), 50_000)
    return DriftReference.build(~np.isnan(rows), feats, VARS, FEATS, "synthetic")


def monitor(reference: DriftReference, **kw: int) -> DriftMonitor:
    return DriftMonitor.for_inputs(reference, VARS, FEATS, **kw)


def keys(n: int, patients: int = 100) -> np.ndarray:
    return np.arange(n) % patients


def test_psi_basics() -> None:
    p = np.array([0.25, 0.25, 0.5])
    assert psi(p, p * 400) == pytest.approx(0.0, abs=1e-12)
    assert psi(p, np.array([0.5, 0.25, 0.25])) > psi(p, np.array([0.3, 0.25, 0.45])) > 0
    assert bin_values(np.array([np.nan, -1.0, 5.0, 100.0]), np.array([0.0, 10.0])).tolist() == [3, 0, 1, 2]


def test_reference_round_trips_through_json(reference: DriftReference) -> None:
    back = DriftReference.from_json(reference.to_json())
    assert back.variables == VARS and [f.name for f in back.features] == FEATS
    np.testing.assert_allclose(back.measured_share, reference.measured_share, atol=1e-6)
    assert len(back.features[0].shares) == len(back.features[0].edges) + 2
    assert back.features[0].shares.sum() == pytest.approx(1.0, abs=1e-5)


def test_a_ward_like_training_is_stable_and_a_shifted_one_drifts(reference: DriftReference) -> None:
    rng = np.random.default_rng(1)
    m = monitor(reference)
    same_rows, same_feats = cohort(rng, 1500)
    odd_rows, odd_feats = cohort(rng, 1500, hr_shift=25.0, lactate_share=0.01)
    rows, feats = np.vstack([same_rows, odd_rows]), np.vstack([same_feats, odd_feats])
    m.observe(["A"] * 1500 + ["B"] * 1500, rows, feats, keys(3000, 200))
    reports = {r.ward: r for r in m.reports()}
    assert reports["A"].patients == reports["B"].patients == 200 and reports["A"].threshold == PSI_DRIFTED
    assert not reports["A"].drifted and reports["A"].max_psi < 0.1
    assert reports["B"].drifted and reports["B"].max_psi > PSI_DRIFTED
    names = [name for name, _ in reports["B"].top]
    assert names[0] == "HR_last" and "Lactate measured" in names
    assert reports["B"].rate_psi["Lactate"] > 0.1 and reports["B"].rate_psi["HR"] < 0.05


def test_no_report_before_enough_hours(reference: DriftReference) -> None:
    m = monitor(reference, min_hours=200, min_patients=10)
    rows, feats = cohort(np.random.default_rng(2), 199)
    m.observe(["A"] * 199, rows, feats, keys(199))
    assert m.reports() == []
    m.observe(["A"], rows[:1], feats[:1], keys(1))
    assert [r.patient_hours for r in m.reports()] == [200]
    few = monitor(reference, min_hours=200, min_patients=10)
    few.observe(["B"] * 300, *cohort(np.random.default_rng(3), 300), keys(300, patients=9))
    assert few.reports() == []  # 300 hours of 9 patients: too few patients to judge a ward


def test_sliding_window_counts_equal_a_recount(reference: DriftReference) -> None:
    rng = np.random.default_rng(3)
    window = WardWindow(reference, size=300)
    measured, bins = [], []
    for n in (120, 250, 7, 400, 33):
        rows, feats = cohort(rng, n, hr_shift=float(rng.normal(0, 10)))
        b = np.stack([bin_values(feats[:, k], f.edges) for k, f in enumerate(reference.features)], -1)
        window.add(~np.isnan(rows), b.astype(np.int16), keys(n, 7))
        measured.append(~np.isnan(rows))
        bins.append(b)
    last_m, last_b = np.vstack(measured)[-300:], np.vstack(bins)[-300:]
    assert window.filled == 300
    np.testing.assert_array_equal(window._rate_counts, last_m.sum(0))
    for k, counts in enumerate(window._bin_counts):
        np.testing.assert_array_equal(counts, np.bincount(last_b[:, k], minlength=len(counts)))


def stays_cohort(rng: np.random.Generator, n_stays: int, max_hours: int = 60) -> tuple:
    """(rows, features, offsets) of stays whose HR is mostly the patient's own, with hour-to-hour noise:
    the sample is the patients more than the hours, and a patient's few hours say less than many."""
    lengths = rng.integers(5, max_hours, n_stays)
    offsets = np.r_[0, np.cumsum(lengths)]
    hr = np.repeat(rng.normal(85, 12, len(lengths)), lengths) + rng.normal(0, 6, int(lengths.sum()))
    rows = np.stack([hr, np.where(rng.random(len(hr)) < 0.1, 1.0, np.nan)], -1)
    feats = np.stack([hr, rng.integers(0, 200, len(hr)).astype(float)], -1)
    return rows, feats, offsets


def test_the_threshold_follows_training_wards_of_the_same_size_and_hours(reference: DriftReference) -> None:
    """Small wards of training stays reach large PSIs by chance, so their threshold is higher, never
    below 0.25; so do wards whose window holds fewer hours of each patient."""
    rows, feats, offsets = stays_cohort(np.random.default_rng(4), 2000)
    ref = DriftReference.build(~np.isnan(rows), feats, VARS, FEATS, "stays")
    q99 = null_max_psi(ref, ~np.isnan(rows), feats, offsets, hours=(200, 600), draws=200)
    assert q99.shape == (2, len(NULL_PATIENTS)) and q99[0, 0] > 1.0
    assert np.all(np.diff(q99, axis=1) <= 0) and np.all(np.diff(q99, axis=0) <= 0)
    assert q99[0, 1] > q99[1, 1]  # 20 patients: 10 hours each read noisier than 30
    nulled = dataclasses.replace(ref, null_patients=np.asarray(NULL_PATIENTS, float), null_q99=q99)
    nulled = dataclasses.replace(nulled, null_hours=np.array([200.0, 600.0]))
    with_null = DriftReference.from_json(nulled.to_json())
    assert with_null.threshold(10, 200) == pytest.approx(q99[0, 0]) and with_null.threshold(10_000, 600) >= PSI_DRIFTED
    assert with_null.threshold(15, 200) < with_null.threshold(10, 200)
    assert with_null.threshold(20, 600) == pytest.approx(q99[1, 1])
    assert with_null.threshold(20, 600) < with_null.threshold(20, 200)
    assert with_null.threshold(20, 400) == pytest.approx((q99[0, 1] + q99[1, 1]) / 2)  # linear in hours
    assert with_null.threshold(20, 5000) == with_null.threshold(20, 600)  # past the table: its largest ward


def test_a_ward_is_judged_from_the_smallest_ward_the_table_was_drawn_for(reference: DriftReference) -> None:
    """Below the table the smallest ward's percentile would stand for a smaller ward's, whose chance
    PSI is larger: such a ward is not judged (``gate``), whatever the settings ask for."""
    q99 = np.array([[3.0, 1.5], [2.0, 1.0]])
    nulled = dataclasses.replace(
        reference, null_patients=np.array([10.0, 20.0]), null_hours=np.array([200.0, 2000.0]), null_q99=q99
    )
    assert nulled.gate(min_hours=50, min_patients=5) == (200, 10)
    assert nulled.gate(min_hours=500, min_patients=30) == (500, 30)
    assert reference.gate(min_hours=50, min_patients=5) == (50, 5)  # no table: 0.25, from any ward


def test_a_table_drawn_over_one_window_only_is_read_as_its_one_row(reference: DriftReference) -> None:
    """A reference written before the table had hours (by patients alone, over 2,000-hour windows):
    its row judges wards from 2,000 hours on, never below."""
    import json

    data = json.loads(reference.to_json())
    data["null_max_psi"] = {"patients": [10, 20], "q99": [3.0, 1.7], "window_hours": 2000, "draws": 1000}
    old = DriftReference.from_json(json.dumps(data))
    assert old.problems() == [] and old.null_q99.shape == (1, 2)
    assert old.threshold(20, 2000) == old.threshold(20, 200) == pytest.approx(1.7)
    assert old.gate(min_hours=200, min_patients=10) == (2000, 10)


def test_a_drawn_ward_shares_its_hours_as_evenly_as_its_stays_allow() -> None:
    assert ward_hours(np.array([100, 100]), 11).tolist() == [5, 6]
    assert ward_hours(np.array([3, 50, 50]), 30).tolist() == [3, 13, 14]  # the short stay gives all it has
    assert ward_hours(np.array([5, 5]), 100).tolist() == [5, 5]  # too short: fewer hours, never more
    assert ward_hours(np.array([40] * 10), 4).tolist() == [1] * 10  # every drawn patient is in the ward


def test_steady_wards_of_sample_stays_are_rarely_called_drifted() -> None:
    """Wards of 40 of the shipped sample's set-A stays, 5 hours each (200 hours, the gate): drawn from
    training stays, they must read as training about 99 times in 100. Against the shipped reference's
    table drawn over 2,000-hour windows only, 18 of these 100 were called drifted."""
    from vigil.infra.dataset import SAMPLE_DIR
    from vigil.models.bundle import STEPPING_DIR
    from vigil.models.drift import REFERENCE_FILE
    from vigil.models.offline import list_psv, read_psv
    from vigil.models.stay_features import TREE_FEATURES
    from vigil.models.stepping import stay_inputs
    from vigil.schemas.codes import DYNAMIC_CODES

    shipped = DriftReference.load(STEPPING_DIR / REFERENCE_FILE)
    stays = []
    for path in list_psv(SAMPLE_DIR):
        m, s, _ = read_psv(path)
        static = {"Age": s["Age"], "Gender": s["Gender"]}
        stays.append((m, stay_inputs(m, static).tree_features(np.arange(len(m)), static)))
    rng = np.random.default_rng(0)
    flagged = judged = 0
    for _ in range(100):
        ward = DriftMonitor.for_inputs(shipped, DYNAMIC_CODES, TREE_FEATURES)
        for p in rng.choice(len(stays), 40, replace=False).tolist():
            m, f = stays[p]
            a = int(rng.integers(0, len(m) - 4))
            ward.observe(["W"] * 5, m[a : a + 5], f[a : a + 5], np.full(5, p))
        reports = ward.reports()
        judged += len(reports)
        flagged += sum(r.drifted for r in reports)
    assert judged == 100 and flagged <= 4, flagged


def test_reference_naming_an_unknown_input_is_refused(reference: DriftReference) -> None:
    with pytest.raises(ValueError, match="icu_hours"):
        DriftMonitor.for_inputs(reference, VARS, ["HR_last"])


def test_a_cohort_smaller_than_the_largest_ward_still_gets_a_threshold_per_size() -> None:
    # a smoke training of 300 stays: the 320-patient ward draws stays again instead of failing
    rows, feats, offsets = stays_cohort(np.random.default_rng(5), 50, max_hours=40)
    ref = DriftReference.build(~np.isnan(rows), feats, VARS, FEATS, "stays")
    q99 = null_max_psi(ref, ~np.isnan(rows), feats, offsets, draws=50)
    assert q99.shape == (len(NULL_HOURS), len(NULL_PATIENTS)) and np.isfinite(q99).all()
    assert np.all(np.diff(q99, axis=1) <= 0) and np.all(np.diff(q99, axis=0) <= 0)


def _feature(ref: DriftReference, k: int, **changes: np.ndarray) -> DriftReference:
    feats = list(ref.features)
    feats[k] = dataclasses.replace(feats[k], **changes)
    return dataclasses.replace(ref, features=feats)


def nulled(r: DriftReference, patients: list[float], hours: list[float], q99: list[list[float]]) -> DriftReference:
    return dataclasses.replace(r, null_patients=np.array(patients), null_hours=np.array(hours), null_q99=np.array(q99))


def test_a_built_reference_has_no_problems(reference: DriftReference) -> None:
    q99 = [[3.5, 2.0, 1.2, 0.8, 0.5, 0.3], [3.0, 1.5, 0.9, 0.6, 0.4, 0.3]]
    table = nulled(reference, list(map(float, NULL_PATIENTS)), [200.0, 2000.0], q99)
    assert reference.problems() == [] and DriftReference.from_json(table.to_json()).problems() == []


@pytest.mark.parametrize(
    ("spoil", "found"),
    [
        (lambda r: dataclasses.replace(r, measured_share=np.array([0.9, 1.2])), "outside [0, 1]"),
        (lambda r: dataclasses.replace(r, measured_share=np.array([0.9, np.nan])), "outside [0, 1]"),
        (lambda r: dataclasses.replace(r, measured_share=np.array([0.9])), "not one per variable"),
        (lambda r: dataclasses.replace(r, variables=["HR", "HR"]), "not one per variable"),
        (lambda r: _feature(r, 0, shares=r.features[0].shares * 2), "HR_last: bin shares do not sum to 1"),
        (lambda r: _feature(r, 0, shares=r.features[0].shares[:-1]), "HR_last: 10 bin shares for 11 bins"),
        (lambda r: _feature(r, 1, edges=r.features[1].edges[::-1]), "icu_hours: bin edges"),
        (lambda r: _feature(r, 1, edges=np.r_[r.features[1].edges[:-1], np.inf]), "icu_hours: bin edges"),
        (lambda r: nulled(r, [10.0, 20.0], [200.0], [[1.0]]), "one per window's hours and ward size"),
        (lambda r: nulled(r, [10.0, 20.0], [200.0, 500.0], [[2.0, 1.0]]), "one per window's hours and ward size"),
        (lambda r: nulled(r, [20.0, 10.0], [200.0], [[1.0, 1.0]]), "ward sizes"),
        (lambda r: nulled(r, [10.0, 20.0], [500.0, 200.0], [[2.0, 1.0], [2.0, 1.0]]), "window hours"),
        (lambda r: nulled(r, [10.0, 20.0], [200.0], [[1.0, 2.0]]), "falling"),
        (lambda r: nulled(r, [10.0, 20.0], [200.0, 500.0], [[2.0, 1.0], [2.5, 1.0]]), "falling"),
        (lambda r: nulled(r, [10.0, 20.0], [200.0], [[np.nan, 0.5]]), "falling"),
    ],
)
def test_a_reference_that_makes_no_sense_says_what(reference: DriftReference, spoil, found: str) -> None:  # type: ignore[no-untyped-def]
    """The manifest pins the file's bytes; these are what a wrong writer could still pin."""
    problems = spoil(reference).problems()
    assert len(problems) == 1 and found in problems[0], problems


def test_a_channel_no_model_reads_is_not_watched_for_drift() -> None:
    """EtCO2, never measured in set A and read by no model, had a training rate of 0 in the reference:
    a ward charting capnography was called drifted for good (measured PSI 2.0 against a cut-off of
    0.9), its alert firing for a channel no model sees."""
    from vigil.models.bundle import STEPPING_DIR
    from vigil.models.drift import REFERENCE_FILE, DriftMonitor, DriftReference
    from vigil.models.stay_features import TREE_FEATURES
    from vigil.schemas.codes import DYNAMIC_CODES

    reference = DriftReference.load(STEPPING_DIR / REFERENCE_FILE)
    assert "EtCO2" in reference.variables  # the shipped file still lists it
    monitor = DriftMonitor.for_inputs(reference, DYNAMIC_CODES, TREE_FEATURES, min_hours=10, min_patients=1)
    assert "EtCO2" not in monitor.reference.variables
    assert len(monitor.reference.measured_share) == len(monitor.reference.variables) == len(reference.variables) - 1
    rows = np.full((40, len(DYNAMIC_CODES)), np.nan)
    rows[:, DYNAMIC_CODES.index("HR")] = 80.0
    rows[:, DYNAMIC_CODES.index("EtCO2")] = 35.0  # charted every hour
    feats = np.zeros((40, len(TREE_FEATURES)), np.float32)
    monitor.observe(["icu-capno"] * 40, rows, feats, np.arange(40) % 4)
    (report,) = monitor.reports(["icu-capno"])
    assert "EtCO2" not in report.rate_psi
