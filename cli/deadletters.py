"""``vigil deadletters``: what was refused and why (``ls``), and sending the originals again once
their cause is fixed (``replay``; the rules are ``infra.deadletters``'). Neither prints a patient's
values or ids: a letter shows its reason, detail (which never holds patient values), source, size
and place in the topic."""

from __future__ import annotations

import heapq
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json
from vigil.infra.settings import get_settings
from vigil.schemas.errors import UserError

deadletters_app = typer.Typer(
    help="Dead letters: what was refused and why; send the originals again once fixed", no_args_is_help=True
)
console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap (default: settings)")]
ReasonOpt = Annotated[list[str] | None, typer.Option("--reason", help="only this reason (repeat for more)")]
SinceOpt = Annotated[
    str | None, typer.Option(help="only letters written since: a time (2026-12-05T08:00, UTC) or an age (90m, 6h, 2d)")
]


def _since(text: str | None) -> datetime | None:
    from vigil.infra.deadletters import parse_since

    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _letters(bootstrap: str | None) -> Any:
    from vigil.cli.preflight import require_broker, settings_for
    from vigil.infra.deadletters import read_letters

    settings = settings_for(get_settings(), bootstrap)
    require_broker(settings)
    return settings, read_letters(settings)


def _written_at(item: Any) -> datetime | None:
    letter = item.letter
    if letter is None:
        return None
    return letter.at if letter.at.tzinfo is not None else letter.at.replace(tzinfo=UTC)  # written naive: UTC


def _chosen(item: Any, reasons: list[str] | None, since: datetime | None) -> bool:
    """Whether the filters choose ``item``: one of its reasons is named (any, not only the one it is
    shown by: a letter of clock_skew and unmapped_code is replayed with either) and it is recent enough."""
    at = _written_at(item)
    if item.letter is None or at is None:  # its own record does not parse: no reason or time to filter by
        return (not reasons or "unreadable" in reasons) and since is None
    return (not reasons or item.letter.refused_for(reasons)) and (since is None or at >= since)


def counted_reasons(item: Any, chosen: list[str] | None) -> list[str]:
    """The reasons ``ls`` counts ``item`` under: each of its reasons (as ``vigil_dead_letters_total``
    counts it), only the chosen ones when ``--reason`` names some; ``unreadable`` for a letter whose
    record does not parse."""
    if item.letter is None:
        return ["unreadable"]
    return [r for r in item.letter.reasons if not chosen or r in chosen]


NewestRow = tuple[tuple[datetime, int, int], dict[str, Any]]
NEVER = datetime.min.replace(tzinfo=UTC)  # an unreadable letter's time: older than any


def keep_newest(newest: list[NewestRow], item: Any, row: dict[str, Any], limit: int) -> None:
    """Keep in ``newest`` (a heap) the ``limit`` rows of the newest letters by (time written,
    partition, offset): the topic is read partition after partition, not in time order, so the
    last ones read are not the newest. (partition, offset) is unique: rows are never compared."""
    if limit <= 0:
        return
    entry = ((_written_at(item) or NEVER, item.partition, item.offset), row)
    if len(newest) < limit:
        heapq.heappush(newest, entry)
    elif entry[0] > newest[0][0]:
        heapq.heapreplace(newest, entry)


def _matching(letters: Any, reasons: list[str] | None, since: datetime | None) -> Any:
    """(letter, what a replay would send or why not) of the letters the filters choose."""
    from vigil.infra.deadletters import resend_of

    for item in letters:
        if _chosen(item, reasons, since):
            yield item, resend_of(item)


def size_text(size: int | None) -> str:
    """An original's size as an operator reads it: 182 B, 1.2 KiB, 3.4 MiB ("?" for a version-1
    letter, which did not record it)."""
    if size is None:
        return "?"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def letter_line(row: dict[str, Any]) -> str:
    """One letter of ``ls`` in a terminal line: when, reason, source and place, the original's size,
    whether a replay would send it, and the detail last (the line is cut at the terminal's width).
    Escaped (``printable``): a letter written before its detail was escaped carries the sender's
    control characters, and a terminal obeys them (a title, a cleared screen, a line that seems ours)."""
    from vigil.schemas.deadletter import printable

    again = "yes" if not row["replay"].startswith("no: ") else row["replay"][4:]
    when = str(row["at"])[5:19].replace("T", " ")
    place = f"{row['source']} {row['partition']}/{row['offset']}"
    size = size_text(row["bytes"])
    return printable(f"{when}  {row['reason']:<20} {place:<22} {size:>9}  again: {again:<4} {row['detail']}")


def _read_error(exc: TimeoutError) -> UserError:
    return UserError(f"the broker stopped answering while the dead letters were read ({exc}): try again")


@deadletters_app.command("ls")
def deadletters_ls(
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option(min=0, help="list this many of the newest letters")] = 20,
    bootstrap: BootstrapOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Count the dead letters by reason (a letter under each of its reasons) and source, say how many
    a replay would send again (not those an earlier replay sent), and list the newest by the time
    written (reason, detail, source, size; never the original's content)."""
    from vigil.infra.deadletters import REPLAYED_BEFORE, read_replayed
    from vigil.schemas.deadletter import printable

    chosen_since = _since(since)
    settings, letters = _letters(bootstrap)
    by_reason: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    replayable: Counter[str] = Counter()
    refused_again = 0  # letters of inputs a replay sent, refused once more
    heap: list[NewestRow] = []
    total = 0
    try:
        before = read_replayed(settings)  # what a replay skips (without --again) is not "could be sent again"
        for item, plan in _matching(letters, reason, chosen_since):
            total += 1
            letter = item.letter
            r = letter.reason if letter is not None else "unreadable"
            counted = counted_reasons(item, reason)
            by_reason.update(counted)
            by_source[letter.source_topic if letter is not None else "?"] += 1
            if not isinstance(plan, str) and before.sent(item):
                plan = REPLAYED_BEFORE
            if not isinstance(plan, str):
                replayable.update(counted)
            replay_of = letter.replay_of if letter is not None else None
            refused_again += replay_of is not None
            row = {
                "partition": item.partition,
                "offset": item.offset,
                "at": letter.at.isoformat(timespec="seconds") if letter else None,
                "reason": r,
                "reasons": list(letter.reasons) if letter else [r],
                "detail": letter.detail if letter else "",
                "source": letter.source_topic if letter else None,
                "bytes": letter.original_size if letter else None,
                "replay": plan.topic if not isinstance(plan, str) else f"no: {plan}",
                "replay_of": replay_of,
            }
            keep_newest(heap, item, row, limit)
    except TimeoutError as exc:
        raise _read_error(exc) from None
    newest = [row for _, row in sorted(heap)]  # oldest first: the newest is the last line
    for row in newest:  # one line each, cut at the terminal's width
        line = letter_line(row)
        cut = line if len(line) <= console.width else line[: console.width - 1] + "…"
        console.print(cut, highlight=False, markup=False, soft_wrap=True)
    counts = Table("reason", "letters", "could be sent again")
    for r, n in by_reason.most_common():
        counts.add_row(printable(r), str(n), str(replayable[r]))
    console.print(counts if total else "no dead letters" + (" match" if reason or since else ""))
    if refused_again:
        console.print(f"{refused_again} of them refused again after a replay (their letters name the replayed one)")
    if json_out:
        emit_json(
            {
                "dead_letters": total,
                "by_reason": dict(by_reason.most_common()),
                "by_source": dict(by_source.most_common()),
                "replayable": dict(replayable.most_common()),
                "refused_after_replay": refused_again,
                "newest": newest,
            }
        )


SEND_CHUNK = 5_000  # records handed over between waits for delivery: the futures held stay bounded


@dataclass
class Delivery:
    """What the broker said of the records a replay handed it: the letters it has (only those are
    recorded on vigil.audit), by topic, and those it refused, by error."""

    delivered: list[tuple[int, int]] = field(default_factory=list)
    by_topic: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def settle(self, producer: Any, in_flight: list[tuple[tuple[int, int], str, Any]]) -> None:
        """Wait for the records in flight and sort them. kafka-python's ``flush`` returns (or times
        out) without saying which records failed: each future does, and a refused record counted as
        sent was recorded as replayed and skipped by every later replay."""
        from contextlib import suppress

        from kafka.errors import KafkaError, KafkaTimeoutError

        with suppress(KafkaTimeoutError):  # the futures say which records are in; the others count as refused
            producer.flush(timeout=60)
        deadline = time.monotonic() + 5  # after a flush that timed out: a few seconds for all, not each
        for coordinates, topic, future in in_flight:
            try:
                future.get(timeout=max(deadline - time.monotonic(), 0.0))
            except KafkaError as exc:
                self.refused[type(exc).__name__] += 1
            else:
                self.delivered.append(coordinates)
                self.by_topic[topic] += 1
        in_flight.clear()


def _refused_error(delivery: Delivery, stopped: bool) -> UserError:
    refused = sum(delivery.refused.values())
    why = ", ".join(f"{name} x{n}" for name, n in delivery.refused.most_common())
    rest = "; the letters after it were not sent" if stopped else ""
    return UserError(
        f"the broker refused {refused} letter(s) of the replay ({why}){rest}: they are not recorded as "
        f"replayed; fix the cause and run it again (the {len(delivery.delivered)} delivered are recorded on "
        "vigil.audit and skipped)"
    )


@deadletters_app.command("replay")
def deadletters_replay(
    reason: Annotated[list[str], typer.Option("--reason", help="send again the letters of this reason (repeat)")],
    since: SinceOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be sent; send nothing")] = False,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="send letters an earlier replay sent too (an event applied then comes back a duplicate)",
        ),
    ] = False,
    bootstrap: BootstrapOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Send the originals of the dead letters of REASON (among their reasons, not only the first) again,
    to the topic each came in on, once their cause is fixed (a worker upgraded, a code map completed,
    a site's time zone set). Inputs only, whole originals
    only, never a duplicate, never a letter an earlier replay sent; each replay is recorded on
    vigil.audit (docs/operations.md, "Dead letters"), once the broker has every record it names."""
    import json

    from kafka.errors import KafkaError

    from vigil.infra.connect import kafka_producer
    from vigil.infra.deadletters import (
        AUDIT_KEY,
        NEVER_RESENT,
        REPLAYED_BEFORE,
        Replayed,
        read_replayed,
        replay_record,
    )
    from vigil.schemas import topics
    from vigil.schemas.deadletter import REPLAY_HEADER

    for never, why in NEVER_RESENT.items():
        if never in reason:
            raise UserError(why)
    chosen_since = _since(since)
    settings, letters = _letters(bootstrap)
    try:
        before = Replayed({}) if again else read_replayed(settings)
    except TimeoutError as exc:
        raise _read_error(exc) from None
    producer = None if dry_run else kafka_producer(settings, client_id="vigil-deadletters", linger_ms=20)
    delivery = Delivery()
    in_flight: list[tuple[tuple[int, int], str, Any]] = []
    would_send: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    matched = 0
    stopped = False  # the producer refused a record outright (the broker away, a record too large)
    try:
        for item, plan in _matching(letters, reason, chosen_since):
            matched += 1
            if isinstance(plan, str):
                skipped[plan] += 1
                continue
            if before.sent(item):
                skipped[REPLAYED_BEFORE] += 1
                continue
            if producer is None:
                would_send[plan.topic] += 1
                continue
            place = f"{topics.DEADLETTER}/{item.partition}/{item.offset}".encode()
            try:
                future = producer.send(plan.topic, key=plan.key, value=plan.value, headers=[(REPLAY_HEADER, place)])
            except KafkaError as exc:
                delivery.refused[type(exc).__name__] += 1
                stopped = True
                break
            in_flight.append((item.coordinates, plan.topic, future))
            if len(in_flight) >= SEND_CHUNK:
                delivery.settle(producer, in_flight)
        if producer is not None:
            delivery.settle(producer, in_flight)
            # the audit names only what the broker has: a refused letter stays for the next replay
            for record in replay_record(delivery.delivered, reason) if delivery.delivered else []:
                producer.send(topics.AUDIT, key=AUDIT_KEY, value=json.dumps(record).encode()).get(timeout=30)
    except TimeoutError as exc:
        raise _read_error(exc) from None
    except KafkaError as exc:
        raise UserError(
            f"the broker refused the replay's audit record ({type(exc).__name__}) after "
            f"{len(delivery.delivered)} letter(s) were delivered: a later replay sends those again "
            "(their events come back as duplicate letters, not second scores)"
        ) from None
    finally:
        if producer is not None:
            producer.close(timeout=10)
    by_topic = would_send if dry_run else delivery.by_topic
    sent = sum(by_topic.values())
    verb = "would send" if dry_run else "sent"
    console.print(
        f"{matched} dead letter(s) of {', '.join(sorted(reason))}: {verb} {sent} again"
        + "".join(f", {n} to {t}" for t, n in by_topic.most_common())
    )
    for why, n in skipped.most_common():
        console.print(f"  not sent: {n} {why.replace('_', ' ')}")
    if delivery.refused:
        raise _refused_error(delivery, stopped)
    if json_out:
        emit_json(
            {
                "matched": matched,
                "sent": 0 if dry_run else sent,
                "would_send": sent if dry_run else None,
                "by_topic": dict(by_topic),
                "skipped": dict(skipped),
                "dry_run": dry_run,
                "audited": bool(delivery.delivered),
            }
        )


def register(app: typer.Typer) -> None:
    app.add_typer(deadletters_app, name="deadletters")
