"""The ward-level drift indicator: vigil.drift records reach the ward snapshot, the page's state and
the dashboard's /metrics (vigil_drift_*)."""

from __future__ import annotations

from datetime import UTC, datetime

from web_builders import sign_in

from vigil.agents.web.ward import WardModel
from vigil.schemas import topics
from vigil.schemas.drift import DriftInput, WardDrift


def drift(ward: str, max_psi: float) -> bytes:
    return (
        WardDrift(
            ward=ward,
            at=datetime(2026, 1, 1, tzinfo=UTC),
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
