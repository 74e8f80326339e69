"""The stream's stepping (``models.stream_step.advance``): batches (window + carry through bytes,
provisional and final scores, the one-step graph run with IOBinding) equal ``vigil predict``'s
offline stepping of the bundle on every closed hour; late events replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from stepbundle import STATIC, build_test_bundle
from synthetic import synthetic_stay

from vigil.models.bundle import SteppingBundle, load_stepping_bundle
from vigil.models.site_threshold import Site
from vigil.models.stay_features import SEQUENCE_INPUTS_V1
from vigil.models.step_session import StepSession
from vigil.models.stepping import StayCarry, window_rows
from vigil.models.stream_step import StepRequest, advance, carries_without_models, load_served_bundle
from vigil.models.window import PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MODELS = ("sepsis_diagnosis", "deterioration", "combined")


@pytest.fixture(scope="module", params=["v2", "v1"])
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A bundle whose GRU reads every sequence input (2.6's), and one that reads 2.0-2.5's subset."""
    inputs = SEQUENCE_INPUTS_V1 if request.param == "v1" else None
    return build_test_bundle(tmp_path_factory.mktemp("bundle"), sequence_inputs=inputs)


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path) -> SteppingBundle:
    return load_stepping_bundle(bundle_dir, prefer_gpu=False)


def run(bundle: SteppingBundle, requests: list[StepRequest]):  # type: ignore[no-untyped-def]
    return advance(bundle, StepSession(bundle.step_session, bundle.hidden), requests)


def stay(seed: int, hours: int) -> np.ndarray:
    rows = synthetic_stay(np.random.default_rng(seed), hours)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    empty = np.isnan(rows).all(1)
    rows[empty, DYNAMIC_CODES.index("HR")] = 80.0  # the stream learns of an hour from an event in it
    return rows


def events(rows: np.ndarray, hour: int, pid: str = "p") -> list[PatientEvent]:
    return [
        PatientEvent(
            patient_id=pid,
            observed_at=T0 + timedelta(hours=hour, minutes=int(j)),
            kind="vital" if j < 8 else "lab",
            code=DYNAMIC_CODES[j],
            value=float(rows[hour, j]),
        )
        for j in np.nonzero(~np.isnan(rows[hour]))[0]
    ]


class Stream:
    """The worker's cycle for many patients: load window + carry bytes, apply a batch, advance every
    touched patient in one call, keep the scores, save both blobs."""

    def __init__(self, bundle: SteppingBundle) -> None:
        self.bundle = bundle
        self.blobs: dict[str, tuple[bytes, bytes]] = {}
        self.provisional: dict[tuple[str, int], list[dict[str, float]]] = {}
        self.final: dict[tuple[str, int], dict[str, float]] = {}
        self.restarts = 0

    def batch(self, evs: list[PatientEvent]) -> None:
        pids = list(dict.fromkeys(e.patient_id for e in evs))
        windows, carries = {}, {}
        for pid in pids:
            w_blob, c_blob = self.blobs.get(pid, (b"", b""))
            windows[pid], carries[pid] = PatientWindow.from_bytes(w_blob), StayCarry.from_bytes(c_blob)
            for k, v in STATIC.items():
                windows[pid].static[k] = (v, 0)
        for e in evs:
            windows[e.patient_id].apply(e)
        requests = []
        for pid in pids:
            rows, last, changed = window_rows(windows[pid], carries[pid])
            requests.append(StepRequest(carries[pid], rows, last, STATIC, changed))
        for pid, out in zip(pids, run(self.bundle, requests), strict=True):
            for h in out.closed:
                assert (pid, h.hour) not in self.final, "an hour is finalized once"
                self.final[(pid, h.hour)] = {m.model: m.probability for m in h.models}
            probs = {m.model: m.probability for m in out.current.models}
            self.provisional.setdefault((pid, out.current.hour), []).append(probs)
            self.restarts += out.restarted
            self.blobs[pid] = (windows[pid].to_bytes(), out.carry.to_bytes())


def offline(bundle: SteppingBundle, rows: np.ndarray, static: dict[str, float] = STATIC) -> dict[str, np.ndarray]:
    """Each model's offline score of every hour (``vigil predict``'s), by model name."""
    risk = bundle.stay_risks([rows], [static])[0]
    return {"sepsis_diagnosis": risk.diagnosis, "deterioration": risk.deterioration, "combined": risk.combined}


def split_hourly(rows: np.ndarray, rng: np.random.Generator, pid: str = "p") -> list[list[PatientEvent]]:
    """Each hour's events in one to three batches (shuffled): provisional scores inside the hour."""
    out = []
    for h in range(len(rows)):
        ev = events(rows, h, pid)
        rng.shuffle(ev)
        cuts = sorted(set(rng.integers(1, len(ev) + 1, size=2).tolist()) | {len(ev)})
        out += [ev[a:b] for a, b in zip([0, *cuts], cuts, strict=False) if b > a]
    return out


@pytest.mark.parametrize("hours", [3, 48, 49, 130])
def test_final_scores_equal_offline_on_every_closed_hour(bundle: SteppingBundle, hours: int) -> None:
    rows = stay(hours, hours)
    stream = Stream(bundle)
    for b in split_hourly(rows, np.random.default_rng(hours)):
        stream.batch(b)
    want = offline(bundle, rows)
    assert sorted(h for _, h in stream.final) == list(range(hours - 1))  # every hour but the open one
    for (_, h), got in stream.final.items():
        for m in MODELS:
            assert abs(got[m] - want[m][h]) <= 1e-5, (m, h)
    last = stream.provisional[("p", hours - 1)][-1]  # the open hour: its newest provisional score
    for m in MODELS:
        assert abs(last[m] - want[m][hours - 1]) <= 1e-5


def test_events_of_several_hours_in_one_batch_finalize_each_hour(bundle: SteppingBundle) -> None:
    rows = stay(5, 20)
    stream = Stream(bundle)
    stream.batch(events(rows, 0))
    stream.batch([e for h in range(1, 6) for e in events(rows, h)])  # a backlog: hours 1..5 at once
    want = offline(bundle, rows)
    assert sorted(h for _, h in stream.final) == [0, 1, 2, 3, 4]
    for (_, h), got in stream.final.items():
        assert abs(got["combined"] - want["combined"][h]) <= 1e-5


def test_late_event_in_a_closed_hour_replays_from_the_boundary(bundle: SteppingBundle) -> None:
    rows = stay(21, 100)
    stream = Stream(bundle)
    batches = split_hourly(rows, np.random.default_rng(0))
    late = PatientEvent(
        patient_id="p", observed_at=T0 + timedelta(hours=65, minutes=59), kind="lab", code="TroponinI", value=7.0
    )
    at = next(i for i, b in enumerate(batches) if b[0].observed_at >= T0 + timedelta(hours=80))
    batches.insert(at, [late])
    for b in batches:
        stream.batch(b)
    changed = rows.copy()
    changed[65, DYNAMIC_CODES.index("TroponinI")] = 7.0
    want = offline(bundle, changed)
    before = offline(bundle, rows)
    for h in range(80, 99):  # from the late arrival on, the stream knows what offline knows
        assert abs(stream.final[("p", h)]["combined"] - want["combined"][h]) <= 1e-5
    assert abs(want["combined"][90] - before["combined"][90]) > 1e-6, "the late value must matter"
    assert abs(stream.final[("p", 70)]["combined"] - before["combined"][70]) <= 1e-5  # finals are not rewritten


def test_many_patients_in_one_batch_equal_one_at_a_time(bundle: SteppingBundle) -> None:
    stays = {f"p{i}": stay(40 + i, n) for i, n in enumerate((3, 50, 75))}
    together, alone = Stream(bundle), Stream(bundle)
    for h in range(75):
        evs = [e for pid, r in stays.items() if h < len(r) for e in events(r, h, pid)]
        together.batch(evs)
        for pid in {e.patient_id for e in evs}:
            alone.batch([e for e in evs if e.patient_id == pid])
    assert together.final.keys() == alone.final.keys()
    for key, got in together.final.items():
        assert abs(got["combined"] - alone.final[key]["combined"]) <= 1e-5


def test_a_new_bundle_restarts_the_state_another_sequence_model_carried(bundle: SteppingBundle, tmp_path: Path) -> None:
    """A worker upgraded to a bundle with another GRU of the same size must not step the old GRU's
    carried state: the carry names its writer, the new model replays the window from a zero state.
    Within the window's first 48 hours that is exactly the new bundle's offline score."""
    other = load_stepping_bundle(
        build_test_bundle(tmp_path / "other", seed=1, sequence_inputs=bundle.manifest["sequence_inputs"]),
        prefer_gpu=False,
    )
    assert other.state_tag != bundle.state_tag and other.hidden == bundle.hidden
    rows = stay(31, 40)
    stream = Stream(bundle)
    batches = split_hourly(rows, np.random.default_rng(31))
    switch = next(i for i, b in enumerate(batches) if b[0].observed_at >= T0 + timedelta(hours=30))
    for b in batches[:switch]:
        stream.batch(b)
    assert StayCarry.from_bytes(stream.blobs["p"][1]).model == bundle.state_tag
    stream.bundle = other
    for b in batches[switch:]:
        stream.batch(b)
    assert stream.restarts == 1  # the first batch after the change; the carries after it are its own
    assert StayCarry.from_bytes(stream.blobs["p"][1]).model == other.state_tag
    old, new = offline(bundle, rows), offline(other, rows)
    for h in range(29, 39):  # finalized by the new bundle
        for m in MODELS:
            assert abs(stream.final[("p", h)][m] - new[m][h]) <= 1e-5, (m, h)
    assert max(abs(new["deterioration"][h] - old["deterioration"][h]) for h in range(29, 39)) > 1e-3


def test_a_recurrent_bundle_replays_the_window_when_a_carry_has_no_state(bundle: SteppingBundle) -> None:
    """Rolling back from a window model (2.5's attention encoder carries no state) to a recurrent one:
    the hours already final are not stepped from nothing at the newest hour but replayed from the
    boundary, so the scores equal offline while the stay is within the window."""
    rows = stay(32, 45)
    stream = Stream(bundle)
    for h in range(30):
        stream.batch(events(rows, h))
    window_blob, carry_blob = stream.blobs["p"]
    written = StayCarry.from_bytes(carry_blob)
    assert written.closed == 28 and written.h_closed is not None
    stream.blobs["p"] = (window_blob, StayCarry(written.boundary, written.agg, None, written.closed, None).to_bytes())
    for h in range(30, 45):
        stream.batch(events(rows, h))
    want = offline(bundle, rows)
    for h in range(29, 44):
        assert abs(stream.final[("p", h)]["deterioration"] - want["deterioration"][h]) <= 1e-5, h
    assert stream.restarts == 0  # nothing was dropped: there was nothing to step


def test_after_a_bundle_change_past_the_window_the_trees_are_exact(bundle: SteppingBundle, tmp_path: Path) -> None:
    """Past the window the new GRU cannot see the hours it never stepped, so its score is approximate
    until the stay ends (docs/operations.md); the trees and the published hours are not affected."""
    other = load_stepping_bundle(
        build_test_bundle(tmp_path / "other", seed=1, sequence_inputs=bundle.manifest["sequence_inputs"]),
        prefer_gpu=False,
    )
    rows = stay(33, 110)
    stream = Stream(bundle)
    for h in range(90):
        stream.batch(events(rows, h))
    stream.bundle = other
    for h in range(90, 110):
        stream.batch(events(rows, h))
    assert stream.restarts == 1
    want = offline(other, rows)
    assert sorted(h for _, h in stream.final) == list(range(109))
    for h in range(89, 109):
        assert abs(stream.final[("p", h)]["sepsis_diagnosis"] - want["sepsis_diagnosis"][h]) <= 1e-5, h


def test_a_batch_the_models_failed_on_keeps_the_hours_that_left_the_window(bundle: SteppingBundle) -> None:
    """The worker saves ``carries_without_models`` beside the advanced window when the models fail: the
    stored carry lost the hours leaving the window, and every later hour's counts since admission were
    one short (227 of 229 hours off on a 330-hour stay)."""
    rows = stay(34, 120)
    stream = Stream(bundle)
    for h in range(100):
        stream.batch(events(rows, h))
    w_blob, c_blob = stream.blobs["p"]
    window, carry = PatientWindow.from_bytes(w_blob), StayCarry.from_bytes(c_blob)
    for e in events(rows, 100):
        window.apply(e)
    assert window.evicted  # hour 52 leaves the window in this batch
    got, last, changed = window_rows(window, carry)
    (kept,) = carries_without_models([StepRequest(carry, got, last, STATIC, changed)], None, bundle.sequence_columns)
    assert kept.boundary > carry.boundary and kept.closed == carry.closed
    whole = Stream(bundle)  # the same batches, the models never failing
    for h in range(101):
        whole.batch(events(rows, h))
    advanced = StayCarry.from_bytes(whole.blobs["p"][1])
    assert (kept.boundary, kept.agg.to_bytes()) == (advanced.boundary, advanced.agg.to_bytes())
    stream.blobs["p"] = (window.to_bytes(), kept.to_bytes())  # hour 100: rule scores only
    for h in range(101, 120):
        stream.batch(events(rows, h))
    want = offline(bundle, rows)
    assert ("p", 100) in stream.final  # finalized by the next batch, as it was never final
    for h in range(100, 119):
        assert abs(stream.final[("p", h)]["sepsis_diagnosis"] - want["sepsis_diagnosis"][h]) <= 1e-5, h


def test_scores_carry_tree_explanations(bundle: SteppingBundle) -> None:
    rows = stay(3, 10)
    stream = Stream(bundle)
    for h in range(10):
        stream.batch(events(rows, h))
    req = StepRequest(StayCarry(), rows, 9, STATIC, None)
    (out,) = run(bundle, [req])
    diag = next(m for m in out.current.models if m.model == "sepsis_diagnosis")
    assert diag.top_features and all(f.feature in bundle.manifest["tree_features"] for f in diag.top_features)
    assert [h.hour for h in out.closed] == list(range(9)) and len(out.closed_rows) == 9


def test_served_bundle_loads_and_steps() -> None:
    """Whatever bundle the worker serves (the shipped stepping bundle or the stop-gap) loads and scores."""
    served = load_served_bundle(prefer_gpu=False)
    rows = stay(9, 30)
    risk = served.stay_risks([rows], [STATIC])[0]
    assert risk.combined.shape == (30,) and np.all((risk.combined >= 0) & (risk.combined <= 1))
    (out,) = run(served, [StepRequest(StayCarry(), rows, 29, STATIC, None)])
    assert abs(out.current.models[2].probability - risk.combined[29]) <= 1e-5
    assert (served.artifacts_dir / "training_reference.json").exists()


def test_a_sites_threshold_is_the_one_every_published_combined_score_carries() -> None:
    """VIGIL_SITE__SEPSIS_PREVALENCE moves the threshold the alert agent reads off each score."""
    shipped = load_served_bundle(prefer_gpu=False)
    site = load_served_bundle(prefer_gpu=False, site=Site(0.03))
    assert site.combined_threshold > shipped.combined_threshold
    assert site.alert_threshold.rule == "site_prevalence" and shipped.alert_threshold.rule == "shipped"
    # read with a mean risk as low (in odds) as the prevalence: the model already moved, no correction
    # beyond set A's own best threshold (2.4's default without site settings is a higher hedge)
    m0 = shipped.alert_threshold.training_mean_risk
    assert m0 is not None
    moved = load_served_bundle(prefer_gpu=False, site=Site(0.03, None, m0 * (0.03 / 0.97) / (0.088 / 0.912)))
    assert moved.alert_threshold.rule == "site_prevalence_and_risk"
    set_a_best = shipped.manifest["models"]["combined"]["set_a_best_threshold"]
    assert moved.combined_threshold == pytest.approx(set_a_best, rel=0.05)
    request = StepRequest(StayCarry(), stay(9, 30), 29, STATIC, None)
    (a,), (b,) = run(shipped, [request]), run(site, [request])
    ca = next(m for m in a.current.models if m.model == "combined")
    cb = next(m for m in b.current.models if m.model == "combined")
    assert ca.probability == cb.probability  # the same risk, alerted at another level
    assert (ca.threshold, cb.threshold) == (shipped.combined_threshold, site.combined_threshold)
    assert cb.positive == (cb.probability >= site.combined_threshold)
    assert shipped.manifest["models"]["combined"]["threshold"] == shipped.alert_threshold.shipped_threshold
