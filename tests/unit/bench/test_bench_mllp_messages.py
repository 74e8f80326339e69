"""The MLLP bench sends what a monitor gateway sends: each message decodes, within the intake
rules, to its six vital signs (else the bench would time dead letters, not the intake)."""

from datetime import UTC, datetime

from vigil.bench.mllp import VITALS, oru
from vigil.schemas.codecs.hl7v2 import decode_hl7v2


def test_each_bench_message_is_six_accepted_vital_signs() -> None:
    decoded = decode_hl7v2(oru("bench-p1", 7, minutes_ago=30)).checked(datetime.now(UTC))
    assert not decoded.rejected and len(decoded.events) == len(VITALS) == 6
    assert {e.patient_id for e in decoded.events} == {"bench-p1"}
