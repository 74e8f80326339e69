"""MLLP framing and the ACK (``schemas.codecs.mllp``): any chunking gives the same frames, memory
stays bounded whatever is sent, nothing outside a frame goes unreported, the ACK names the message."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from vigil.schemas.codecs.mllp import KEEP_PREFIX, Frame, MllpFramer, Oversize, Stray, ack, control_id, frame

FIXTURES = Path(__file__).parent / "fixtures" / "hl7v2"
ORU = (FIXTURES / "oru_r01_vitals.hl7").read_bytes()
NOW = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)


def feed_in(data: bytes, cuts: list[int], max_bytes: int = 1000) -> list[object]:
    framer = MllpFramer(max_bytes)
    out: list[object] = []
    start = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
        out += framer.feed(data[start:cut])
        start = cut
    return out + framer.close()


# message bodies: anything but the framing bytes themselves
bodies = st.binary(max_size=1500).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))


@given(st.lists(bodies, min_size=1, max_size=5), st.lists(st.integers(0, 8000), max_size=30))
def test_any_chunking_gives_the_same_frames(messages: list[bytes], cuts: list[int]) -> None:
    data = b"\r\n".join(frame(m) for m in messages)
    want = [
        Frame(m) if len(m) <= 1000 else Oversize(m[:KEEP_PREFIX], len(m), hashlib.sha256(m).hexdigest())
        for m in messages
    ]
    assert feed_in(data, cuts) == want
    assert feed_in(data, list(range(len(data)))) == want  # one byte at a time: FS and CR split too


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=20))
def test_any_bytes_are_framed_reported_or_tolerated_never_lost_or_unbounded(data: bytes, cuts: list[int]) -> None:
    framer = MllpFramer(200)
    items: list[object] = []
    start = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
        items += framer.feed(data[start:cut])
        start = cut
        assert len(framer._buf) <= 200 and len(framer._stray) <= KEEP_PREFIX  # bounded whatever is sent
    items += framer.close()
    for item in items:
        assert isinstance(item, Frame | Oversize | Stray)
        if isinstance(item, Frame):
            assert len(item.payload) <= 200
    head = data.split(b"\x0b")[0]
    if head.strip():  # bytes before any frame are reported, not dropped
        assert isinstance(items[0], Stray) and not items[0].unterminated
    if b"\x0b" in data and b"\x1c\r" not in data.rsplit(b"\x0b", 1)[1]:  # a frame the stream never ended
        assert isinstance(items[-1], Stray) and items[-1].unterminated


def test_oversize_frames_stray_bytes_and_a_cut_off_frame_are_reported() -> None:
    big = b"MSH|^~\\&|" + b"x" * 5000
    items = feed_in(b"hello" + frame(big) + b"\r\n" + frame(b"MSH|ok") + b"\x0bcut off", [3, 700, 4000])
    stray, over, ok, cut = items
    assert stray == Stray(b"hello", 5, hashlib.sha256(b"hello").hexdigest())
    assert isinstance(over, Oversize) and over.size == len(big) and over.prefix == big[:1000]
    assert over.sha256 == hashlib.sha256(big).hexdigest()  # the whole, though only its start was kept
    assert ok == Frame(b"MSH|ok")  # the stream goes on after an oversized frame
    assert isinstance(cut, Stray) and cut.unterminated and cut.prefix == b"cut off"


def test_the_ack_names_the_message_and_swaps_sender_and_receiver() -> None:
    text = ack(ORU, "AE", "unit: mg|dL^x", NOW).decode()
    msh, msa = text.rstrip("\r").split("\r")
    fields = msh.split("|")
    assert fields[:7] == [
        "MSH",
        "^~\\&",
        "VIGIL",
        "GOODHEALTH",
        "EPICCARE",
        "GOODHEALTH^2.16.840.1.113883.3.72.5.20^ISO",
        "20261205080000+0000",  # with its offset: without one, HL7 v2 reads the sender's local time
    ]
    assert fields[8] == "ACK^R01^ACK" and fields[10:12] == ["P", "2.5.1"]
    assert msa == "MSA|AE|MSG20240315143005001|unit: mg dL x"  # delimiters in the text blanked
    assert control_id(ORU) == "MSG20240315143005001"


def test_the_acks_time_is_utc_and_says_so_whatever_zone_now_is_in() -> None:
    eastern = NOW.astimezone(timezone(timedelta(hours=-5)))  # the same instant, 03:00 in New York
    msh = ack(ORU, "AA", "ok", eastern).decode().split("\r")[0]
    assert msh.split("|")[6] == "20261205080000+0000"


def test_the_ack_keeps_a_senders_own_separators_and_answers_what_has_no_msh() -> None:
    odd = b"MSH#*!?%#APP#FAC#VIGIL#ICU#20261205##ORU*R01#ID9#P#2.3\rPID#1"
    msh, msa = ack(odd, "AA", "ok", NOW).decode().rstrip("\r").split("\r")
    assert msh.startswith("MSH#*!?%#VIGIL#ICU#APP#FAC#") and "#ACK*R01*ACK#" in msh
    assert msa == "MSA#AA#ID9#ok"
    msh, msa = ack(b"not hl7", "AE", "parse_error: no MSH", NOW).decode().rstrip("\r").split("\r")
    assert msh.startswith("MSH|^~\\&|VIGIL|") and msa == "MSA|AE||parse_error: no MSH"


@given(st.binary(max_size=500), st.sampled_from(["AA", "AE", "AR"]), st.text(max_size=300))
def test_any_payload_gets_a_two_segment_ack(payload: bytes, code: str, text: str) -> None:
    segments = ack(payload, code, text, NOW).split(b"\r")
    assert segments[-1] == b"" and len(segments) == 3
    assert segments[0].startswith(b"MSH") and segments[1].startswith(b"MSA")
    assert b"\x0b" not in segments[0] + segments[1] and b"\x1c" not in segments[0] + segments[1]


def test_a_frame_cut_off_by_a_new_start_block_is_a_stray_not_part_of_the_next_message() -> None:
    # merged, the cut message's OBX "FiO2 0.4" (of 0.45) was stored beside the next one and the
    # whole acknowledged AA with the cut message's control id
    head = ORU[: ORU.index(b"OBX") + 20]
    for cuts in ([], list(range(len(head) + len(ORU) + 4))):  # whole, and one byte at a time
        items = feed_in(b"\x0b" + head + frame(ORU), cuts, max_bytes=100_000)
        assert len(items) == 2 and isinstance(items[0], Stray) and items[0].unterminated
        assert items[0].prefix == head and items[0].size == len(head)
        assert items[1] == Frame(ORU)


def test_msa_2_echoes_the_control_id_as_sent_and_a_leading_tab_keeps_the_msh() -> None:
    escaped = ORU.replace(b"MSG20240315143005001", b"M\\F\\1^A")
    assert ack(escaped, "AA", "ok", NOW).decode().split("\r")[1] == "MSA|AA|M\\F\\1^A|ok"
    assert ack(b"\t" + ORU, "AA", "ok", NOW).decode().split("\r")[1] == "MSA|AA|MSG20240315143005001|ok"


def test_stray_bytes_are_the_same_whatever_the_chunking() -> None:
    stray = b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|X|P|2.5.1\rPID|1||44\r"
    whole = feed_in(stray + frame(b"MSH|ok"), [])
    split = feed_in(stray + frame(b"MSH|ok"), list(range(len(stray))))
    assert whole == split and whole[0] == Stray(stray, len(stray), hashlib.sha256(stray).hexdigest())


def test_the_ack_is_in_the_character_set_the_decoder_read_the_message_in() -> None:
    """The decoder reads UTF-8 first, the ACK read ISO 8859-1: MSA-2 carried the control id's UTF-8
    bytes and MSA-3 quoted it in ISO 8859-1, one ACK in two character sets."""
    utf8 = "MSH|^~\\&|MON|ICU|VIGIL|H|20261205||ORM^O01|Zürich-1|P|2.5.1\rPID|1||44\r".encode()
    msa = ack(utf8, "AE", "unsupported_message: MSH-10 'Zürich-1' is not ORU R01", NOW).split(b"\r")[1]
    assert msa.count("Zürich-1".encode()) == 2  # MSA-2 and MSA-3's quote: the same bytes
    assert msa.decode("utf-8").split("|")[2] == "Zürich-1"
    latin = utf8.decode().encode("latin-1")  # ISO 8859-1 (MSH-18 8859/1): the decoder's fallback
    msa = ack(latin, "AE", "unsupported_message: MSH-10 'Zürich-1' is not ORU R01", NOW).split(b"\r")[1]
    assert msa.count("Zürich-1".encode("latin-1")) == 2
    assert control_id(utf8) == control_id(latin) == "Zürich-1"


def test_the_framer_says_when_it_holds_an_item_begun_and_not_ended() -> None:
    framer = MllpFramer(1000)
    assert not framer.holding
    framer.feed(b"\r\n")  # line ends between frames: nothing held
    assert not framer.holding
    framer.feed(b"\x0bMSH|")
    assert framer.holding
    assert framer.feed(b"x\x1c\r") == [Frame(b"MSH|x")] and not framer.holding
    framer.feed(b"junk")  # stray bytes wait for the next start byte: held too
    assert framer.holding
