"""``vigil deadletters``: what was refused and why (``ls``), and sending the originals again once
their cause is fixed (``replay``; the rules are ``infra.deadletters``'). Neither prints a patient's
values or ids: a letter shows its reason, detail (which never holds patient values), source, size
and place in the topic."""

from __future__ import annotations

from collections import Counter, deque
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


def _chosen(item: Any, reasons: list[str] | None, since: datetime | None) -> bool:
    letter = item.letter
    if letter is None:  # its own record does not parse: no reason or time to filter by
        return (not reasons or "unreadable" in reasons) and since is None
    at = letter.at if letter.at.tzinfo is not None else letter.at.replace(tzinfo=UTC)  # written naive: UTC
    return (not reasons or letter.reason in reasons) and (since is None or at >= since)


def _matching(letters: Any, reasons: list[str] | None, since: datetime | None) -> Any:
    """(letter, what a replay would send or why not) of the letters the filters choose."""
    from vigil.infra.deadletters import resend_of

    for item in letters:
        if _chosen(item, reasons, since):
            yield item, resend_of(item)


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
    """Count the dead letters by reason and source, say how many could be sent again, and list the
    newest (reason, detail, source, size; never the original's content)."""

    chosen_since = _since(since)
    _, letters = _letters(bootstrap)
    by_reason: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    replayable: Counter[str] = Counter()
    newest: deque[dict[str, Any]] = deque(maxlen=limit)
    total = 0
    try:
        for item, plan in _matching(letters, reason, chosen_since):
            total += 1
            letter = item.letter
            r = letter.reason if letter is not None else "unreadable"
            by_reason[r] += 1
            by_source[letter.source_topic if letter is not None else "?"] += 1
            if not isinstance(plan, str):
                replayable[r] += 1
            newest.append(
                {
                    "partition": item.partition,
                    "offset": item.offset,
                    "at": letter.at.isoformat(timespec="seconds") if letter else None,
                    "reason": r,
                    "detail": letter.detail if letter else "",
                    "source": letter.source_topic if letter else None,
                    "bytes": letter.original_size if letter else None,
                    "replay": plan.topic if not isinstance(plan, str) else f"no: {plan}",
                }
            )
    except TimeoutError as exc:
        raise _read_error(exc) from None
    for row in newest:  # one line each, cut at the terminal's width
        again = "yes" if not row["replay"].startswith("no: ") else row["replay"][4:]
        when = str(row["at"])[5:19].replace("T", " ")
        place = f"{row['source']} {row['partition']}/{row['offset']}"
        line = f"{when}  {row['reason']:<19} {place:<22} again: {again:<4} {row['detail']}"
        cut = line if len(line) <= console.width else line[: console.width - 1] + "…"
        console.print(cut, highlight=False, markup=False, soft_wrap=True)
    counts = Table("reason", "letters", "could be sent again")
    for r, n in by_reason.most_common():
        counts.add_row(r, str(n), str(replayable[r]))
    console.print(counts if total else "no dead letters" + (" match" if reason or since else ""))
    if json_out:
        emit_json(
            {
                "dead_letters": total,
                "by_reason": dict(by_reason.most_common()),
                "by_source": dict(by_source.most_common()),
                "replayable": dict(replayable.most_common()),
                "newest": list(newest),
            }
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
    """Send the originals of the dead letters of REASON again, to the topic each came in on, once
    their cause is fixed (a worker upgraded, a code map completed). Inputs only, whole originals
    only, never a duplicate, never a letter an earlier replay sent; each replay is recorded on
    vigil.audit (docs/operations.md, "Dead letters")."""
    import json

    from kafka.errors import KafkaError

    from vigil.infra.connect import kafka_producer
    from vigil.infra.deadletters import (
        AUDIT_KEY,
        NEVER_RESENT,
        REPLAY_HEADER,
        REPLAYED_BEFORE,
        Replayed,
        read_replayed,
        replay_record,
    )
    from vigil.schemas import topics

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
    sent: list[tuple[int, int]] = []
    by_topic: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    matched = 0
    try:
        for item, plan in _matching(letters, reason, chosen_since):
            matched += 1
            if isinstance(plan, str):
                skipped[plan] += 1
                continue
            if item.coordinates in before:
                skipped[REPLAYED_BEFORE] += 1
                continue
            if producer is not None:
                place = f"{topics.DEADLETTER}/{item.partition}/{item.offset}".encode()
                producer.send(plan.topic, key=plan.key, value=plan.value, headers=[(REPLAY_HEADER, place)])
            sent.append(item.coordinates)
            by_topic[plan.topic] += 1
        if producer is not None:
            producer.flush(timeout=60)
            if sent:
                for record in replay_record(sent, reason):
                    producer.send(topics.AUDIT, key=AUDIT_KEY, value=json.dumps(record).encode()).get(timeout=30)
    except TimeoutError as exc:
        raise _read_error(exc) from None
    except KafkaError as exc:
        raise UserError(
            f"the broker refused the replay ({type(exc).__name__}) after {len(sent)} letter(s) were handed to it: "
            "run it again (letters already recorded on vigil.audit are skipped; the others score once more "
            "at most, as duplicates)"
        ) from None
    finally:
        if producer is not None:
            producer.close(timeout=10)
    verb = "would send" if dry_run else "sent"
    console.print(
        f"{matched} dead letter(s) of {', '.join(sorted(reason))}: {verb} {len(sent)} again"
        + "".join(f", {n} to {t}" for t, n in by_topic.most_common())
    )
    for why, n in skipped.most_common():
        console.print(f"  not sent: {n} {why.replace('_', ' ')}")
    if json_out:
        emit_json(
            {
                "matched": matched,
                "sent": 0 if dry_run else len(sent),
                "would_send": len(sent) if dry_run else None,
                "by_topic": dict(by_topic),
                "skipped": dict(skipped),
                "dry_run": dry_run,
                "audited": bool(sent) and not dry_run,
            }
        )


def register(app: typer.Typer) -> None:
    app.add_typer(deadletters_app, name="deadletters")
