"""The ward-level drift indicator: vigil.drift records reach the ward snapshot, the page's state and
the dashboard's /metrics (vigil_drift_*)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web_builders import sign_in

from vigil.agents.web.ward import WardModel
from vigil.schemas import topics
from vigil.schemas.drift import DriftInput, WardDrift


def drift(ward: str, max_psi: float) -> bytes:
    return (
        WardDrift(
            ward=ward,
            at=datetime.now(UTC),  # just published: the board forgets a ward whose newest record is old
            patient_hours=640,
            patients=30,
            max_psi=max_psi,
            threshold=0.25,
            drifted=max_psi > 0.25,
            top=[
                DriftInput(input="Lactate", kind="measured", psi=max_psi),
                DriftInput(input="HR_last", kind="value", psi=0.05),
            ],
            reference="set A",
            model_version="test",
        )
        .model_dump_json()
        .encode()
    )


def test_newest_record_per_ward_is_the_ward_state() -> None:
    m = WardModel(b"k")
    m.apply(topics.DRIFT, drift("ICU-A", 0.4))
    message = m.apply(topics.DRIFT, drift("ICU-A", 0.08))
    m.apply(topics.DRIFT, drift("ICU-B", 0.31))
    assert message is not None and message["drift"]["ICU-A"]["drifted"] is False
    snap = m.snapshot()["drift"]
    assert [w for w, d in snap.items() if d["drifted"]] == ["ICU-B"]
    assert snap["ICU-B"]["top"][0] == {"input": "Lactate", "kind": "measured", "psi": 0.31}
    assert m.apply(topics.DRIFT, b"{not json") is None  # counted as a feed error, never raised


def test_drift_reaches_the_page_state_and_metrics(client, feed) -> None:
    feed.ingest(topics.DRIFT, drift("ICU-C", 0.52))
    sign_in(client, "ann")
    assert client.get("/api/state").json()["drift"]["ICU-C"]["max_psi"] == 0.52
    text = client.get("/metrics").text
    assert 'vigil_drift_drifted{ward="ICU-C"} 1.0' in text
    assert 'vigil_drift_psi{input="Lactate",kind="measured",ward="ICU-C"} 0.52' in text


def test_an_input_that_left_the_top_leaves_metrics_and_nan_is_refused(client, feed) -> None:
    import pytest
    from pydantic import ValidationError

    first = WardDrift.model_validate_json(drift("ICU-D", 1.5))
    feed.ingest(topics.DRIFT, first.model_dump_json().encode())
    calmer = first.model_copy(
        update={"max_psi": 0.3, "drifted": False, "top": [DriftInput(input="Temp", kind="value", psi=0.3)]}
    )
    feed.ingest(topics.DRIFT, calmer.model_dump_json().encode())
    sign_in(client, "ann")
    text = client.get("/metrics").text
    assert 'vigil_drift_psi{input="Temp",kind="value",ward="ICU-D"} 0.3' in text
    assert 'input="Lactate",kind="measured",ward="ICU-D"' not in text  # its 1.5 stood above the ward's max
    with pytest.raises(ValidationError):
        WardDrift.model_validate_json(drift("ICU-E", 0.2).replace(b'"max_psi":0.2', b'"max_psi":NaN'))


def test_a_ward_no_worker_reports_any_more_leaves_the_board_and_its_metrics() -> None:
    """A worker drops a ward's series when the ward falls below its gate, and a worker scaled away
    takes its series with it; the dashboard's mirror of its last record said "drifted" for good (and
    paged: the rule took the largest over every job). A ward whose newest record is older than
    ``stale_after_s`` (ten publish intervals; workers say a ward they judge again every four) goes."""
    from datetime import timedelta

    from prometheus_client import REGISTRY

    from vigil.agents.web.drift import WardDriftBoard

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    old = WardDrift.model_validate_json(drift("ICU-GONE", 2.5)).model_copy(
        update={"at": now - timedelta(hours=1), "threshold": 1.74}
    )
    fresh = WardDrift.model_validate_json(drift("ICU-HERE", 0.1)).model_copy(update={"at": now})
    board = WardDriftBoard(clock=now.timestamp)  # the settings' 300 s
    board.apply(old.model_copy(update={"at": now}))
    assert REGISTRY.get_sample_value("vigil_drift_threshold", {"ward": "ICU-GONE"}) == 1.74  # PSI against it
    later = WardDriftBoard(clock=lambda: now.timestamp() + 3600)
    later.apply(old.model_copy(update={"at": now + timedelta(minutes=59)}))
    message = later.apply(fresh.model_copy(update={"at": now + timedelta(hours=1)}))
    assert list(message["drift"]) == ["ICU-GONE", "ICU-HERE"]  # a minute old: still reported
    stale = WardDriftBoard(clock=lambda: now.timestamp() + 3600)
    stale.apply(old)
    assert list(stale.apply(fresh.model_copy(update={"at": now + timedelta(hours=1)}))["drift"]) == ["ICU-HERE"]
    assert stale.snapshot() == {"ICU-HERE": stale.snapshot()["ICU-HERE"]}
    for name in ("vigil_drift_drifted", "vigil_drift_max_psi", "vigil_drift_threshold", "vigil_drift_patient_hours"):
        assert REGISTRY.get_sample_value(name, {"ward": "ICU-GONE"}) is None, name
    assert (
        REGISTRY.get_sample_value("vigil_drift_psi", {"ward": "ICU-GONE", "kind": "measured", "input": "Lactate"})
        is None
    )


def test_the_dashboard_forgets_a_ward_an_hour_after_its_last_record(client, feed) -> None:  # type: ignore[no-untyped-def]
    """The board as the dashboard builds it (no arguments: the settings' interval, the wall clock)."""
    from datetime import timedelta

    gone = WardDrift.model_validate_json(drift("ICU-F", 2.5)).model_copy(
        update={"at": datetime.now(UTC) - timedelta(hours=1), "drifted": True}
    )
    feed.ingest(topics.DRIFT, gone.model_dump_json().encode())
    sign_in(client, "ann")
    assert "ICU-F" not in client.get("/api/state").json()["drift"]
    assert 'vigil_drift_drifted{ward="ICU-F"}' not in client.get("/metrics").text


def test_a_ward_that_fell_silent_leaves_open_pages_and_metrics_on_a_timer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Forgotten only when a record came or the board was read: an open page, whose quiet stream only
    pinged, kept the ward's "drifted" header for good, and /metrics its series until a page loaded (a
    page loaded meanwhile forgot the ward for itself alone). The feed forgets it on a timer and tells
    every open page."""
    import asyncio

    from prometheus_client import REGISTRY

    from vigil.agents.web import feed as feed_module
    from vigil.agents.web.drift import WardDriftBoard
    from vigil.agents.web.feed import WardFeed
    from vigil.infra.settings import Settings

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    clock = [now.timestamp()]
    monkeypatch.setattr(feed_module, "DRIFT_EXPIRE_EVERY_S", 0.05)
    record = WardDrift.model_validate_json(drift("ICU-QUIET", 2.5)).model_copy(update={"at": now})

    async def run() -> tuple[list[dict], dict, float | None]:
        feed = WardFeed(Settings())
        feed.model.drift = WardDriftBoard(stale_after_s=300, clock=lambda: clock[0])
        feed.start(asyncio.get_running_loop())
        page = feed.subscribe()
        feed.ingest(topics.DRIFT, record.model_dump_json().encode())
        await asyncio.sleep(0.2)  # timers run: the ward is a minute old at most, kept
        clock[0] += 301  # no worker reports the ward any more
        loaded = feed.state()["drift"]  # a page loaded now does not show it...
        series = REGISTRY.get_sample_value("vigil_drift_drifted", {"ward": "ICU-QUIET"})  # the timer drops it
        await asyncio.sleep(0.2)
        feed.stop()
        heard = []
        while not page.empty():
            heard.append(page.get_nowait())
        return heard, loaded, series

    heard, loaded, series = asyncio.run(run())
    assert loaded == {} and series == 1.0
    assert [list(m["drift"]) for m in heard if m is not None] == [["ICU-QUIET"], []]  # ...and the open page is told
    assert REGISTRY.get_sample_value("vigil_drift_drifted", {"ward": "ICU-QUIET"}) is None
    assert REGISTRY.get_sample_value("vigil_drift_max_psi", {"ward": "ICU-QUIET"}) is None


def test_two_workers_shares_of_one_ward_show_the_drifted_one_not_the_last_said() -> None:
    """Each worker judges the patients of its own partitions and says its share of the ward again every
    two minutes: kept as the ward's one state, the shares took turns, "drifted" then not, on the page
    and in the dashboard's gauge (while the workers' alert, the largest over them, stayed firing)."""
    from prometheus_client import REGISTRY

    from vigil.agents.web.drift import WardDriftBoard

    now = datetime.now(UTC)
    board = WardDriftBoard(stale_after_s=300, clock=now.timestamp)
    base = WardDrift.model_validate_json(drift("ICU-SHARED", 0.1)).model_copy(update={"at": now})
    drifted = base.model_copy(update={"worker": "w1:1", "max_psi": 2.5, "threshold": 1.7, "drifted": True})
    calm = base.model_copy(update={"worker": "w2:2", "max_psi": 0.1, "threshold": 1.7, "drifted": False})
    for _ in range(3):  # restated in turns
        for record in (drifted, calm):
            shown = board.apply(record)["drift"]["ICU-SHARED"]
            assert shown["drifted"] is True and shown["max_psi"] == 2.5
            assert REGISTRY.get_sample_value("vigil_drift_drifted", {"ward": "ICU-SHARED"}) == 1.0
    # the drifted worker's share goes stale (its worker scaled away): the calm share is the ward now
    later = WardDriftBoard(stale_after_s=300, clock=lambda: now.timestamp() + 400)
    later.apply(drifted)
    assert (
        later.apply(calm.model_copy(update={"at": now + timedelta(seconds=390)}))["drift"]["ICU-SHARED"]["drifted"]
        is False
    )
    assert REGISTRY.get_sample_value("vigil_drift_drifted", {"ward": "ICU-SHARED"}) == 0.0


def test_a_share_gone_stale_while_another_stays_is_told_to_open_pages() -> None:
    """The drifted worker's share went stale (its worker scaled away) while a calm share of the ward
    stayed: the ward was not gone, so open pages were not told, and showed "drifted" until the calm
    worker's next restatement."""
    import asyncio

    from vigil.agents.web.drift import WardDriftBoard
    from vigil.agents.web.feed import WardFeed
    from vigil.infra.settings import Settings

    now = datetime.now(UTC)
    clock = [now.timestamp()]
    base = WardDrift.model_validate_json(drift("ICU-HALF", 0.1)).model_copy(update={"at": now})
    drifted = base.model_copy(update={"worker": "w1:1", "max_psi": 2.5, "drifted": True})
    calm = base.model_copy(update={"worker": "w2:2", "at": now + timedelta(seconds=200)})

    async def run() -> tuple[list[dict], list[dict]]:
        feed = WardFeed(Settings())
        feed.model.drift = WardDriftBoard(stale_after_s=300, clock=lambda: clock[0])
        feed.start(asyncio.get_running_loop())
        for record in (drifted, calm):
            feed.ingest(topics.DRIFT, record.model_dump_json().encode())
        page = feed.subscribe()
        clock[0] += 350  # w1's share is stale, w2's is not
        assert feed.expire_drift() == []  # the ward stays
        await asyncio.sleep(0.05)
        first = [page.get_nowait() for _ in range(page.qsize())]
        assert feed.expire_drift() == []
        await asyncio.sleep(0.05)
        second = [page.get_nowait() for _ in range(page.qsize())]
        feed.stop()
        return first, second

    first, second = asyncio.run(run())
    assert [m["drift"]["ICU-HALF"]["drifted"] for m in first] == [False]
    assert second == []  # told once
