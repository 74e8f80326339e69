"""Per-patient state in Redis: one pipelined round trip to read a batch, one to write it.

Keys hold a keyed hash of the patient id, not the id (state cannot be enumerated by MRN), keyed
with ``state_hash_key`` (default: ``log_hash_key``), so the log key can rotate without orphaning
state (docs/security.md). Writes that fail are retried until Redis answers again; the caller does
not ack the Kafka events meanwhile, so nothing accepted is lost and the worker never crash-loops.
A write that other writers keep beating to its keys is retried too, as contention, not an outage.
Window and carry blobs are stored deflated (``pack_state``); every read goes through
``unpack_state``, which also reads blobs written before packing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError, RedisError, WatchError

from vigil.infra import metrics
from vigil.infra.connect import redis_async_client
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings, get_settings
from vigil.models.alerting import PatientAlertState, needs_timer
from vigil.models.stays import HeldStay
from vigil.models.stepping import StayCarry
from vigil.models.window import NewerTreatmentTable, PatientWindow
from vigil.schemas.codecs.fhir_places import EncounterKey, Place, places_from_json, places_to_json

log = get_logger(__name__)
T = TypeVar("T")
Queue = Callable[[Any], None]  # queues the commands of a MULTI on a pipeline

# errors of a Redis that answers but refuses: its ACL (a user, a password, a command or key denied);
# the worker keeps retrying (nothing is lost: no offset is committed for
# unwritten state) and says what to do
REFUSED = (NoPermissionError, AuthenticationError, AuthorizationError)
REFUSED_HINT = "Redis refuses Vigil's command: check the ACL of Vigil's user and its password (docs/security.md)"
CAS_ATTEMPTS = 5  # optimistic rounds of a write (_watched) before it gives up
RETRY_MAX_S = 2.0  # the longest wait between two tries of a Redis call, an outage's or a contended write's
OPEN_ALERTS_KEY = "vigil:open_alerts"  # set of alert keys whose alert is open (escalation timer)


class WriteContended(Exception):
    """A write whose keys other writers changed in each of its ``CAS_ATTEMPTS`` rounds: Redis answered
    every round (``_until_ok`` retries it as contention, the store healthy)."""


def lost_connection(exc: WatchError) -> bool:
    """Whether a ``WatchError`` is an outage: redis-py raises one, not a ``ConnectionError``, when the
    connection of a pipeline that watches keys fails or times out ("A ConnectionError occurred while
    watching one or more keys"). Read as contention, a Redis that took WATCH and then dropped every
    connection left the store healthy: ``vigil_redis_up`` 1, no outage alert."""
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return "occurred while watching" in str(exc) or isinstance(cause, (RedisError, OSError))


def state_hash(patient_id: str) -> str:
    """Keyed HMAC-SHA256 of the patient id in Redis keys (64 bits, like ``patient_hash``)."""
    settings = get_settings()
    key = (settings.state_hash_key or settings.log_hash_key).get_secret_value().encode()
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:16]


def window_key(patient_id: str) -> str:
    return f"vigil:w:{state_hash(patient_id)}"


def carry_key(patient_id: str) -> str:
    """The stepping carry (``models.stepping.StayCarry``): aggregates and recurrent states beside the window."""
    return f"vigil:c:{state_hash(patient_id)}"


def alert_key(patient_id: str) -> str:
    return f"vigil:a:{state_hash(patient_id)}"


def care_key(patient_id: str) -> str:
    return f"vigil:t:{state_hash(patient_id)}"


def held_keys(patient_id: str) -> tuple[str, str, str]:
    """Window, carry and care clock of the patient's last ended stay, held for a cancel of its
    discharge (``models.stays.HeldStay``) until the state's TTL."""
    h = state_hash(patient_id)
    return f"vigil:hw:{h}", f"vigil:hc:{h}", f"vigil:ht:{h}"


def discharged_key(patient_id: str) -> str:
    """The time (epoch s) of the patient's last discharge Vigil held: after its cancel, that
    discharge sent again is a duplicate, not a second end (``models.stays.stay_of``)."""
    return f"vigil:hx:{state_hash(patient_id)}"


def places_key(encounter: EncounterKey) -> str:
    """The units of a FHIR Encounter (``schemas.codecs.fhir_places.Place``), kept for the results
    sent apart from it: its patient's and its own id hashed as patient ids are (a visit number
    identifies a patient)."""
    patient_id, encounter_id = encounter
    return f"vigil:fe:{state_hash(patient_id + chr(0) + encounter_id)}"


def places_read(encounters: list[EncounterKey], blobs: list[Any]) -> dict[EncounterKey, tuple[Place, ...]]:
    """The replies of ``queue_places_read`` of each Encounter, read: the ones kept (none for a missing or
    unreadable blob). The workers' store and ``vigil serve`` (a sync client) read them alike."""
    return {e: places for e, blob in zip(encounters, blobs, strict=True) if (places := places_from_json(blob))}


def queue_places_read(pipe: Any, encounters: list[EncounterKey], ttl_s: int) -> None:
    """Each Encounter's units read on ``pipe`` (sync or async) with GETEX, which restarts their TTL:
    an Encounter whose results keep coming stays kept as long as its patient's state does, though
    its last update is older than the TTL (a ward stay of 8 days must not have its results scored
    unplaced on the 8th). ``places_read`` reads the replies; GETEX needs Redis 6.2."""
    for encounter in encounters:
        pipe.getex(places_key(encounter), ex=ttl_s)


def queue_places(pipe: Any, encounters: dict[EncounterKey, tuple[Place, ...]], ttl_s: int) -> None:
    """Each Encounter's units SET on ``pipe`` (sync or async) with the state's TTL."""
    for encounter, places in encounters.items():
        pipe.set(places_key(encounter), places_to_json(places), ex=ttl_s)


# A packed blob starts with this byte, then raw deflate (no zlib header or checksum: Redis keeps
# the bytes as given). No unpacked state blob starts with it: window and carry blobs start with
# their version (1 or 2), alert and care blobs with "{" (JSON).
PACKED = 0xFA
PACK_LEVEL = 1


def pack_state(blob: bytes) -> bytes:
    """A window or carry blob as it is written to Redis: deflated when that is shorter."""
    packed = bytes((PACKED,)) + zlib.compress(blob, PACK_LEVEL, wbits=-15)
    return packed if len(packed) < len(blob) else blob


def unpack_state(blob: bytes | str | None) -> bytes | None:
    """Any state blob as read from Redis, packed (``pack_state``) or not (written before packing)."""
    raw = blob.encode() if isinstance(blob, str) else blob
    if raw and raw[0] == PACKED:
        return zlib.decompress(raw[1:], wbits=-15)
    return raw


def _carry_or_none(blob: bytes | str | None) -> StayCarry | None:
    """A carry this version cannot read (another blob version) is rebuilt from the window, not fatal."""
    if not blob:
        return None
    try:
        return StayCarry.from_bytes(unpack_state(blob))
    except (ValueError, struct.error, zlib.error) as exc:
        log.warning("carry.unreadable", error=type(exc).__name__)
        return None


@dataclass(frozen=True)
class StayChange:
    """What a batch did to a patient's stays (``models.stays``), in order; each changes the keys
    beside the window when the state is written. ``end``: the stay is held (window, carry, a copy of
    the care clock), then its carry and care clock are deleted; ``begin``: the next stay starts
    without them; ``late``: a late result joined the held stay; ``resume``: the held stay's care
    clock comes back (unless the next stay's is the only one) and the held keys go, but the time of
    the discharge it cancelled stays (``discharged_key``); its carry is the state's; ``release``: the
    held stay goes (a later hospital discharge: nothing can resume it now)."""

    kind: Literal["end", "begin", "late", "resume", "release"]
    held: HeldStay | None = None  # end, late: the stay as held
    discharged_s: int | None = None  # end: the discharge's own time


@dataclass(frozen=True)
class StayKeys:
    """What the scoring step reads beside a patient's state when a batch has a discharge, a cancel or
    a late event of an ended stay: the held stay and the time of the last discharge held."""

    held: HeldStay | None = None
    discharged_s: int | None = None


@dataclass
class PatientState:
    """What the scoring step reads and writes per patient in one round trip each."""

    window: PatientWindow
    carry: StayCarry | None
    alert: PatientAlertState
    stays: list[StayChange] = field(default_factory=list)
    # the window and alert blobs as ``load_states`` read them (None: absent), when ``read``: the write
    # goes only where the keys still hold them (``save_states``), so a worker that lost the partition
    # mid-batch cannot write over its new owner, nor over an answer the new owner applied. A state not
    # read (a tool, a test) is written as it is
    loaded: bytes | None = None
    loaded_alert: bytes | None = None
    read: bool = False

    @property
    def restart(self) -> bool:
        """A stay ended, began or resumed in this batch: the keys beside the window change."""
        return bool(self.stays)


def newer_window(raw: bytes | None) -> bool:
    """Whether an unpacked window blob is of a version past this worker's: a newer release wrote it
    (docs/operations.md, "Upgrading workers"), not damage. The version is the blob's first byte (a
    packed one starts with PACKED: unpack it first); a window blob is never JSON, whose "{" is past
    every version."""
    if not raw:
        return False
    return PatientWindow._VERSION < raw[0] < ord("{")


def window_ahead(ours: PatientWindow, now: bytes | str | None) -> bool:
    """Whether the window another writer left (``now``, as stored, packed or not) stands ahead of
    ``ours`` in the stream, so that ours must be left unwritten. One behind ours (its write landed
    between this batch's read and write) is not ahead: this batch holds its events too (read from
    the committed offset) and writes over it. A blob of a newer release is ahead: an older worker
    mid-upgrade cannot read its position, and wrote its older state over the newer one when that
    was taken for damage. A damaged one is not: ours is the state to keep."""
    raw: bytes | None = None
    try:
        raw = unpack_state(now)
        theirs = PatientWindow.from_bytes(raw).position if raw else None
    except NewerTreatmentTable:
        return True  # a newer release's treatments: its writer is ahead, as a newer version's
    except (ValueError, struct.error, zlib.error):
        return newer_window(raw)
    position = ours.position
    if position is None or theirs is None or theirs[0] != position[0]:
        return True  # no position to compare on one partition: keep what the other wrote
    return theirs[1] >= position[1]


def superseded_state(state: PatientState, written: bytes, window_now: bytes | None) -> bool:
    """Whether another writer changed the patient's window since ``load_states`` read it and stands
    ahead in the stream (``window_ahead``), so that this batch's state (``written``: its window blob,
    as packed) is left as the other wrote it."""
    if not state.read or window_now in (state.loaded, written):
        return False  # as read, or holding this batch's blob already: written (``save_states``)
    return window_ahead(state.window, window_now)


class AnsweredMeanwhile(Exception):
    """An alert lifecycle the batch read was answered since (``answered_since``): nothing of the
    batch is written, and it is handled again from what is there now (``agents.guard``: transient),
    as the acks are when a batch wrote first (``StateMoved``)."""


def answered_since(state: PatientState, window_now: bytes | None, alert_now: bytes | None) -> bool:
    """Whether the alert lifecycle alone was written by another since ``load_states`` read it (the
    window as read; a late batch of the old owner changes both, and is written over), to neither
    what it was nor what this batch writes: an answer or an escalation applied meanwhile (the acks
    and the timer write the alert key alone, ``save_alerts_if_unchanged``). In a rebalance the new
    owner applied a clinician's acknowledgement, and the old owner's batch wrote the open alert back
    over it, to be paged by the escalation timer. Neither lifecycle is right alone: the answer's
    lacks the batch's transitions (a discharge's resolution: the snoozed alert of a patient gone
    paged again), the batch's lacks the answer. So the batch is applied again to the answered one
    (``AnsweredMeanwhile``), whichever worker's it is: the alert key holds no stream position to tell
    the old owner's batch from the new one's, whose offsets are committed. On one worker an answer
    never lands between a batch's read and write: the scoring step, the acks and the timer each hold
    ``alert_lock`` from read to write."""
    if not state.read or window_now != state.loaded or alert_now == state.loaded_alert:
        return False  # the common case, decided without serialising the lifecycle on the batch's path
    return alert_now != state.alert.to_bytes()


def _window_or_new(blob: bytes | str | None) -> PatientWindow:
    """A window blob that does not read (damaged, cut short) starts the stay's window afresh
    (logged, counted): the patient is scored from the next events on, not sent to the dead letters
    for every event until the key expires (7 days). A blob of a newer version than this worker's
    still raises: an older worker mid-upgrade must not overwrite it (docs/operations.md, "Upgrading
    workers")."""
    raw: bytes | None = None
    try:
        raw = unpack_state(blob)
        return PatientWindow.from_bytes(raw)
    except (ValueError, struct.error, zlib.error) as exc:
        if newer_window(raw):
            raise
        metrics.WINDOWS_UNREADABLE.inc()
        log.error("window.unreadable", error=type(exc).__name__)
        return PatientWindow()


def _alert_or_new(blob: bytes | str | None) -> PatientAlertState:
    """An alert state that does not parse starts afresh (logged): scoring goes on; at worst an alert
    that was active opens again, a page rather than a patient left unscored."""
    try:
        return PatientAlertState.from_bytes(blob.encode() if isinstance(blob, str) else blob)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        log.warning("alert_state.unreadable", error=type(exc).__name__)
        return PatientAlertState()


class RedisHealth:
    """Readiness as seen by the worker: False while Redis calls are failing."""

    def __init__(self) -> None:
        self.ok = True
        self.failures = 0
        self.last_latency_s = 0.0


class PatientStore:
    def __init__(self, client: Any, ttl_s: int, health: RedisHealth | None = None) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.health = health or RedisHealth()

    @classmethod
    def connect(cls, settings: Settings, health: RedisHealth | None = None) -> PatientStore:
        """The worker's store, connected through ``infra.connect`` (credentials included)."""
        client = redis_async_client(settings, socket_timeout=5, socket_connect_timeout=2, decode_responses=False)
        return cls(client, settings.redis.ttl_s, health)

    async def close(self) -> None:
        await self.client.aclose()

    async def _until_ok(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` until it succeeds, waiting longer each time up to ``RETRY_MAX_S``. A Redis that
        fails marks the store unhealthy (not ready); a write whose keys kept changing for
        ``CAS_ATTEMPTS`` rounds (``WatchError``: other writers, as in a rebalance) does not: Redis
        answered every round, and calling it down would page for an outage that is not there."""
        delay = 0.1
        while True:
            t0 = time.perf_counter()
            try:
                result = await call()
            except WriteContended:  # Redis answered every round
                log.warning("redis.write_contended", op=what, attempts=CAS_ATTEMPTS, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except (RedisError, OSError) as exc:
                self.health.ok = False
                self.health.failures += 1
                if isinstance(exc, REFUSED):  # up, but refusing: mended only by its operator
                    log.error(
                        "redis.refused", op=what, error=type(exc).__name__, detail=str(exc)[:200], hint=REFUSED_HINT
                    )
                else:
                    log.warning("redis.unavailable", op=what, error=type(exc).__name__, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.health.last_latency_s = time.perf_counter() - t0
            if not self.health.ok:
                log.info("redis.recovered", op=what)
            self.health.ok = True
            return result

    async def load_windows(self, patient_ids: Iterable[str]) -> dict[str, PatientWindow]:
        ids = list(patient_ids)
        blobs = await self._until_ok("mget", lambda: self.client.mget([window_key(p) for p in ids]))
        return {pid: PatientWindow.from_bytes(unpack_state(blob)) for pid, blob in zip(ids, blobs, strict=True)}

    async def load_states(self, patient_ids: Iterable[str]) -> dict[str, PatientState]:
        """Window, stepping carry and alert lifecycle of each patient in one MGET."""
        ids = list(patient_ids)
        keys = [k for p in ids for k in (window_key(p), carry_key(p), alert_key(p))]
        blobs = await self._until_ok("mget", lambda: self.client.mget(keys))
        return {
            pid: PatientState(
                _window_or_new(blobs[3 * i]),
                _carry_or_none(blobs[3 * i + 1]),
                _alert_or_new(blobs[3 * i + 2]),
                loaded=blobs[3 * i],
                loaded_alert=blobs[3 * i + 2],
                read=True,
            )
            for i, pid in enumerate(ids)
        }

    async def load_stay_keys(self, patient_ids: Iterable[str]) -> dict[str, StayKeys]:
        """The held ended stay and the time of the last discharge held of each patient, in one MGET (an unreadable
        held stay is none: a cancel of it is then refused, never a crash)."""
        ids = list(patient_ids)
        if not ids:
            return {}
        keys = [k for p in ids for k in (*held_keys(p)[:2], discharged_key(p))]
        blobs = await self._until_ok("mget", lambda: self.client.mget(keys))
        out: dict[str, StayKeys] = {}
        for i, pid in enumerate(ids):
            window_blob, carry_blob, discharged = blobs[3 * i : 3 * i + 3]
            try:
                window = PatientWindow.from_bytes(unpack_state(window_blob)) if window_blob else None
            except (ValueError, struct.error, zlib.error) as exc:
                log.warning("held_stay.unreadable", error=type(exc).__name__)
                window = None
            held = HeldStay(window, _carry_or_none(carry_blob)) if window is not None else None
            out[pid] = StayKeys(held, int(discharged) if discharged and discharged.isdigit() else None)
        return out

    async def save_states(self, states: dict[str, PatientState]) -> list[str]:
        """Window, carry and alert lifecycle of each patient, and whether the escalation timer looks
        at it (``OPEN_ALERTS_KEY``), as one MULTI/EXEC: a reader never sees a window without the
        carry and the alert state that match it (no carry yet: none is written; a stay that ended,
        began or resumed: its keys beside the window change in the same transaction, ``StayChange``).

        Only for the patients whose window key still holds the blob the batch read, or one behind
        it in the stream (``PatientState.loaded``; WATCH, then the transaction): a worker that lost
        the partition while its batch waited (Faust does not wait for it at a rebalance) wrote the
        state it read over the new owner's newer one, and the hours the new owner had applied and
        committed were gone from the stay. Those patients are left as they are (counted, logged) and
        come back (``superseded_state``); a window that already holds what this batch writes counts
        as written (a retry after a lost reply). An alert lifecycle that an answer wrote since the
        read (``loaded_alert``, ``answered_since``) writes nothing of the batch, which is handled
        again (``AnsweredMeanwhile``, logged ``state.answered_meanwhile``): an acknowledgement the new
        owner applied was open again after the old owner's batch."""
        if not states:
            return []
        blobs = {pid: pack_state(state.window.to_bytes()) for pid, state in states.items()}
        keys = {pid: window_key(pid) for pid in states}
        alerts = {pid: alert_key(pid) for pid in states}

        # the care clocks of the stays that end, begin or resume: read under the WATCH (the treatment
        # agent writes them) for an end's held copy (``_queue_stay_change``)
        clocks = {pid: care_key(pid) for pid, state in states.items() if state.stays}

        answered_ids: list[str] = []  # the patients whose lifecycle an answer wrote since (``answered_since``)

        async def plan(pipe: Any) -> tuple[Queue | None, list[str]]:
            read = await pipe.mget([*keys.values(), *alerts.values()])
            now = dict(zip(keys, read[: len(keys)], strict=True))
            answered = dict(zip(alerts, read[len(keys) :], strict=True))
            live = {pid: bool(await pipe.exists(key)) for pid, key in clocks.items()}
            moved = [pid for pid in states if superseded_state(states[pid], blobs[pid], now[pid])]
            # a window that holds this batch's blob already: the EXEC of a write whose reply was lost
            # applied all of it (sent again, an end deleted the held care clock the first had copied,
            # its source gone)
            done = [pid for pid in states if states[pid].read and now[pid] == blobs[pid]]
            todo = {pid: state for pid, state in states.items() if pid not in moved and pid not in done}
            answered_ids[:] = [pid for pid in todo if answered_since(todo[pid], now[pid], answered[pid])]
            if not todo or answered_ids:
                return None, moved  # answered: nothing written, the batch again (``AnsweredMeanwhile``)

            def queue(pipe: Any) -> None:
                for pid, state in todo.items():
                    clock = live.get(pid, False)
                    for change in state.stays:
                        clock = self._queue_stay_change(pipe, pid, change, clock)
                    pipe.set(keys[pid], blobs[pid], ex=self.ttl_s)
                    if state.carry is not None:
                        pipe.set(carry_key(pid), pack_state(state.carry.to_bytes()), ex=self.ttl_s)
                self._queue_alerts(pipe, {alerts[pid]: state.alert for pid, state in todo.items()})

            return queue, moved

        async def write() -> list[str]:
            done, moved = await self._watched([*keys.values(), *alerts.values(), *clocks.values()], plan)
            if not done:
                raise WriteContended("patient windows or alerts kept changing during the write")  # _until_ok retries
            return moved

        moved = await self._until_ok("set", write)
        if answered_ids:
            log.warning("state.answered_meanwhile", patients=len(answered_ids))
            raise AnsweredMeanwhile(f"{len(answered_ids)} alert lifecycles answered since the batch read them")
        if moved:
            metrics.STATES_SUPERSEDED.inc(len(moved))
            log.warning("state.superseded", patients=len(moved))
        return moved

    async def _watched(
        self, watch: list[str], plan: Callable[[Any], Awaitable[tuple[Queue | None, T]]]
    ) -> tuple[bool, T]:
        """One optimistic write (the ACL denies @scripting, docs/security.md: no Lua): WATCH the keys;
        ``plan`` reads them on the pipeline and returns what to queue in the MULTI (none: nothing to
        write) and its result; a write between the read and the EXEC aborts the EXEC and the keys are
        read again, at most ``CAS_ATTEMPTS`` times. Returns whether a round went through (or had
        nothing to write), and the last round's result."""
        result: T | None = None
        for _ in range(CAS_ATTEMPTS):
            async with self.client.pipeline(transaction=True) as pipe:
                await pipe.watch(*watch)
                queue, result = await plan(pipe)
                if queue is None:
                    await pipe.unwatch()
                    return True, result
                pipe.multi()
                queue(pipe)
                try:
                    await pipe.execute()
                except WatchError as exc:
                    if lost_connection(exc):
                        raise  # an outage, for _until_ok: not a round lost to another writer
                    continue  # a key was written meanwhile: read them again
                return True, result
        assert result is not None  # CAS_ATTEMPTS > 0
        return False, result

    async def save_alerts(self, alerts: dict[str, PatientAlertState]) -> None:
        """Alert lifecycles alone, by alert key (acknowledgements, the escalation timer), with the
        timer's set, as one MULTI/EXEC."""

        async def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            self._queue_alerts(pipe, alerts)
            await pipe.execute()

        await self._until_ok("set", write)

    def _queue_stay_change(self, pipe: Any, pid: str, change: StayChange, clock: bool) -> bool:
        """One ``StayChange`` of the patient's keys, in the write's transaction; ``clock``: the stay has
        a care clock (as the WATCH read it, then as this batch's changes before this one left it), which
        an end copies to the held copy (else an earlier stay's held copy goes: DEL + COPY, decided in
        the transaction, was sent again after a lost reply and deleted the copy the first had made).
        Returns whether the stay has a care clock after it."""
        h_window, h_carry, h_care = held_keys(pid)
        if change.kind in ("end", "late") and change.held is not None:
            pipe.set(h_window, pack_state(change.held.window.to_bytes()), ex=self.ttl_s)
            if change.held.carry is not None:
                pipe.set(h_carry, pack_state(change.held.carry.to_bytes()), ex=self.ttl_s)
            else:
                pipe.delete(h_carry)
        if change.kind == "end":
            # sent again after a lost reply, COPY finds no source (the first EXEC deleted it) and
            # leaves the copy it made; without a clock, an earlier stay's held copy goes
            if clock:
                pipe.copy(care_key(pid), h_care, replace=True)
            else:
                pipe.delete(h_care)
            if change.discharged_s is not None:
                pipe.set(discharged_key(pid), str(change.discharged_s), ex=self.ttl_s)
        if change.kind in ("end", "late"):
            pipe.expire(h_care, self.ttl_s)  # as long as the held window (COPY kept the clock's own TTL)
            pipe.expire(discharged_key(pid), self.ttl_s)
        if change.kind in ("end", "begin"):
            pipe.delete(carry_key(pid), care_key(pid))
        if change.kind == "release":
            pipe.delete(h_window, h_carry, h_care)
        if change.kind == "resume":
            # the held stay's clock is the earlier one; without it the next stay's (its time zero is
            # inside the resumed stay) stays
            pipe.delete(carry_key(pid))
            pipe.copy(h_care, care_key(pid), replace=True)
            pipe.delete(h_window, h_carry, h_care)
            pipe.expire(discharged_key(pid), self.ttl_s)
            # a clock or not (the held one, else the next stay's, else none): an end after it copies
            # what is there, and the held copy it would replace is gone already
            return True
        return False if change.kind in ("end", "begin") else clock

    def _queue_alerts(self, pipe: Any, alerts: dict[str, PatientAlertState]) -> None:
        """Each lifecycle under its alert key, and the key in or out of ``OPEN_ALERTS_KEY`` (the
        timer: open or snoozed)."""
        for key, alert in alerts.items():
            pipe.set(key, alert.to_bytes(), ex=self.ttl_s)
        timed = [k for k, a in alerts.items() if needs_timer(a)]
        untimed = [k for k, a in alerts.items() if not needs_timer(a)]
        if timed:
            pipe.sadd(OPEN_ALERTS_KEY, *timed)
        if untimed:
            pipe.srem(OPEN_ALERTS_KEY, *untimed)

    async def load_blobs(self, keys: list[str]) -> list[bytes | None]:
        """Any state keys (windows come back unpacked)."""
        blobs = await self._until_ok("mget", lambda: self.client.mget(keys))
        return [unpack_state(b) for b in blobs]

    async def save_alerts_if_unchanged(self, alerts: dict[str, tuple[bytes | None, PatientAlertState]]) -> list[str]:
        """Alert lifecycles (by alert key, each with the blob it was read from) written, with the
        timer's set, only where the key still holds that blob: an answer or a score another worker
        wrote meanwhile (the escalation timer of a worker that lost the patient's partition) is
        kept. The keys not written come back."""
        items = {key: (old, alert.to_bytes()) for key, (old, alert) in alerts.items()}
        return await self.save_blobs_if_unchanged(
            items, lambda pipe, todo: self._queue_alerts(pipe, {k: alerts[k][1] for k in todo})
        )

    async def save_blobs_if_unchanged(
        self,
        items: dict[str, tuple[bytes | None, bytes]],
        queue: Callable[[Any, list[str]], None] | None = None,
    ) -> list[str]:
        """Each key set to its new blob only if it still holds the blob read before (None: absent); the
        keys not written, changed meanwhile by another writer (the scoring step's end or resume of a
        stay), come back. A key that already holds the new blob counts as written: a retry after a lost
        reply is not a conflict. Optimistic (``_watched``): after ``CAS_ATTEMPTS`` aborted rounds all keys
        are reported. ``queue`` writes the keys to write on the transaction instead of a plain SET of each."""
        if not items:
            return []
        keys = list(items)

        async def plan(pipe: Any) -> tuple[Queue | None, list[str]]:
            now = dict(zip(keys, await pipe.mget(keys), strict=True))
            todo = [k for k in keys if now[k] == items[k][0]]  # as read (also: unchanged, TTL renewed)
            moved = [k for k in keys if now[k] != items[k][0] and now[k] != items[k][1]]
            if not todo:
                return None, moved

            def sets(pipe: Any) -> None:
                for key in todo:
                    pipe.set(key, items[key][1], ex=self.ttl_s)

            return (sets if queue is None else lambda pipe: queue(pipe, todo)), moved

        async def write() -> list[str]:
            done, moved = await self._watched(keys, plan)
            return moved if done else keys

        return await self._until_ok("cas", write)

    async def load_places(self, encounter_ids: Iterable[EncounterKey]) -> dict[EncounterKey, tuple[Place, ...]]:
        """The units of FHIR Encounters an earlier payload carried, by patient and Encounter id
        (absent: never seen, or neither updated nor read for the state's TTL); reading one keeps it
        for another TTL."""
        ids = list(encounter_ids)
        if not ids:
            return {}

        async def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            queue_places_read(pipe, ids, self.ttl_s)
            return list(await pipe.execute())

        return places_read(ids, await self._until_ok("get places", read))

    async def save_places(self, encounters: dict[EncounterKey, tuple[Place, ...]]) -> None:
        """Each Encounter's units as its newest update gives them (the last payload read wins)."""
        if not encounters:
            return

        async def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            queue_places(pipe, encounters, self.ttl_s)
            await pipe.execute()

        await self._until_ok("set places", write)

    async def open_alert_keys(self) -> list[str]:
        members = await self._until_ok("smembers", lambda: self.client.smembers(OPEN_ALERTS_KEY))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False
