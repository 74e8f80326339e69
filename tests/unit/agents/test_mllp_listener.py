"""The MLLP listener's answers (``agents.mllp``): AA only once the records are stored, AE with a dead
letter for what cannot be used, AR when the stream is away; over a real socket, with the publishing
replaced (the real broker is tests/integration/test_mllp.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from vigil.agents.mllp import Tally, outcome_of, serve
from vigil.infra.publish import Record
from vigil.infra.settings import MllpSettings
from vigil.schemas import topics
from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.mllp import Frame, Oversize, Stray, frame
from vigil.schemas.deadletter import DeadLetter

FIXTURES = Path(__file__).parents[1] / "codecs" / "fixtures" / "hl7v2"
ORU = (FIXTURES / "oru_r01_vitals.hl7").read_bytes()
ADT = b"MSH|^~\\&|EHR|H|VIGIL|H|20261205080000||ORM^O01|ORM1|P|2.5.1\rPID|1||77^^^H^MR\r"
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def letters(records: Sequence[Record]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v) for t, _, v in records if t == topics.DEADLETTER]


def test_a_result_message_is_accepted_with_its_events() -> None:
    out = outcome_of(Frame(ORU), 10_000, NOW)
    assert out.code == "AA" and out.events == 10  # 8 results, Age and Gender (PID-7, PID-8)
    assert out.text == "accepted 10 events, 1 part refused: unmapped_code (dead letters)"
    assert all(k == b"4420011" for t, k, _ in out.records if t == topics.EVENTS_RAW)  # keyed by patient
    (letter,) = letters(out.records)  # the part it could not map, with the whole message
    assert letter.reason == "unmapped_code" and letter.original() == ORU


def test_what_cannot_be_used_is_an_error_with_its_dead_letter() -> None:
    out = outcome_of(Frame(ADT), 10_000, NOW)
    assert out.code == "AE" and out.text.startswith("unsupported_message")
    (letter,) = letters(out.records)
    assert letter.reason == "unsupported_message" and letter.source_topic == "mllp" and letter.original() == ADT
    out = outcome_of(Oversize(b"MSH|^~\\&|A|B|C|D|x||ORU^R01|BIG1|P|2.5.1\rOBX", 9_000_000, "ab" * 32), 4096, NOW)
    assert out.code == "AE" and "9000000 bytes (limit 4096)" in out.text
    (letter,) = letters(out.records)
    assert letter.truncated and letter.original_size == 9_000_000 and letter.original_sha256 == "ab" * 32
    assert b"MSA|AE|BIG1|" in (out.answer() or b"")  # the ACK still names the message


def test_values_are_checked_as_every_intake_checks_them() -> None:
    implausible = ORU.replace(b"||118|/min", b"||1180|/min")  # a heart rate of 1180: out of range
    out = outcome_of(Frame(implausible), 10_000, NOW)
    assert out.code == "AA" and out.events == 9
    assert out.text == "accepted 9 events, 2 parts refused: unmapped_code, out_of_range (dead letters)"
    future = outcome_of(Frame(ORU), 10_000, datetime(2024, 3, 14, tzinfo=UTC))  # measured a day ahead
    assert future.code == "AE" and future.events == 0
    assert future.text == "11 parts refused: clock_skew x10, unmapped_code"  # Age, Gender at the results' time


def test_stray_bytes_are_a_dead_letter_without_an_answer() -> None:
    out = outcome_of(Stray(b"hello", 5, "00" * 32), 4096, NOW)
    assert out.code is None and out.answer() is None
    (letter,) = letters(out.records)
    assert letter.reason == "parse_error" and "outside any MLLP frame" in letter.detail


def converse(
    messages: list[bytes], publish, limits: MllpSettings | None = None, units: Units | None = None
) -> tuple[list[bytes], Tally]:  # type: ignore[no-untyped-def]
    """Send each message framed on one connection and read one ACK frame per answered message."""
    limits = limits or MllpSettings(max_message_bytes=4096)
    tally = Tally()

    async def scenario() -> list[bytes]:
        stop = asyncio.Event()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(
            serve(publish, limits, "127.0.0.1", 0, stop, tally, bound.set_result, units or Units())
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", await bound)
        answers = []
        for m in messages:
            writer.write(frame(m))
            await writer.drain()
            answers.append((await reader.readuntil(b"\x1c\r"))[1:-2])
        writer.close()
        await asyncio.sleep(0.05)
        stop.set()
        await server
        return answers

    return asyncio.run(scenario()), tally


def test_each_message_is_answered_after_its_records_are_stored() -> None:
    stored: list[Record] = []
    answers, tally = converse([ORU, ADT, b"x" * 5000, ORU], stored.extend)
    assert [a.split(b"\r")[1].split(b"|")[1] for a in answers] == [b"AA", b"AE", b"AE", b"AA"]
    assert tally.acks == {"AA": 2, "AE": 2} and tally.events == 20 and tally.dead_letters == 4
    assert sum(t == topics.EVENTS_RAW for t, _, _ in stored) == 20
    reasons = sorted(json.loads(v)["reason"] for t, _, v in stored if t == topics.DEADLETTER)
    assert reasons == ["too_large", "unmapped_code", "unmapped_code", "unsupported_message"]


def test_the_listener_counts_on_prometheus() -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("vigil_mllp_messages_total", ack="AE"), value("vigil_dead_letters_total", reason="too_large"))
    converse([b"x" * 5000, ORU], lambda records: None)
    assert value("vigil_mllp_messages_total", ack="AE") == before[0] + 1
    assert value("vigil_dead_letters_total", reason="too_large") == before[1] + 1
    assert value("vigil_mllp_connections") == 0  # closed


def test_a_message_not_stored_is_rejected_so_that_it_is_sent_again() -> None:
    def unavailable(records: Sequence[Record]) -> None:
        raise ConnectionError("broker away")

    answers, tally = converse([ORU], unavailable)
    msa = answers[0].split(b"\r")[1].split(b"|")
    assert msa[:3] == [b"MSA", b"AR", b"MSG20240315143005001"] and b"send the message again" in msa[3]
    assert tally.acks == {"AR": 1} and tally.events == 0


def test_a_strays_dead_letter_is_tried_again_and_counted_when_given_up(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Stray bytes have no answer and no sender to send them again: their dead letter was dropped at
    the first failed publish, with only a log line. It is tried again, and counted if given up."""
    from prometheus_client import REGISTRY

    from vigil.agents import mllp

    monkeypatch.setattr(mllp, "STRAY_RETRY_S", 0.0)
    stray = Stray(b"hello", 5, "00" * 32)
    calls: list[int] = []

    def flaky(records: Sequence[Record]) -> None:
        calls.append(len(records))
        if len(calls) < 3:
            raise ConnectionError("broker away")

    def lost() -> float:
        return REGISTRY.get_sample_value("vigil_mllp_unpublished_total", {"what": "stray"}) or 0.0

    before, tally = lost(), Tally()
    assert asyncio.run(mllp.handle(stray, flaky, MllpSettings(), tally)) is None
    assert len(calls) == 3 and tally.dead_letters == 1 and lost() == before  # stored at the third try

    def away(records: Sequence[Record]) -> None:
        raise ConnectionError("broker away")

    assert asyncio.run(mllp.handle(stray, away, MllpSettings(), Tally())) is None
    assert lost() == before + 1


def test_a_discharge_is_accepted_and_other_adt_is_answered_without_a_dead_letter() -> None:
    a03 = b"MSH|^~\\&|EHR|H|VIGIL|H|20261205080000||ADT^A03^ADT_A03|D1|P|2.5.1\r"
    a03 += b"EVN|A03|20261205075500\rPID|1||77^^^H^MR\r"
    out = outcome_of(Frame(a03), 10_000, NOW)
    assert out.code == "AA" and out.events == 1 and letters(out.records) == []
    ((topic, key, value),) = out.records
    assert topic == topics.EVENTS_RAW and key == b"77" and json.loads(value)["code"] == "discharge"
    assert b"ACK^A03^ACK" in (out.answer() or b"")
    a13 = a03.replace(b"ADT^A03^ADT_A03|D1", b"ADT^A13^ADT_A01|D2").replace(b"EVN|A03", b"EVN|A13")
    out = outcome_of(Frame(a13), 10_000, NOW)  # the discharge was an error: its cancel
    assert out.code == "AA" and out.events == 1 and letters(out.records) == []
    assert json.loads(out.records[0][2])["code"] == "cancel_discharge" and b"ACK^A13^ACK" in (out.answer() or b"")
    a08 = a03.replace(b"ADT^A03^ADT_A03", b"ADT^A08")
    out = outcome_of(Frame(a08), 10_000, NOW)
    assert out.code == "AA" and out.records == [] and out.text == "nothing to map: 1 part ignored: adt_not_discharge"


def test_a_transfer_out_of_the_sites_monitored_unit_is_a_transfer_out_and_without_units_ignored() -> None:
    a02 = b"MSH|^~\\&|EHR|H|VIGIL|H|20261205080000||ADT^A02^ADT_A02|T1|P|2.5.1\r"
    a02 += b"EVN|A02|20261205075500\rPID|1||77^^^H^MR\rPV1|1|I|4WEST^1|||MICU^2\r"
    out = outcome_of(Frame(a02), 10_000, NOW, Units.of(["MICU"]))
    assert out.code == "AA" and out.events == 1 and letters(out.records) == []
    assert json.loads(out.records[0][2])["code"] == "transfer_out" and b"ACK^A02^ACK" in (out.answer() or b"")
    out = outcome_of(Frame(a02), 10_000, NOW)  # the listener's default: no monitored units
    assert out.code == "AA" and out.records == [] and out.text == "nothing to map: 1 part ignored: adt_transfer"


WARD_ORU = b"MSH|^~\\&|MON|H|VIGIL|H|20261205080000||ORU^R01|W1|P|2.5.1\rPID|1||77^^^H^MR\rPV1|1|I|4WEST^1\r"
WARD_ORU += b"OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F|||20261205075500\r"


def test_a_wards_results_are_answered_aa_and_published_nowhere_where_the_site_names_its_units() -> None:
    """The sender must not resend them (AA), and nothing reaches a topic: not an event, not a dead letter."""
    oru = WARD_ORU
    out = outcome_of(Frame(oru), 10_000, NOW, Units.of(["MICU"], away=["OR"]))
    assert out.code == "AA" and out.records == [] and out.text == "nothing to map: 1 part ignored: unmonitored_unit"
    out = outcome_of(Frame(oru.replace(b"4WEST", b"micu")), 10_000, NOW, Units.of(["MICU"]))
    assert out.code == "AA" and out.events == 1 and letters(out.records) == []


def test_the_listener_counts_a_wards_results_by_unit_for_the_operator() -> None:
    """A unit missing from the monitored ones is a unit not scored: the operator sees its name on
    /metrics and in the listener's summary, and nothing was published."""
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("vigil_ignored_units_total", unit="4WEST"),
        value("vigil_interop_ignored_total", reason="unmonitored_unit"),
    )
    stored: list[Record] = []
    answers, tally = converse([WARD_ORU, WARD_ORU.replace(b"|W1|", b"|W2|")], stored.extend, units=Units.of(["MICU"]))
    assert [a.split(b"\r")[1].split(b"|")[1] for a in answers] == [b"AA", b"AA"] and stored == []
    assert value("vigil_ignored_units_total", unit="4WEST") == before[0] + 2
    assert value("vigil_interop_ignored_total", reason="unmonitored_unit") == before[1] + 2
    summary = tally.summary()
    assert summary["ignored_units"] == {"4WEST": 2} and summary["ignored"] == {"unmonitored_unit": 2}
    assert summary["events"] == 0 and summary["dead_letters"] == 0


def test_stopping_cuts_the_open_connections_without_an_error_in_the_log() -> None:
    """A sender keeps its connection open between messages; a restart cuts it. Before, the cut
    handler ended cancelled after the listener returned, and asyncio logged it as an error."""
    errors: list[dict] = []

    async def scenario() -> bytes:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        stop = asyncio.Event()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        tally = Tally()
        server = asyncio.create_task(
            serve(lambda records: None, MllpSettings(), "127.0.0.1", 0, stop, tally, bound.set_result)
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", await bound)
        writer.write(frame(ORU))
        await reader.readuntil(b"\x1c\r")  # answered; the sender stays connected
        stop.set()
        await asyncio.wait_for(server, timeout=5)
        rest = await asyncio.wait_for(reader.read(), timeout=5)  # the listener closed the connection
        writer.close()
        return rest

    assert asyncio.run(scenario()) == b""
    assert errors == []


SLOW = MllpSettings(idle_timeout_s=1.0, max_connections=1)  # the shortest deadline the settings allow


def _cut_then_served(
    stored: list[Record], tally: Tally, first: bytes, trickled: Callable[[], Iterator[bytes]]
) -> tuple[bytes, bytes]:
    """A listener with one slot: a sender writes ``first``, then each of ``trickled`` 0.3 s apart, until
    the listener closes its connection; then another sends a message on the slot. (What the first
    connection read before it closed, the second's answer.)"""

    async def scenario() -> tuple[bytes, bytes]:
        stop = asyncio.Event()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(stored.extend, SLOW, "127.0.0.1", 0, stop, tally, bound.set_result))
        port = await bound
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(first)

        async def trickle() -> None:
            for piece in trickled():
                await asyncio.sleep(0.3)
                writer.write(piece)

        trickling = asyncio.create_task(trickle())
        try:
            cut = await asyncio.wait_for(reader.read(), timeout=4)  # b"": the listener closed it
        finally:
            trickling.cancel()
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # the slot is free again
        writer.write(frame(ORU))
        answer = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout=4)
        writer.close()
        stop.set()
        await server
        return cut, answer

    return asyncio.run(scenario())


def test_a_sender_trickling_a_frame_is_cut_at_its_deadline_and_frees_its_slot() -> None:
    """The idle timeout restarted on every read: a byte each 0.9 s of a 1 s timeout held the one slot
    for ever. A frame must end within ``idle_timeout_s`` of its start byte; cut, it is a dead letter."""
    stored: list[Record] = []
    tally = Tally()
    cut, answer = _cut_then_served(stored, tally, b"\x0b" + ORU[:10], lambda: (bytes([b]) for b in ORU[10:40]))
    assert cut == b"" and answer.split(b"\r")[1].startswith(b"MSA|AA|")
    assert tally.cut_connections == {"slow_frame": 1} and tally.refused_connections == 0
    cut_off = [letter for letter in letters(stored) if letter.reason == "parse_error"]
    assert len(cut_off) == 1 and "closed inside an MLLP frame" in cut_off[0].detail
    assert cut_off[0].original().startswith(ORU[:10])


def test_each_frame_has_its_own_deadline_from_its_start_byte() -> None:
    """A sender whose messages each arrive in pieces, on a connection open longer than the deadline,
    is not cut: the deadline runs from each frame's start, not from the connection's."""
    stored: list[Record] = []
    tally = Tally()

    async def scenario() -> list[bytes]:
        stop = asyncio.Event()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(stored.extend, SLOW, "127.0.0.1", 0, stop, tally, bound.set_result))
        reader, writer = await asyncio.open_connection("127.0.0.1", await bound)
        answers = []
        for control in (b"F1", b"F2", b"F3"):
            whole = frame(ORU.replace(b"MSG20240315143005001", control))
            writer.write(whole[:50])
            await asyncio.sleep(0.4)
            writer.write(whole[50:])
            answers.append(await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout=4))
        writer.close()
        stop.set()
        await server
        return answers

    answers = asyncio.run(scenario())  # 1.2 s on one connection, each frame well within 1 s
    assert [a.split(b"\r")[1].split(b"|")[:3] for a in answers] == [[b"MSA", b"AA", c] for c in (b"F1", b"F2", b"F3")]
    assert tally.cut_connections == {}


def test_a_deadline_is_kept_while_an_item_trickles_and_renewed_for_the_next() -> None:
    from vigil.agents.mllp import item_deadline, read_wait_s

    assert item_deadline(True, False, None, 10.0, 5.0) == 15.0  # the frame began in this read
    assert item_deadline(True, False, 15.0, 12.0, 5.0) == 15.0  # more of it: the deadline stays
    assert item_deadline(True, True, 15.0, 13.0, 5.0) == 18.0  # one ended, the next began
    assert item_deadline(False, True, 15.0, 13.0, 5.0) is None  # between frames: only the idle timeout
    # a start byte cut the frame held and began another: no message ended, the first byte's deadline stays
    assert item_deadline(True, False, 15.0, 14.0, 5.0) == 15.0
    assert read_wait_s(5.0, None, 13.0) == 5.0 and read_wait_s(5.0, 15.0, 13.0) == 2.0
    assert read_wait_s(5.0, 15.0, 16.0) == 0.0


def test_a_sender_trickling_start_bytes_is_cut_at_the_first_ones_deadline() -> None:
    """Any item ended renewed the deadline, the stray a start byte makes of the frame it cuts too: one
    VT sent just under every ``idle_timeout_s`` held the one slot for ever (a dead letter each time).
    Only a message's end starts a new deadline; the run of strays keeps the first byte's."""
    stored: list[Record] = []
    tally = Tally()
    cut, answer = _cut_then_served(stored, tally, b"", lambda: itertools.repeat(b"\x0b"))  # a VT each 0.3 s
    assert cut == b"" and answer.split(b"\r")[1].startswith(b"MSA|AA|")
    assert tally.cut_connections == {"slow_frame": 1} and tally.refused_connections == 0


class UnreadPeer:
    """The listener's side of a connection whose peer reads nothing: with ``full``, its send buffer
    never drains; either way closing waits for that buffer to be sent (asyncio's transports do)."""

    def __init__(self, full: bool) -> None:
        self.full = full
        self.aborted = asyncio.Event()
        self.written: list[bytes] = []

    @property
    def transport(self) -> UnreadPeer:
        return self

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("192.0.2.7", 40000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written.append(data)

    async def drain(self) -> None:
        if self.full:
            await self.aborted.wait()

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        await self.aborted.wait()

    def abort(self) -> None:
        self.aborted.set()


def test_a_sender_that_reads_no_ack_is_cut_not_waited_on_for_ever() -> None:
    """``writer.drain()`` and ``wait_closed()`` had no timeout: a sender that never read its ACKs held
    its slot for ever. Its message is stored (AA); the frame after it is unanswered, so sent again."""
    from vigil.agents.mllp import converse as serve_connection

    async def scenario(full: bool, eof: bool) -> tuple[bool, UnreadPeer, Tally]:
        reader = asyncio.StreamReader()
        reader.feed_data(frame(ORU) + frame(ORU.replace(b"MSG20240315143005001", b"NEXT")))
        if eof:
            reader.feed_eof()  # the sender half-closes, and still reads nothing
        peer, tally = UnreadPeer(full), Tally()
        connection = asyncio.create_task(serve_connection(reader, peer, lambda records: None, SLOW, tally))  # type: ignore[arg-type]
        ended, _ = await asyncio.wait({connection}, timeout=4)
        if not ended:  # held for ever: let it go, so that the test fails instead of hanging
            peer.abort()
            connection.cancel()
            await asyncio.wait({connection})
        return bool(ended), peer, tally

    ended, peer, tally = asyncio.run(scenario(full=True, eof=False))
    assert ended and peer.aborted.is_set()
    assert tally.cut_connections == {"unread_acks": 1} and tally.acks == {"AA": 1}
    ended, peer, tally = asyncio.run(scenario(full=False, eof=True))  # both answered; the close is what waits
    assert ended and peer.aborted.is_set() and tally.acks == {"AA": 2} and len(peer.written) == 2


def test_messages_after_an_unread_ack_are_counted_unanswered_and_strays_among_them_dead_lettered() -> None:
    """Cut for an ACK it did not read, a connection's later messages in the same read were neither
    answered nor counted, and the stray bytes among them not dead-lettered: dropped unaccounted. The
    messages are the sender's to send again (no ACK); they are counted and logged, the strays stored."""
    import structlog

    from vigil.agents.mllp import converse as serve_connection

    stored: list[Record] = []
    sent = frame(ORU) + frame(ORU.replace(b"MSG20240315143005001", b"NEXT")) + b"junk" + frame(ADT)

    async def scenario() -> tuple[UnreadPeer, Tally]:
        reader = asyncio.StreamReader()
        reader.feed_data(sent)
        peer, tally = UnreadPeer(full=True), Tally()
        connection = serve_connection(reader, peer, stored.extend, SLOW, tally)  # type: ignore[arg-type]
        await asyncio.wait_for(connection, timeout=4)
        return peer, tally

    with structlog.testing.capture_logs() as logs:
        peer, tally = asyncio.run(scenario())
    assert peer.aborted.is_set() and tally.acks == {"AA": 1} and len(peer.written) == 1
    assert tally.cut_connections == {"unread_acks": 1} and tally.unanswered == 2
    assert tally.summary()["unanswered"] == 2
    (cut,) = [line for line in logs if line["event"] == "mllp.connection_too_slow"]
    assert cut["why"] == "unread_acks" and cut["unanswered"] == 2
    assert [letter.original() for letter in letters(stored) if letter.reason == "parse_error"] == [b"junk"]


def test_a_message_after_bytes_outside_frames_has_a_deadline_of_its_own() -> None:
    """Bytes outside frames end with the next start byte; taken for a frame a start byte cut, they kept
    the deadline of their first byte, and the message after them, split over two reads, was cut as
    slow and lost its ACK."""
    stored: list[Record] = []
    tally = Tally()
    second = frame(ORU.replace(b"MSG20240315143005001", b"SECOND"))

    async def scenario() -> list[bytes]:
        stop = asyncio.Event()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(stored.extend, SLOW, "127.0.0.1", 0, stop, tally, bound.set_result))
        port = await bound
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(ORU) + b"x")  # a message, then a stray byte
        answers = [await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout=4)]
        await asyncio.sleep(0.75)
        writer.write(second[:20])  # the stray ends here; the second message begins, 0.75 s after it
        await asyncio.sleep(0.4)
        writer.write(second[20:])
        answers.append(await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout=4))
        writer.close()
        stop.set()
        await server
        return answers

    answers = asyncio.run(scenario())
    assert [a.split(b"\r")[1][:7] for a in answers] == [b"MSA|AA|", b"MSA|AA|"]
    assert tally.cut_connections == {} and tally.acks == {"AA": 2}


class ResetPeer(UnreadPeer):
    """A peer that resets the connection as the listener writes its first ACK."""

    async def drain(self) -> None:
        raise ConnectionResetError("reset by peer")


def test_messages_after_an_ack_the_peer_reset_on_are_counted_and_strays_stored() -> None:
    stored: list[Record] = []
    sent = frame(ORU) + frame(ORU.replace(b"MSG20240315143005001", b"NEXT")) + b"junk" + frame(ADT)

    async def scenario() -> Tally:
        reader = asyncio.StreamReader()
        reader.feed_data(sent)
        reader.feed_eof()
        tally = Tally()
        await asyncio.wait_for(serve_connection(reader, ResetPeer(full=False), stored.extend, SLOW, tally), 4)  # type: ignore[arg-type]
        return tally

    from vigil.agents.mllp import converse as serve_connection

    tally = asyncio.run(scenario())
    assert tally.acks == {"AA": 1} and tally.unanswered == 2
    assert [letter.original() for letter in letters(stored) if letter.reason == "parse_error"] == [b"junk"]
