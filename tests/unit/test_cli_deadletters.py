"""``vigil deadletters`` against a broker stand-in: what ``replay`` records as replayed (only what the
broker acknowledged), and what ``ls`` lists (the newest letters, unreadable ones counted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
from rich.console import Console

from vigil.cli.main import main
from vigil.infra.deadletters import Replayed, parse_letter, replay_record
from vigil.schemas import topics
from vigil.schemas.deadletter import REPLAY_HEADER, DeadLetter, Rejected, Source

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def record(offset: int, at: datetime = AT, reason: str = "unknown_code", **fields: Any) -> bytes:
    """A letter's record; ``fields`` replace what ``DeadLetter.of`` wrote (a ``detail`` as an older
    version wrote it, before details were escaped)."""
    original = json.dumps({"event_id": f"e{offset}", "patient_id": "p1"}).encode()
    rejected = Rejected(reason, "x").at(Source(topics.EVENTS_RAW, 0, offset, b"p1", original))
    return DeadLetter.of(rejected, at).model_copy(update=fields).model_dump_json().encode()


class Sent:
    """What kafka-python's ``send`` returns: ``get`` raises what the broker said of the record."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class Broker:
    """A producer whose broker refuses the records of ``refuse`` (by their letter's offset) and whose
    client raises ``raise_at`` outright (as kafka-python does when it has no metadata)."""

    def __init__(self, refuse: tuple[int, ...] = (), raise_at: int | None = None) -> None:
        self.refuse, self.raise_at = refuse, raise_at
        self.sent: list[int] = []  # the letters' offsets the broker has
        self.audit: list[dict[str, Any]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"", headers: Any = None) -> Sent:
        if topic == topics.AUDIT:
            self.audit.append(json.loads(value))
            return Sent(None)
        offset = int(dict(headers)[REPLAY_HEADER].decode().rsplit("/", 1)[1])
        if offset == self.raise_at:
            raise KafkaTimeoutError("Failed to update metadata after 60.0 secs.")
        if offset in self.refuse:
            return Sent(TopicAuthorizationFailedError())  # flush() does not raise for it
        self.sent.append(offset)
        return Sent(None)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def run(
    monkeypatch, capsys, args: list[str], letters: list[tuple[int, int, bytes]], broker: Broker | None = None
) -> tuple[int, str, str]:
    import vigil.cli.deadletters as cli
    import vigil.infra.connect as connect
    import vigil.infra.deadletters as dl

    items = [parse_letter(p, o, b"p1", value) for p, o, value in letters]
    monkeypatch.setattr(cli, "_letters", lambda bootstrap: (None, iter(items)))
    audit = broker.audit if broker is not None else []
    monkeypatch.setattr(dl, "read_replayed", lambda settings: Replayed.from_records(audit))
    monkeypatch.setattr(connect, "kafka_producer", lambda settings, **kw: broker)
    monkeypatch.setenv("COLUMNS", "200")
    # the module's console took its width when first imported, by whichever test ran first
    monkeypatch.setattr(cli, "console", Console(width=200))
    with pytest.raises(SystemExit) as done:
        main(["deadletters", *args])
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_a_replay_records_only_what_the_broker_acknowledged(monkeypatch, capsys) -> None:
    """flush() does not raise for a refused record: every letter was recorded as replayed, and a
    refused one was skipped by every later replay, never sent."""
    broker = Broker(refuse=(6,))
    letters = [(0, o, record(o)) for o in (5, 6, 7)]
    code, out, err = run(monkeypatch, capsys, ["replay", "--reason", "unknown_code", "--json"], letters, broker)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in out + err
    assert "refused 1 letter(s)" in err and "TopicAuthorizationFailedError" in err and "2 delivered" in err
    assert json.loads(out.splitlines()[-1])["ok"] is False
    assert broker.sent == [5, 7] and [r["letters"] for r in broker.audit] == [{"0": [[5, 5], [7, 7]]}]
    # the next run sends the refused letter, and only it
    broker.refuse = ()
    code, out, _ = run(monkeypatch, capsys, ["replay", "--reason", "unknown_code", "--json"], letters, broker)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["sent"] == 1 and summary["skipped"] == {"replayed_before": 2}
    assert broker.sent == [5, 7, 6]


def test_a_send_the_client_refuses_stops_the_replay_and_records_what_was_delivered(monkeypatch, capsys) -> None:
    broker = Broker(raise_at=6)
    letters = [(0, o, record(o)) for o in (5, 6, 7)]
    code, _, err = run(monkeypatch, capsys, ["replay", "--reason", "unknown_code"], letters, broker)
    assert code == 2 and err.count("\n") == 1 and "KafkaTimeoutError" in err and "not sent" in err
    assert broker.sent == [5] and [r["letters"] for r in broker.audit] == [{"0": [[5, 5]]}]


def test_a_replay_the_broker_takes_whole_is_recorded_whole(monkeypatch, capsys) -> None:
    broker = Broker()
    letters = [(0, o, record(o)) for o in (5, 6, 7)] + [(0, 8, record(8, reason="duplicate"))]
    code, out, _ = run(monkeypatch, capsys, ["replay", "--reason", "unknown_code", "--json"], letters, broker)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["sent"] == 3 and summary["audited"] and summary["matched"] == 3
    assert [r["letters"] for r in broker.audit] == [{"0": [[5, 7]]}]


def test_ls_lists_the_newest_letters_by_time_not_the_last_read(monkeypatch, capsys) -> None:
    """The topic is read partition after partition: the last letters read were those of the last
    partition, however old, and ``newest`` listed them."""
    newer = [(0, o, record(o, AT + timedelta(hours=o))) for o in (1, 2, 3)]
    older = [(1, o, record(o, AT - timedelta(days=1) + timedelta(minutes=o))) for o in (1, 2, 3)]
    code, out, _ = run(monkeypatch, capsys, ["ls", "--limit", "2", "--json"], newer + older)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["dead_letters"] == 6
    assert [(r["partition"], r["offset"]) for r in summary["newest"]] == [(0, 2), (0, 3)]  # oldest first
    code, out, _ = run(monkeypatch, capsys, ["ls", "--limit", "0", "--json"], newer + older)
    assert json.loads(out.splitlines()[-1])["newest"] == []


def test_a_letter_whose_copy_is_not_base64_is_counted_unreadable(monkeypatch, capsys) -> None:
    """It validated, and reading its original raised binascii.Error: "unexpected Error", exit 1,
    and none of the letters after it listed or replayed."""
    broken = json.loads(record(2))
    broken["original_b64"] = "abc"
    letters = [(0, 1, record(1)), (0, 2, json.dumps(broken).encode()), (0, 3, record(3))]
    code, out, err = run(monkeypatch, capsys, ["ls", "--json"], letters)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and not err and summary["by_reason"] == {"unknown_code": 2, "unreadable": 1}
    broker = Broker()
    code, out, _ = run(monkeypatch, capsys, ["replay", "--reason", "unknown_code", "--json"], letters, broker)
    assert code == 0 and broker.sent == [1, 3]


def test_ls_says_what_a_replay_would_send_and_which_letters_came_back_from_one(monkeypatch, capsys) -> None:
    broker = Broker()
    broker.audit = replay_record([(0, 1)], ["unknown_code"])
    letters = [(0, 1, record(1)), (0, 2, record(2)), (0, 3, record(3, replay_of="vigil.deadletter/0/1"))]
    code, out, _ = run(monkeypatch, capsys, ["ls", "--json"], letters, broker)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["replayable"] == {"unknown_code": 2} and summary["refused_after_replay"] == 1
    rows = {r["offset"]: r for r in summary["newest"]}
    assert rows[1]["replay"] == "no: replayed_before" and rows[3]["replay_of"] == "vigil.deadletter/0/1"


def test_ls_never_writes_a_letters_control_characters_to_the_terminal(monkeypatch, capsys) -> None:
    """A letter written before details were escaped carries the sender's text as it came (an unknown
    field's name, a FHIR resourceType): rich passes ESC and newlines, and ``ls`` retitled and cleared
    the operator's terminal. Printable text (an accented unit's name) reads as it was."""
    raw = record(1, detail="\x1b]0;OWNED\x07\x1b[2J\x1b[H: Extra inputs are not permitted")
    forged_line = record(2, reason="schema", detail="x\n12-05 08:00:00  fake line", source_topic="http:/fhir/\x1b[41m")
    accented = record(3, detail="code 'Fréquence' from Unité Zürich is not mapped")
    code, out, _ = run(monkeypatch, capsys, ["ls"], [(0, 1, raw), (0, 2, forged_line), (0, 3, accented)])
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    lines = out.splitlines()
    assert any("\\x1b]0;OWNED\\x07\\x1b[2J" in line for line in lines)
    assert any("http:/fhir/\\x1b[41m 0/2" in line and "x\\n12-05 08:00:00  fake line" in line for line in lines)
    assert not any(line.startswith("12-05 08:00:00  fake line") for line in lines)
    assert any("code 'Fréquence' from Unité Zürich is not mapped" in line for line in lines)


def test_ls_says_each_letters_size(monkeypatch, capsys) -> None:
    """docs/operations.md and ``ls --help`` promised the size on each line; only --json had it."""
    small, large = record(1), record(2)
    large = DeadLetter.model_validate_json(large).model_copy(update={"original_size": 1234}).model_dump_json().encode()
    code, out, _ = run(monkeypatch, capsys, ["ls"], [(0, 1, small), (0, 2, large)])
    lines = out.splitlines()
    size = len(json.dumps({"event_id": "e1", "patient_id": "p1"}))
    assert code == 0 and f" {size} B " in lines[0] and " 1.2 KiB " in lines[1]
    from vigil.cli.deadletters import size_text

    assert [size_text(n) for n in (0, 1023, 1024, 96 * 1024, 3 * 1024 * 1024 + 400_000, None)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "96.0 KiB",
        "3.4 MiB",
        "?",
    ]


def test_a_topic_created_again_does_not_pass_its_new_letters_for_replayed_ones(monkeypatch, capsys) -> None:
    """An audit record names letters by partition and offset. vigil.deadletter deleted and created
    again starts its offsets at 0: its new letters at the places last week's replay named were skipped
    as replayed_before, and ``ls`` said no replay would send them, though none ever had."""
    last_week = AT - timedelta(days=7)
    broker = Broker()
    broker.audit = replay_record([(0, 1), (0, 2), (0, 3)], ["unknown_code"], at=last_week)
    sent_then = [(0, 1, record(1, at=last_week - timedelta(hours=1)))]  # still on the topic: it was sent
    letters = sent_then + [(0, o, record(o)) for o in (2, 3)]  # written since, at the old places
    code, out, _ = run(monkeypatch, capsys, ["ls", "--json"], letters, broker)
    rows = {r["offset"]: r["replay"] for r in json.loads(out.splitlines()[-1])["newest"]}
    assert code == 0 and rows == {1: "no: replayed_before", 2: "vigil.events.raw", 3: "vigil.events.raw"}
    code, out, _ = run(monkeypatch, capsys, ["replay", "--reason", "unknown_code", "--json"], letters, broker)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["sent"] == 2 and summary["skipped"] == {"replayed_before": 1}
    assert broker.sent == [2, 3]
    # now this replay has sent them, and the next one skips all three
    code, out, _ = run(monkeypatch, capsys, ["replay", "--reason", "unknown_code", "--json"], letters, broker)
    assert json.loads(out.splitlines()[-1])["skipped"] == {"replayed_before": 3} and broker.sent == [2, 3]


def several(offset: int, *reasons: str) -> bytes:
    """The letter of one input refused for every one of ``reasons`` (``one_per_input``)."""
    from vigil.schemas.deadletter import one_per_input

    original = f"MSH|^~\\&|MON|ICU|VIGIL|H|20261205080000||ORU^R01|M{offset}|P|2.5.1\r".encode()
    one = one_per_input([Rejected(r, "x") for r in reasons]).at(Source(topics.INGEST_HL7V2, 0, offset, None, original))
    return DeadLetter.of(one, AT).model_dump_json().encode()


def test_a_replay_of_a_reason_sends_the_letters_that_carry_it_among_others(monkeypatch, capsys) -> None:
    """A letter kept only its first reason: the site's time zone fixed, ``replay --reason clock_skew``
    sent nothing of the messages whose BMI (unmapped_code) came first. A letter written before
    ``reasons`` existed (its one reason) is chosen by it as before."""
    old = json.loads(several(7, "clock_skew"))
    del old["reasons"]
    letters = [
        (0, 5, several(5, "unmapped_code", "clock_skew", "clock_skew")),
        (0, 6, several(6, "unmapped_code")),
        (0, 7, json.dumps(old).encode()),
    ]
    for reason, chosen in (("clock_skew", [5, 7]), ("unmapped_code", [5, 6])):
        broker = Broker()
        code, out, _ = run(monkeypatch, capsys, ["replay", "--reason", reason, "--json"], letters, broker)
        summary = json.loads(out.splitlines()[-1])
        assert code == 0 and summary["matched"] == 2 and broker.sent == chosen


def test_ls_counts_a_letter_under_each_reason_it_carries(monkeypatch, capsys) -> None:
    letters = [(0, 5, several(5, "unmapped_code", "clock_skew")), (0, 6, several(6, "unmapped_code"))]
    code, out, _ = run(monkeypatch, capsys, ["ls", "--json"], letters)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["dead_letters"] == 2
    assert summary["by_reason"] == {"unmapped_code": 2, "clock_skew": 1}  # as vigil_dead_letters_total counts
    assert [(r["reason"], r["reasons"]) for r in summary["newest"]] == [
        ("clock_skew", ["clock_skew", "unmapped_code"]),
        ("unmapped_code", ["unmapped_code"]),
    ]
    code, out, _ = run(monkeypatch, capsys, ["ls", "--reason", "clock_skew", "--json"], letters)
    summary = json.loads(out.splitlines()[-1])
    assert summary["dead_letters"] == 1 and summary["by_reason"] == {"clock_skew": 1}
