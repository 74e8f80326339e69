"""HL7v2 over MLLP in, ACK out (``vigil mllp``): how bedside-monitor gateways (IHE PCD-01) and
interface engines send ORU^R01, on HL7's port 2575.

Each message is decoded and checked as the ``vigil.ingest.hl7v2`` agent does (``schemas.codecs.hl7v2``,
``DecodeResult.checked``: canonical unit, plausible range, clock skew):
its events go to ``vigil.events.raw`` keyed by patient, what it could not map to one dead letter
with the reason and the message's bytes. The ACK is written only after the broker has every record
(``acks=all``), so an AA means durable:

- AA: accepted (the text counts the events; parts refused are on the dead letters);
- AE: nothing in it can be used, for what it holds (not HL7, not ORU^R01, no patient, over the size
  limit): do not send it again unchanged; it is on the dead letters with the reason;
- AR: Vigil could not store it now (the event stream is unavailable): send it again later. Event
  ids derive from the message (MSH-3, MSH-4, MSH-10), so a copy whose first try was partly stored
  is counted as ``duplicate``, not scored twice.

Bounded: a connection holds at most ``mllp.max_message_bytes`` of a frame (``MllpFramer``), messages
of one connection are handled one at a time (the next is not read before the last is answered),
at most ``mllp.max_connections`` connections are served (more are closed at once), and a silent
one is closed after ``mllp.idle_timeout_s``. No sender holds a slot for ever by being slow: a frame
(or a run of stray bytes) not ended within ``mllp.idle_timeout_s`` of its first byte is cut with its
connection, and so is a sender that reads none of an ACK for as long (its message is stored: sent
again, it is counted ``duplicate``). A new deadline starts when a message (a frame, answered) or a run
of bytes outside frames ends, never when a start byte cuts the frame held: a VT a second keeps no slot
(inside a frame only its end leads out, so outside bytes come at most once per message answered).
Bytes outside any frame and a frame cut off by its connection are dead letters (``parse_error``);
the whole messages a cut connection had sent after the ACK it did not read are not answered, and
are the sender's to send again (MLLP: no ACK, send again), counted as ``unanswered``: nothing is
dropped unaccounted. Logs carry counts and the peer's address, never a patient's id or values."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from vigil.infra import metrics
from vigil.infra.deadletters import MLLP_SOURCE
from vigil.infra.logging import get_logger
from vigil.infra.publish import Record
from vigil.infra.settings import MllpSettings, get_settings
from vigil.infra.unmapped import count_unmapped
from vigil.schemas import topics
from vigil.schemas.codecs.care_units import NO_UNITS, Units
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.codecs.mllp import Item, MllpFramer, Oversize, Stray, ack, frame
from vigil.schemas.deadletter import MAX_DEAD_LETTER_BYTES, DeadLetter, Rejected, Source, one_per_input, parts_said
from vigil.schemas.errors import UserError

log = get_logger(__name__)
SOURCE = MLLP_SOURCE  # the dead letters' source (``vigil deadletters replay`` sends them to vigil.ingest.hl7v2)
DEADLETTER_KEY = b"mllp"
UNAVAILABLE = "the event stream is unavailable: send the message again later"
STRAY_TRIES, STRAY_RETRY_S = 3, 1.0  # a stray's dead letter: no sender will send it again
Publish = Callable[[Sequence[Record]], None]


@dataclass
class Outcome:
    """What one item of a connection gives: the records to publish, and the answer (None: no
    message to answer, e.g. stray bytes)."""

    records: list[Record] = field(default_factory=list)
    code: str | None = None
    text: str = ""
    payload: bytes = b""
    events: int = 0
    unmapped: DecodeResult = field(default_factory=DecodeResult)  # what was ignored, unknown codes: counted
    # each dead letter's reasons (``Rejected.reasons``), one entry per letter among its records
    letter_reasons: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def dead_letters(self) -> int:
        return len(self.letter_reasons)

    def answer(self, now: datetime | None = None) -> bytes | None:
        return None if self.code is None else frame(ack(self.payload, self.code, self.text, now))


def _dead_letter(rejected: Rejected, original: bytes, now: datetime, size: int | None = None, sha: str = "") -> Record:
    letter = DeadLetter.of(rejected.at(Source(topic=SOURCE, original=original)), now, MAX_DEAD_LETTER_BYTES - 64)
    if size is not None:  # only the first bytes were kept: the letter names the whole
        letter = letter.model_copy(update={"original_size": size, "original_sha256": sha, "truncated": True})
    return topics.DEADLETTER, DEADLETTER_KEY, letter.model_dump_json().encode()


def outcome_of(item: Item, max_bytes: int, now: datetime, units: Units = NO_UNITS, default_tz: tzinfo = UTC) -> Outcome:
    """Pure: the records and the answer for one framed item (``units``: which results are scored and
    which ADT transfers end a stay, the settings' ``ingest.monitored_units``; ``default_tz``: the zone
    of HL7 times sent without an offset, the settings' ``ingest.hl7_timezone``)."""
    if isinstance(item, Stray):
        what = "a connection closed inside an MLLP frame" if item.unterminated else "bytes outside any MLLP frame"
        rejected = Rejected("parse_error", f"{what} ({item.size} bytes)")
        truncated = item.size > len(item.prefix)
        letter = _dead_letter(rejected, item.prefix, now, item.size if truncated else None, item.sha256)
        return Outcome([letter], letter_reasons=[rejected.reasons])
    if isinstance(item, Oversize):
        rejected = Rejected("too_large", f"MLLP message of {item.size} bytes (limit {max_bytes})")
        letter = _dead_letter(rejected, item.prefix, now, item.size, item.sha256)
        return Outcome([letter], "AE", f"too_large: {rejected.detail}", item.prefix, letter_reasons=[rejected.reasons])
    decoded = decode_hl7v2(item.payload, default_tz=default_tz, units=units).checked(now)  # unit, range, clock
    out = Outcome(payload=item.payload, events=len(decoded.events), unmapped=decoded)
    for event in decoded.events:
        out.records.append((topics.EVENTS_RAW, event.patient_id.encode(), event.model_dump_json().encode()))
    if decoded.rejected:
        one = one_per_input(decoded.rejected)
        out.records.append(_dead_letter(one, item.payload, now))
        out.letter_reasons = [one.reasons]
    if decoded.events:
        n_events = len(decoded.events)
        out.code, out.text = "AA", f"accepted {n_events} event{'s' if n_events > 1 else ''}"
        if decoded.rejected:
            out.text += f", {parts_said(decoded.rejected, 'refused')} (dead letters)"
    elif len(decoded.rejected) == 1:
        first = decoded.rejected[0]
        out.code, out.text = "AE", f"{first.reason}: {first.detail}"
    elif decoded.rejected:
        out.code, out.text = "AE", parts_said(decoded.rejected, "refused")
    else:
        out.code, out.text = "AA", "nothing to map: " + parts_said(decoded.ignored, "ignored")
    return out


@dataclass
class Tally:
    """Counts over the listener's life (the command's summary)."""

    connections: int = 0
    refused_connections: int = 0
    messages: int = 0
    events: int = 0
    dead_letters: int = 0
    acks: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)  # parts not mapped, by reason (not errors)
    ignored_units: Counter[str] = field(default_factory=Counter)  # ORU^R01 from units neither monitored nor away
    cut_connections: Counter[str] = field(default_factory=Counter)  # closed for a slow sender, by why
    unanswered: int = 0  # whole messages read but not answered when their connection was cut: sent again

    def summary(self) -> dict[str, object]:
        return {
            **asdict(self),
            "acks": dict(self.acks),
            "ignored": dict(self.ignored),
            "ignored_units": dict(self.ignored_units),
            "cut_connections": dict(self.cut_connections),
        }


async def _stored(out: Outcome, publish: Publish) -> bool:
    """The item's records published. A message's are tried once: unstored, it is answered AR and
    its sender sends it again. Bytes outside a message have no answer and no sender to send them
    again, so their dead letter is tried ``STRAY_TRIES`` times before it is given up (counted)."""
    tries = 1 if out.code is not None else STRAY_TRIES
    for attempt in range(1, tries + 1):
        try:
            if out.records:
                await asyncio.to_thread(publish, out.records)
            return True
        except Exception as exc:  # the broker: nothing is answered AA unless stored
            log.error("mllp.unpublished", error=type(exc).__name__, records=len(out.records), attempt=attempt)
            if attempt < tries:
                await asyncio.sleep(STRAY_RETRY_S)
    return False


async def handle(
    item: Item, publish: Publish, limits: MllpSettings, tally: Tally, units: Units = NO_UNITS, default_tz: tzinfo = UTC
) -> bytes | None:
    """Publish one item's records (in a thread: the producer blocks) and return its answer."""
    out = outcome_of(item, limits.max_message_bytes, datetime.now(UTC), units, default_tz)
    if not await _stored(out, publish):
        metrics.MLLP_UNPUBLISHED.labels("stray" if out.code is None else "message").inc()
        if out.code is None:
            return None
        out = Outcome(code="AR", text=UNAVAILABLE, payload=out.payload)
    else:
        tally.events += out.events
        tally.dead_letters += out.dead_letters
        metrics.MLLP_EVENTS.inc(out.events)
        metrics.count_dead_letters(out.letter_reasons)
        count_unmapped(out.unmapped)
        tally.ignored.update(r.reason for r in out.unmapped.ignored)
        tally.ignored_units.update(out.unmapped.ignored_units)
    if out.code is not None:
        tally.messages += 1
        tally.acks[out.code] += 1
        metrics.MLLP_MESSAGES.labels(out.code).inc()
    return out.answer()


async def converse(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    publish: Publish,
    limits: MllpSettings,
    tally: Tally,
    units: Units = NO_UNITS,
    default_tz: tzinfo = UTC,
) -> None:
    """One connection: read, frame, answer each message in turn, until it closes, idles or is too
    slow (``limits.idle_timeout_s`` for a frame from its first byte, and for an ACK to be read):
    without these bounds a sender trickling a byte a minute, or never reading its ACKs, held its
    slot for ever, and ``max_connections`` of them shut every other sender out."""
    framer = MllpFramer(limits.max_message_bytes)
    loop = asyncio.get_running_loop()
    deadline: float | None = None  # when the item the framer holds must have ended (loop time)
    leftover: list[Item] = []  # strays read after an ACK never read, on a connection cut for it
    try:
        while True:
            wait_s = read_wait_s(limits.idle_timeout_s, deadline, loop.time())
            try:
                data = await asyncio.wait_for(reader.read(64 * 1024), wait_s)
            except TimeoutError:
                if deadline is not None:  # never later than the idle timeout: the frame's deadline passed
                    _cut(writer, tally, "slow_frame", limits.idle_timeout_s)
                break
            if not data:
                break
            items = framer.feed(data)
            for index, item in enumerate(items):
                answer = await handle(item, publish, limits, tally, units, default_tz)
                if answer is not None:
                    writer.write(answer)
                    try:
                        await asyncio.wait_for(writer.drain(), limits.idle_timeout_s)
                    except TimeoutError:
                        unanswered, leftover = _unanswered(items[index + 1 :], tally)
                        _cut(writer, tally, "unread_acks", limits.idle_timeout_s, unanswered)
                        writer.transport.abort()  # its buffer will never be read: not flushed on close
                        return
                    except (ConnectionError, OSError):  # the peer went away with messages unanswered
                        _, leftover = _unanswered(items[index + 1 :], tally)
                        return
            # counted once our answers are written, not while we publish: our broker's delay is not the
            # sender's. A frame a start byte cut ends nothing new (``item_deadline``)
            ended = any(not (isinstance(item, Stray) and item.unterminated) for item in items)
            deadline = item_deadline(framer.holding, ended, deadline, loop.time(), limits.idle_timeout_s)
    except (ConnectionError, OSError):
        pass  # the peer went away; what it left is accounted for below
    finally:
        for item in leftover + framer.close():
            await handle(item, publish, limits, tally, units, default_tz)
        await _hang_up(writer, limits.idle_timeout_s)


def _unanswered(later: list[Item], tally: Tally) -> tuple[int, list[Item]]:
    """The items read after the last ACK a connection could deliver: its messages get no ACK, so their
    sender still holds them to send again (counted, not stored); the strays among them have no sender
    to send them again: returned, to be dead-lettered with what the framer holds."""
    unanswered = sum(not isinstance(left, Stray) for left in later)
    tally.unanswered += unanswered
    return unanswered, [left for left in later if isinstance(left, Stray)]


def read_wait_s(idle_s: float, deadline: float | None, now: float) -> float:
    """How long the next read may wait: the idle timeout, or less when a frame begun must end sooner."""
    return idle_s if deadline is None else max(0.0, min(idle_s, deadline - now))


def item_deadline(
    holding: bool, message_ended: bool, deadline: float | None, now: float, limit_s: float
) -> float | None:
    """The deadline of the item the framer holds after a read: none when it holds none; a new one when
    nothing was held before, or an item other than a cut frame ended in this read (``message_ended``: a
    frame, one over the size limit, a run of bytes outside frames); else the one it had, so that
    trickling does not move it. A frame a start byte cut is not one: renewed for it, one VT sent just
    under every ``limit_s`` cut the frame held and began another with a new deadline, for ever."""
    if not holding:
        return None
    return now + limit_s if deadline is None or message_ended else deadline


def _cut(writer: asyncio.StreamWriter, tally: Tally, why: str, limit_s: float, unanswered: int = 0) -> None:
    tally.cut_connections[why] += 1
    log.warning("mllp.connection_too_slow", peer=peer_name(writer), why=why, limit_s=limit_s, unanswered=unanswered)


async def _hang_up(writer: asyncio.StreamWriter, within_s: float) -> None:
    """Close the connection. Closing waits for the ACKs still buffered to be sent: a peer that reads
    none of them would keep it open, so after ``within_s`` the connection is aborted instead."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), within_s)
    except TimeoutError:
        writer.transport.abort()
    except (ConnectionError, OSError):
        pass  # the peer went first


def server_tls(limits: MllpSettings) -> ssl.SSLContext | None:
    """The listener's TLS context (TLS 1.2 or newer), or None for plain MLLP. With a client CA,
    a sender without a certificate it signed fails the handshake. Raises ``UserError`` naming the
    setting when a file is missing or unusable."""
    if limits.tls_cert is None:
        if limits.tls_client_ca is not None or limits.tls_key is not None:
            raise UserError("VIGIL_MLLP__TLS_KEY and __TLS_CLIENT_CA need VIGIL_MLLP__TLS_CERT (--tls-cert)")
        return None
    # no default verify paths: only tls_client_ca signs senders, never a CA the system trusts
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(limits.tls_cert, limits.tls_key)
        if limits.tls_client_ca is not None:
            context.load_verify_locations(limits.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"MLLP TLS: cannot use the certificate, key or client CA given ({exc})") from None
    return context


def peer_name(writer: asyncio.StreamWriter) -> str:
    """The sender's address, and the subject of its certificate when it presented one (mutual TLS)."""
    peer = str(writer.get_extra_info("peername"))
    cert = writer.get_extra_info("peercert") or {}
    subject = ",".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)
    return f"{peer} {subject}" if subject else peer


async def serve(
    publish: Publish,
    limits: MllpSettings,
    host: str,
    port: int,
    stop: asyncio.Event,
    tally: Tally,
    on_listening: Callable[[int], None] | None = None,
    units: Units = NO_UNITS,
    default_tz: tzinfo | None = None,
) -> None:
    """Listen until ``stop`` is set (``on_listening`` is told the port bound, port 0 = any free one),
    then cut the connections still open: one cut while its last message was in flight has no ACK for
    it, and MLLP senders send it again. ``default_tz``: the zone of HL7 times sent without an offset,
    by default the settings' ``ingest.hl7_timezone`` (checked when they load)."""
    zone = default_tz if default_tz is not None else get_settings().ingest.hl7_zone()
    live = 0
    handlers: set[asyncio.Task[Any]] = set()  # the open connections' handlers

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal live
        peer = peer_name(writer)
        if live >= limits.max_connections:
            tally.refused_connections += 1
            log.warning("mllp.connection_refused", peer=str(peer), limit=limits.max_connections)
            writer.close()
            return
        live += 1
        tally.connections += 1
        metrics.MLLP_CONNECTIONS.set(live)
        before = tally.messages
        current = asyncio.current_task()
        if current is not None:
            handlers.add(current)
        try:
            await converse(reader, writer, publish, limits, tally, units, zone)
        except asyncio.CancelledError:
            # cut by the stop below: not raised on, or asyncio logs the handler's end as an error with
            # a traceback (Python 3.11's start_server), once per sender connected at every restart
            log.info("mllp.connection_cut", peer=str(peer), reason="the listener stops")
        finally:
            if current is not None:
                handlers.discard(current)
            live -= 1
            metrics.MLLP_CONNECTIONS.set(live)
            log.info("mllp.connection_closed", peer=str(peer), messages=tally.messages - before)

    server = await asyncio.start_server(on_connection, host, port, ssl=server_tls(limits))
    if on_listening is not None:
        on_listening(server.sockets[0].getsockname()[1])
    async with server:
        await stop.wait()
        server.close()  # no new connections; then the open ones are cut, each after its own cleanup
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
