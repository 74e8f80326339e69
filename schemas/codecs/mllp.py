"""MLLP, the framing HL7v2 travels in over TCP (HL7 v2.5.1 Appendix C): each message between a start
byte (VT, 0x0B) and an end pair (FS CR, 0x1C 0x0D), the receiver answering each with an ACK.

Pure and bounded: ``MllpFramer`` turns the bytes of a connection, in chunks of any size, into what
they held, keeping at most ``max_bytes`` of any frame (a larger one is reported with its first bytes
and its size, never buffered whole) and reporting bytes outside any frame instead of dropping them.
``ack`` writes the answer to a message (HL7 Table 0008): AA accepted, AE an error in its content or
a message type Vigil does not read (do not send it again unchanged), AR rejected for Vigil's state
(the event stream unavailable: send it again later)."""

from __future__ import annotations

import hashlib
from codecs import BOM_UTF8
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

START = b"\x0b"
END = b"\x1c\x0d"
FRAMING = str.maketrans({"\x0b": " ", "\x1c": " "})
KEEP_PREFIX = 64 * 1024  # the first bytes of an oversized frame or stray bytes kept (for the dead letter)


@dataclass(frozen=True)
class Frame:
    """One whole message."""

    payload: bytes


@dataclass(frozen=True)
class Oversize:
    """A frame over the limit: its first bytes, its size and the SHA-256 of all of it."""

    prefix: bytes
    size: int
    sha256: str


@dataclass(frozen=True)
class Stray:
    """Bytes outside any frame (not whitespace), or a frame the connection closed inside of."""

    prefix: bytes
    size: int
    sha256: str
    unterminated: bool = False


Item = Frame | Oversize | Stray


@dataclass
class MllpFramer:
    """Frames out of a byte stream; memory bounded by ``max_bytes`` + ``KEEP_PREFIX`` whatever is sent."""

    max_bytes: int
    _in_frame: bool = False
    _buf: bytearray = field(default_factory=bytearray)
    _size: int = 0
    _fs_pending: bool = False  # the chunk ended with FS: is CR next?
    _hash: Any = field(default_factory=hashlib.sha256)
    _stray: bytearray = field(default_factory=bytearray)
    _stray_size: int = 0
    _stray_hash: Any = field(default_factory=hashlib.sha256)

    def feed(self, data: bytes) -> list[Item]:
        out: list[Item] = []
        i, n = 0, len(data)
        while i < n:
            if not self._in_frame:
                j = data.find(START, i)
                self._outside(data[i : j if j >= 0 else n])
                if j < 0:
                    break
                out.extend(self._stray_item())
                self._in_frame, self._size, self._fs_pending = True, 0, False
                self._hash = hashlib.sha256()
                self._buf.clear()
                i = j + 1
                continue
            if self._fs_pending:
                self._fs_pending = False
                if data[i : i + 1] == b"\r":
                    out.append(self._close())
                    i += 1
                    continue
                self._take(b"\x1c")
            j = data.find(END, i)
            k = data.find(START, i)
            if k >= 0 and (j < 0 or k < j):
                # a start block inside a frame: the frame was cut off (a sender that gave up half-way
                # and began again). It is a stray, not the next message's head: merged, a FiO2 0.45
                # cut after "0.4" was stored as 0.4 and the whole acknowledged AA
                self._take(data[i:k])
                out.append(self._cut())
                i = k
                continue
            if j < 0:
                tail = data[i:]
                if tail.endswith(b"\x1c"):
                    self._fs_pending, tail = True, tail[:-1]
                self._take(tail)
                break
            self._take(data[i:j])
            out.append(self._close())
            i = j + len(END)
        return out

    @property
    def holding(self) -> bool:
        """An item begun and not yet ended: inside a frame, or stray bytes awaiting the next start
        byte. The listener gives such an item a deadline from its first byte (a sender trickling it
        would otherwise hold a connection slot for ever)."""
        return self._in_frame or self._stray_size > 0

    def close(self) -> list[Item]:
        """What the connection left when it closed: stray bytes, or a frame never ended."""
        out = self._stray_item()
        if self._in_frame:
            if self._fs_pending:
                self._take(b"\x1c")
            out.append(self._cut())
        return out

    def _cut(self) -> Item:
        """The frame so far, never ended: a stray (dead-lettered, never acknowledged)."""
        prefix = bytes(self._buf[:KEEP_PREFIX])
        self._in_frame, self._fs_pending = False, False
        self._buf.clear()
        return Stray(prefix, self._size, self._hash.hexdigest(), unterminated=True)

    def _take(self, chunk: bytes) -> None:
        self._size += len(chunk)
        self._hash.update(chunk)
        room = self.max_bytes - len(self._buf)
        if room > 0:
            self._buf += chunk[:room]

    def _close(self) -> Item:
        self._in_frame = False
        payload, size = bytes(self._buf), self._size
        self._buf.clear()
        if size <= self.max_bytes:
            return Frame(payload)
        return Oversize(payload[:KEEP_PREFIX], size, self._hash.hexdigest())

    def _outside(self, chunk: bytes) -> None:
        if not chunk.strip() and not self._stray_size:  # line ends between frames: tolerated
            return
        self._stray_size += len(chunk)
        self._stray_hash.update(chunk)
        room = KEEP_PREFIX - len(self._stray)
        if room > 0:
            self._stray += chunk[:room]

    def _stray_item(self) -> list[Item]:
        if not self._stray_size:
            return []
        item = Stray(bytes(self._stray), self._stray_size, self._stray_hash.hexdigest())
        self._stray.clear()
        self._stray_size = 0
        self._stray_hash = hashlib.sha256()
        return [item]


_LINE_ENDS = str.maketrans({"\r": " ", "\n": " "})


def frame(payload: bytes) -> bytes:
    return START + payload + END


def charset(payload: bytes) -> str:
    """The character set the decoder reads ``payload`` in (``hl7v2._split_messages``): UTF-8 when it
    is valid UTF-8, else ISO 8859-1. The ACK is read and written in it, so MSA-3's quote of a control
    id is the same bytes as MSA-2's copy (it was UTF-8 in MSA-2 and ISO 8859-1 in MSA-3)."""
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _msh_fields(payload: bytes, encoding: str | None = None) -> list[str] | None:
    """MSH's fields (index = HL7 field number, MSH-1 the separator), or None when there is none."""
    # "replace": a character the KEEP_PREFIX cut splits, far past the MSH; a leading UTF-8 byte-order
    # mark skipped, as the decoder skips it (hl7v2): the ACK to such a message named no control id
    text = payload[:KEEP_PREFIX].removeprefix(BOM_UTF8).decode(encoding or charset(payload), "replace")
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        line = line.lstrip()  # as the decoder reads it (hl7v2): a leading tab is no reason to lose MSH
        if line.startswith("MSH") and len(line) > 3 and not line[3].isalnum() and not line[3].isspace():
            sep = line[3]
            return ["MSH", sep, *line[4:].split(sep)]
    return None


def control_id(payload: bytes) -> str:
    """MSH-10, the message control id the ACK names ('' without one)."""
    fields = _msh_fields(payload)
    return fields[10] if fields is not None and len(fields) > 10 else ""


def ack(payload: bytes, code: str, text: str, now: datetime | None = None) -> bytes:
    """The original-mode ACK to ``payload``: in the message's own separators, sender and receiver
    swapped (copied as they were), its control id in MSA-2, ``text`` in MSA-3 with the delimiters
    blanked. A payload without an MSH gets an ACK naming Vigil only."""
    chars = charset(payload)
    fields = _msh_fields(payload, chars) or ["MSH", "|", "^~\\&"]
    sep = fields[1]
    encoding = fields[2] if len(fields) > 2 and len(fields[2]) >= 1 else "^~\\&"
    blank = str.maketrans({c: " " for c in sep + encoding + "\r\n"})

    def f(n: int) -> str:
        return fields[n] if len(fields) > n else ""

    trigger = f(9).split(encoding[0])
    event = trigger[1] if len(trigger) > 1 else ""
    # MSH-7 with its offset: HL7 v2.5.1 (chapter 2A, the DTM data type) reads a time without one as
    # the sender's local time, and this one is UTC
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    c = encoding[0]
    msh = [f(5) or "VIGIL", f(6), f(3), f(4), stamp, "", f"ACK{c}{event}{c}ACK" if event else "ACK"]
    msh += [uuid4().hex[:20], f(11) or "P", f(12) or "2.5.1"]
    # MSA-2 is MSH-10 as sent (in the same encoding characters: an escape sequence or a component is
    # the sender's to match on); MSA-3 is Vigil's text, its delimiters blanked
    msa = ["MSA", code, f(10).translate(_LINE_ENDS), text.translate(blank)[:200]]
    segments = ["MSH" + sep + encoding + sep + sep.join(msh), sep.join(msa)]
    text = "\r".join(segments).translate(FRAMING) + "\r"  # never a framing byte inside the frame
    return text.encode(chars, "replace")
