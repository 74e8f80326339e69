"""Batches from a Faust stream that grow while the worker is busy: the agents' ``take``.

Faust's ``Stream.take_events(max_, within)`` stops reading the stream while a batch is being
processed and then waits ``within`` before handing over the next one, so the next batch holds only
what the stream delivers in that window. A worker that falls behind therefore keeps taking small
batches and never catches up by batching: at 1,000 events/s on two cores with a 10 ms window the
batches stayed at ~40 events while the oldest event's wait grew ~35 ms per batch
(docs/performance.md, "Latency work").

``take_growing`` reads on into the next batch while the current one is processed (at most ``max_``
events held), and hands a batch over as soon as the previous one is done when events have gathered
meanwhile: they have waited a whole batch already. Only a batch that starts from an empty buffer
waits ``within`` after its first event for the ones that come with it.

Acks are Faust's, as in ``take_events``: the events of a batch are acked when the next batch is
requested, after the batch was processed; an event read ahead is never acked before its own batch is
done, so a crash redelivers it (at-least-once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from mode.utils.locks import Event


def take_growing(stream: faust.StreamT, max_: int, within: float) -> AsyncIterator[list[faust.EventT]]:
    """Batches of at most ``max_`` events of ``stream`` (module docstring)."""
    s = cast(faust.Stream, stream)
    batches = _take(s, max_, within)
    # like Faust's own take generators: closed by the stream when it stops, whoever holds them
    active: Any = getattr(s, "_active_agens", set())
    active.add(batches)
    return batches


async def _take(s: faust.Stream, max_: int, within: float) -> AsyncIterator[list[faust.EventT]]:
    held: list[faust.EventT] = []
    arrived = Event()  # an event reached an empty buffer
    full = Event()  # ``max_`` events are held: hand them over without waiting
    room = Event()  # the reader may add again (cleared while full)
    room.set()

    async def hold(value: Any) -> Any:
        while len(held) >= max_:
            full.set()
            room.clear()
            await s.wait(room)  # returns early when the stream stops
            if s.should_stop:
                return value
        event = s.current_event
        if event is None:
            raise RuntimeError("take_growing found no current event")
        held.append(event)
        arrived.set()
        if len(held) >= max_:
            full.set()
        return value

    enable_acks = s.enable_acks
    s.enable_acks = False  # acked here, after the batch that holds the event is done
    s.add_processor(hold)
    s._enable_passive(cast(faust.ChannelT, aiter(s.channel)))
    try:
        while not s.should_stop:
            if not held:
                arrived.clear()
                await s.wait_for_stopped(arrived)
                if s.should_stop or not held:
                    continue
                if within > 0 and not full.is_set():
                    await s.wait_for_stopped(full, timeout=within)  # its companions
            batch = held[:]
            del held[:]
            full.clear()
            room.set()
            try:
                yield batch
            finally:
                for event in batch:
                    await s.ack(event)
    finally:
        s.enable_acks = enable_acks
        s._processors.remove(hold)
