"""A patient's recent state: a bounded window of hourly rows, kept in Redis as a compact blob.

Pure: applying events, building the model's hourly matrix and (de)serializing have no I/O.
Hour h of a patient is [anchor + h*3600, anchor + (h+1)*3600) where the anchor, hour 0, is the start
of the hour of the stay's first measurement (``_anchor_at_first_measurement``): an hour index is the
models' ``icu_hours``, hours since the stay's first measurement, as training and ``vigil predict``
count a .psv's rows from its first measured row (``models.hour_zero``; since bundle 2.7.0: before
it, from the file's first row, often empty, which no feed can send). It is not PhysioNet's ICULOS,
which no path reads.
Within one hour the latest observation of a variable wins (PhysioNet's hourly rows hold one
value per variable per hour), so re-applying a redelivered event is idempotent. A row that leaves
the window is kept with it only while the carry saved beside it has not folded it (``unfolded``: a
batch the models failed on).

Demographics (age, sex, unit) are timeless: they never set hour 0 nor shift a measured anchor (a
replayed PhysioNet stay sends them at its file's first hour, an HL7v2 or FHIR feed beside a
measurement); before the first measurement the anchor they give is provisional. A default date on an
``Age`` event once moved hour 0 back to year 1 (issue 16). Treatments and assessments never set hour 0
either: the first measurement moves a provisional anchor to its own hour, whichever order they
arrive in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.schemas.codes import ASSESSMENTS, DEMOGRAPHICS, DYNAMIC_CODES, TREATMENTS
from vigil.schemas.errors import VigilError
from vigil.schemas.events import PatientEvent

WINDOW_HOURS = 48
MAX_TREATMENTS = 64
# NEWS2 scores the current observation set; in hourly ICU data a parameter is "current" when
# measured within this many hours (RCP 2017 expects at least 4-6 hourly observations on a ward).
RULE_MAX_AGE_H = 4
# Decisions that stand until charted otherwise, not observations that age: SpO2 scale 2 for a patient
# with hypercapnic respiratory failure is prescribed by a clinician for the stay (RCP NEWS2 2017); it
# lapsed after 4 h, and a patient on oxygen at SpO2 97 lost 3 points (scale 1 scores it 0)
STANDING = frozenset({"HypercapnicRespFailure"})

# A measurement more than this after the window's newest hour starts the window again at hour 0. In an
# ICU a week without one measurement is not a stay going on: it is a device's clock that was wrong on
# the first event (reset to 2000-01-01), which made every real hour ~228,000 and each batch close all
# the hours between (8,000 hours took 6.5 s, growing with the square): a worker stalled on one patient.
# A week, as the state's TTL (VIGIL_REDIS__TTL_S) forgets a patient without events.
MAX_GAP_HOURS = 7 * 24

VAR_INDEX: dict[str, int] = {code: i for i, code in enumerate(DYNAMIC_CODES)}
_STATIC_CODES = tuple(DEMOGRAPHICS) + tuple(ASSESSMENTS)
_DEMOGRAPHIC_CODES = frozenset(DEMOGRAPHICS)
_STATIC_INDEX = {code: i for i, code in enumerate(_STATIC_CODES)}
# a treatment's index in the blob is its position in schemas.codes.TREATMENTS: that table only grows
_TREATMENT_CODES = tuple(TREATMENTS)
_TREATMENT_INDEX = {code: i for i, code in enumerate(_TREATMENT_CODES)}

# A cell: (value, second within the hour at which it was observed)
Cell = tuple[float, int]


class LateEvent(VigilError, ValueError):
    """The event is older than the window (48 hours or more before its newest hour): dead-lettered
    ``outside_window`` and counted. It would still have changed later scores: ``vigil predict`` folds
    it into the whole-stay aggregates (max and min since admission, counts, rates), the stream never
    does, so the stay's later scores may differ from ``vigil predict``'s."""


class NewerTreatmentTable(VigilError):
    """A window blob names a treatment past this release's table (``schemas.codes.TREATMENTS`` only
    grows, without a new blob version): a newer release wrote it, as a newer version's blob. Not a
    ValueError, which ``infra.redis`` takes for a damaged blob and starts the window afresh over: this
    worker must neither read nor overwrite it, so the patient's events go to the dead letters
    (``internal``) until the workers are replaced (docs/operations.md, "Upgrading workers")."""


@dataclass
class PatientWindow:
    anchor_s: int | None = None  # epoch seconds of hour 0
    last_hour: int = -1
    rows: dict[int, dict[int, Cell]] = field(default_factory=dict)  # hour -> var index -> cell
    static: dict[str, tuple[float, int]] = field(default_factory=dict)  # code -> (value, hour)
    treatments: list[tuple[str, int, float]] = field(default_factory=list)  # (code, epoch s, value)
    # (partition, offset) of the newest stream message applied: a message at or before it is a
    # redelivery (at-least-once), one after it with nothing new in it is a twin (agents/scoring.py)
    position: tuple[int, int] | None = None
    # the newest ward an event of this patient named: events that carry none (a lab from the LIS)
    # are scored, counted and drift-tracked in it (agents/scoring.py)
    ward: str | None = None
    # The stay ended (a discharge, ``models.stays``): epoch seconds of its end and its encounter. Such a
    # window holds no rows; it keeps the stream position and tells late events of the ended stay
    # from the first events of the next one.
    ended_s: int | None = None
    ended_encounter: str | None = None
    # what ended it when not a discharge (``transfer_out``, ``cancel_admit``; blob version 6): after a
    # transfer out an event naming no ward is the ward's, never the next ICU stay (``models.stays``)
    ended_by: str | None = None
    # the newest encounter an event of the stay named: a discharge naming another one is not this
    # stay's end (``models.stays``)
    encounter: str | None = None
    # the end of the stay before this one (epoch s): an event at or before it is that stay's, late
    after_s: int | None = None
    # Transient (never serialized), for the stepping core (models.stepping): rows that left the
    # window while events were applied (and those read back from ``unfolded``), and the lowest hour
    # whose inputs an applied event changed.
    evicted: dict[int, dict[int, Cell]] = field(default_factory=dict, compare=False)
    # Rows that left the window and that the carry saved beside it has not folded into its aggregates
    # (a batch the models failed on: ``models.stream_step.carries_without_models``), set for the save
    # that follows (``keep_unfolded``; blob version 5) and read back into ``evicted``: the next batch
    # scores the hours not final yet from every row they read, as ``vigil predict`` does.
    unfolded: dict[int, dict[int, Cell]] = field(default_factory=dict, compare=False)
    changed_from: int | None = field(default=None, compare=False)
    # the window started again at hour 0 in this batch (``MAX_GAP_HOURS``): counted by the agent
    restarted: bool = field(default=False, compare=False)

    # ------------------------------------------------------------------ events

    def hour_of(self, observed_at: datetime) -> tuple[int, int]:
        ts = int(observed_at.timestamp())
        if self.anchor_s is None:
            self.anchor_s = ts - ts % 3600
        offset = ts - self.anchor_s
        return offset // 3600, offset % 3600

    def seen(self, partition: int, offset: int) -> bool:
        """True when the message at (partition, offset) was already applied to this window."""
        return self.position is not None and self.position[0] == partition and offset <= self.position[1]

    def advance(self, partition: int, offset: int) -> None:
        if not self.seen(partition, offset):
            self.position = (partition, offset)

    def apply(self, event: PatientEvent) -> bool:
        """Apply one canonical event. Returns False when it is an exact duplicate of what the window
        already holds (a redelivery, or a copy re-published upstream after a restart): its score is
        already out, so it is not scored again. An observation that one observed later in the same
        hour supersedes (the latest wins) is valid data that changes no input: True, so that it is
        scored (named by a score) and never a ``duplicate`` dead letter, as a monitor's and a nurse's
        charting of one hour arrive out of order. Raises LateEvent when it is older than the window."""
        if event.kind == "encounter":  # a stay's end is not a measurement (models.stays handles it)
            raise ValueError(f"{event.code} is applied to the stay (models.stays), not to the window")
        if event.code in _DEMOGRAPHIC_CODES:
            return self._apply_demographic(event)
        if event.kind == "treatment":
            item = (event.code, int(event.observed_at.timestamp()), float(np.float32(event.value)))
            if item in self.treatments:
                return False
            if self.anchor_s is None:
                self.hour_of(event.observed_at)  # provisional: never hour 0 (_anchor_at_first_measurement)
            self.treatments.append(item)
            self.treatments.sort(key=lambda t: t[1])
            del self.treatments[:-MAX_TREATMENTS]
            return True
        dynamic = event.code in VAR_INDEX
        if dynamic:
            self._anchor_at_first_measurement(event.observed_at)
        hour, second = self.hour_of(event.observed_at)
        if hour > self.last_hour + MAX_GAP_HOURS and self.last_hour >= 0:
            self._restart()  # a first event with a stale clock, not a week of silence in an ICU
            hour, second = self.hour_of(event.observed_at)
        if not dynamic and hour >= WINDOW_HOURS - 1 and self._provisional():
            # two days of assessments and no measurement yet: the provisional hour 0 moves up to this
            # one's hour, so the window still waits for its first measurement (past hour 47 it read as
            # a window whose rows had all left it: the models scored a patient never measured, and the
            # first vital sign fell in hour 51, not hour 0)
            ts = int(event.observed_at.timestamp())
            self._reanchor(ts - ts % 3600)
            hour, second = self.hour_of(event.observed_at)
        # an assessment (GCS, ACVPU) is a timed observation like a vital sign: too old, it must not
        # shift the window back either
        if hour <= self.last_hour - WINDOW_HOURS:
            raise LateEvent("older than the window")
        if hour < 0 and dynamic:
            # a measurement before the first one: re-anchor (shift every row) to keep hour >= 0. Not
            # an assessment (no .psv column, never in training's rows): it is kept at its hour before
            # hour 0, which it must not move (an ED GCS at 07:10 sent after the ICU's first vital
            # signs at 10:30 put them in hour 3)
            self._shift(-hour)
            hour = 0
        value = float(np.float32(event.value))
        if dynamic:
            row = self.rows.setdefault(hour, {})
            idx = VAR_INDEX[event.code]
            old = row.get(idx)
            if old == (value, second):
                return False
            if old is None or second >= old[1]:
                row[idx] = (value, second)
                self._changed(hour)
        else:
            old_static = self.static.get(event.code)
            if old_static == (value, hour):
                return False
            if old_static is None or hour >= old_static[1]:
                self.static[event.code] = (value, hour)
        if hour > self.last_hour:
            self.last_hour = hour
            for h in [h for h in self.rows if h <= hour - WINDOW_HOURS]:
                self.evicted[h] = self.rows.pop(h)
        return True

    def keep_unfolded(self, boundary: int) -> None:
        """Save with the window the rows that left it from hour ``boundary`` on: the first hour the
        carry saved beside it has not folded (``unfolded``)."""
        self.unfolded = {h: r for h, r in self.evicted.items() if h >= boundary}

    def _changed(self, hour: int) -> None:
        self.changed_from = hour if self.changed_from is None else min(self.changed_from, hour)

    def _apply_demographic(self, event: PatientEvent) -> bool:
        ts = int(event.observed_at.timestamp())
        if self.anchor_s is None:
            self.anchor_s = ts - ts % 3600  # provisional: see _anchor_at_first_measurement
        # timeless: kept at an hour inside the window, never shifting it
        hour = min(max((ts - self.anchor_s) // 3600, 0), max(self.last_hour, 0))
        self.last_hour = max(self.last_hour, 0)
        value = float(np.float32(event.value))
        old = self.static.get(event.code)
        if old is not None and old[0] == value:
            # the same age or sex again: HL7v2 and FHIR feeds send them with every result message,
            # several an hour. No changed input of any hour; nothing new at all (False) unless its
            # hour is later (the agent takes a False demographic for no twin: ``agents.scoring``)
            if hour <= old[1]:
                return False
            self.static[event.code] = (value, hour)
            return True
        if old is None or hour >= old[1]:
            self.static[event.code] = (value, hour)
            self._changed(-1)  # a demographic is an input of every hour
        return True

    def awaiting_first_measurement(self) -> bool:
        """Whether the stay has no measurement yet (its hour 0 is provisional): the models score
        no hour before the first (``models.hour_zero``)."""
        return self._provisional()

    def _provisional(self) -> bool:
        """Whether hour 0 still waits for the stay's first measurement: the window holds no row yet.
        A window whose newest hour is 48 or later holds none when its rows all left it (an assessment
        two days after the last measurement): that one is anchored."""
        return self.anchor_s is not None and not self.rows and not self.evicted and self.last_hour < WINDOW_HOURS

    def _anchor_at_first_measurement(self, observed_at: datetime) -> None:
        """Hour 0 is the first measurement's (a .psv's first measured row, training's hour 0:
        ``models.hour_zero``). Nothing before it sets it, whichever order they arrive in: Age and
        Gender (a replayed stay sends them at its file's first hour, often empty: until bundle 2.7.0
        training counted from there, and the stream scored a feed's stays an hour or more lower than
        ``vigil predict``), a treatment (antibiotics given in the ED 3 h before the ICU's first vital
        signs once moved every hour of the stay by 3) or an assessment (GCS, ACVPU: no .psv column,
        never in training's rows). So, in a window without rows, the measurement anchors the window at
        its own hour (``_reanchor``), the assessments before it then lying before hour 0 (negative
        hours), demographics at hour 0. A window with rows is anchored: an earlier measurement shifts
        it (``_shift``); an assessment, a demographic or a treatment never does."""
        if not self._provisional():
            return
        assert self.anchor_s is not None
        ts = int(observed_at.timestamp())
        hour = (ts - self.anchor_s) // 3600
        assessed = [h for code, (_, h) in self.static.items() if code not in _DEMOGRAPHIC_CODES]
        if assessed and hour <= max(assessed) - WINDOW_HOURS:
            return  # two days before an assessment: older than the window (``apply`` refuses it as is)
        self._reanchor(ts - ts % 3600)

    def _reanchor(self, anchor_s: int) -> None:
        """Hour 0 at ``anchor_s`` in a window without rows (``_provisional``): assessments keep their
        times (their hours move; negative: before hour 0), demographics go to hour 0, treatments keep
        their own times."""
        assert self.anchor_s is not None and not self.rows
        moved = (anchor_s - self.anchor_s) // 3600
        self.anchor_s = anchor_s
        self.static = {c: (v, 0 if c in _DEMOGRAPHIC_CODES else h - moved) for c, (v, h) in self.static.items()}
        self.last_hour = max([-1, *(h for _, h in self.static.values())])
        self._changed(-1)  # every hour index moved: a stepping carry must replay from admission

    def _restart(self) -> None:
        """Hour 0 again at the next measurement: what the window held is more than ``MAX_GAP_HOURS``
        before it. Demographics stay (at hour 0), and treatments (their own times: the care scoring
        reads them); rows and assessments go."""
        self.anchor_s, self.last_hour, self.rows, self.evicted, self.unfolded = None, -1, {}, {}, {}
        self.static = {code: (value, 0) for code, (value, _) in self.static.items() if code in _DEMOGRAPHIC_CODES}
        self.restarted = True
        self._changed(-1)

    def _shift(self, hours: int) -> None:
        assert self.anchor_s is not None
        self.anchor_s -= hours * 3600
        self.rows = {h + hours: r for h, r in self.rows.items()}
        self.static = {c: (v, h + hours) for c, (v, h) in self.static.items()}
        self.last_hour += hours
        self.evicted = {h + hours: r for h, r in self.evicted.items()}
        self._changed(-1)  # every hour index moved: a stepping carry must replay from admission

    # ------------------------------------------------------------------ views

    def matrix(self, end_hour: int | None = None) -> np.ndarray:
        """Hourly rows ``[max(0, end-47) .. end]`` as float32 [T, len(DYNAMIC_CODES)], NaN = missing."""
        end = self.last_hour if end_hour is None else end_hour
        start = max(0, end - WINDOW_HOURS + 1)
        out = np.full((end - start + 1, len(DYNAMIC_CODES)), np.nan, dtype=np.float32)
        for hour, row in self._rows_through(end).items():
            if start <= hour:
                for idx, (value, _) in row.items():
                    out[hour - start, idx] = value
        return out

    def statics(self) -> dict[str, float]:
        return {code: value for code, (value, _) in self.static.items()}

    def current_values(self, max_age_h: int = RULE_MAX_AGE_H, at_hour: int | None = None) -> dict[str, float]:
        """Latest value of each variable measured within ``max_age_h`` hours of ``at_hour`` (default:
        the newest hour), for rule scores; hours after ``at_hour`` are not seen (a closed hour's score)."""
        end = self.last_hour if at_hour is None else at_hour
        rows = self._rows_through(end)
        out: dict[str, float] = {}
        for hour in sorted(rows, reverse=True):
            if hour <= end - max_age_h:
                break
            for idx, (value, _) in rows[hour].items():
                out.setdefault(DYNAMIC_CODES[idx], value)
        for code, (value, hour) in self.static.items():
            if code in STANDING and hour <= end or code in ASSESSMENTS and end - max_age_h < hour <= end:
                out[code] = value
        return out

    def newest_observation(self, hour: int) -> datetime:
        """Time of the newest measurement in ``hour`` (its start when it holds none), also of an hour
        whose row left the window in this batch (``_rows_through``)."""
        second = max((sec for _, sec in self._rows_through(hour).get(hour, {}).values()), default=0)
        return self.hour_start(hour) + timedelta(seconds=second)

    def _rows_through(self, end: int) -> dict[int, dict[int, Cell]]:
        """The rows of hours up to ``end``, with those that left the window but are still scored
        (``evicted``): a batch that moves a patient on by 48 hours or more (a backlog after an outage)
        evicts rows of hours it then finalizes, whose final scores read NEWS2 0 with every vital sign
        missing, at the start of the hour, of a patient at NEWS2 12. The newest hour and the 47 before
        it are all in ``rows``: the provisional score reads nothing else."""
        rows = {h: r for h, r in self.evicted.items() if h <= end}
        rows.update((h, r) for h, r in self.rows.items() if h <= end)
        return rows

    def covers(self, observed_at: datetime) -> bool:
        """Whether this window holds a measurement or treatment at or after ``observed_at``: a reader
        of a score (published before its window is written) can tell a window saved before the
        score's events from the one that scored them."""
        span = self.observed_span()
        return span is not None and span[1] >= int(observed_at.timestamp())

    def observed_times(self) -> list[int]:
        """Epoch seconds (whole) of every measurement and treatment the window holds, unsorted (rows
        that left the window are not counted)."""
        if self.anchor_s is None:
            return []
        times = [self.anchor_s + h * 3600 + sec for h, row in self.rows.items() for _, sec in row.values()]
        return times + [ts for _, ts, _ in self.treatments]

    def observed_span(self) -> tuple[int, int] | None:
        """Epoch seconds of the first and the newest measurement or treatment the window holds, None
        when it holds none."""
        times = self.observed_times()
        return (min(times), max(times)) if times else None

    def hour_start(self, hour: int) -> datetime:
        assert self.anchor_s is not None
        return datetime.fromtimestamp(self.anchor_s + hour * 3600, tz=UTC)

    # ------------------------------------------------------------------ bytes
    # Layout (little endian): version u8, anchor i64, last_hour i32, n_rows u16,
    #   per row: hour i32, n u8, n x (var u8, second u16, value f32)
    #   n_static u8, n x (code u8, hour i32, value f32)
    #   n_treat u8, n x (code u8, ts i64, value f32)
    #   (version 2) position: partition i32, offset i64 (-1, -1 when none)
    #   (version 3) ward: n u8 (0 when none), n bytes of UTF-8
    #   (version 4) ended: epoch s i64 (0 when the stay goes on), its encounter n u16 + n bytes of
    #   UTF-8; the stay's newest encounter, n u16 + n bytes; the end of the stay before, i64 (0: none)
    #   (version 5) unfolded: n_rows u16, rows as above. Written only when there are such rows (after
    #   a batch the models failed on), else version 4: a worker of the release before reads the rest.
    #   (version 6) the unfolded rows as in version 5 (n_rows 0 when none), then what ended the stay,
    #   n u8 + n bytes of UTF-8. Written only for an end that was not a discharge (a transfer out, a
    #   cancelled admission), else version 5 or 4: a discharge's end is what an older blob reads.
    # ~7 bytes per measured cell: a 48 h window of ICU vitals stays well under 4 KB.

    _VERSION = 6
    _HEADER = "<BqiH"
    _POSITION = "<iq"

    def to_bytes(self) -> bytes:
        version = self._VERSION if self.ended_by else 5 if self.unfolded else 4
        parts = [struct.pack(self._HEADER, version, self.anchor_s or 0, self.last_hour, len(self.rows))]
        parts.extend(_row_bytes(self.rows))
        parts.append(struct.pack("<B", len(self.static)))
        parts.extend(struct.pack("<Bif", _STATIC_INDEX[c], h, v) for c, (v, h) in sorted(self.static.items()))
        parts.append(struct.pack("<B", len(self.treatments)))
        parts.extend(struct.pack("<Bqf", _TREATMENT_INDEX[c], ts, v) for c, ts, v in self.treatments)
        parts.append(struct.pack(self._POSITION, *(self.position or (-1, -1))))
        parts.append(_text(self.ward, "<B"))
        parts.append(struct.pack("<q", self.ended_s or 0) + _text(self.ended_encounter, "<H"))
        parts.append(_text(self.encounter, "<H") + struct.pack("<q", self.after_s or 0))
        if version >= 5:
            parts.append(struct.pack("<H", len(self.unfolded)))
            parts.extend(_row_bytes(self.unfolded))
        if version >= 6:
            parts.append(_text(self.ended_by, "<B"))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> PatientWindow:
        """The window a blob holds. One that does not read raises ValueError or struct.error, also a
        damaged one whose indexes name no code (``infra.redis`` starts the window afresh, never an
        IndexError that sent the patient's every batch to the dead letters for the key's 7 days); one
        of a newer release raises too: a newer version (ValueError, told by its first byte) or a
        treatment past this release's table (``NewerTreatmentTable``), to be left as it is."""
        if not blob:
            return cls()
        version, anchor, last_hour, n_rows = struct.unpack_from(cls._HEADER, blob)
        if version not in (1, 2, 3, 4, 5, cls._VERSION):
            raise ValueError(f"unknown window blob version {version}")
        rows, pos = _read_rows(blob, struct.calcsize(cls._HEADER), n_rows)
        (n_static,) = struct.unpack_from("<B", blob, pos)
        pos += 1
        static: dict[str, tuple[float, int]] = {}
        for _ in range(n_static):
            ci, h, v = struct.unpack_from("<Bif", blob, pos)
            pos += 9
            if ci >= len(_STATIC_CODES):
                raise ValueError(f"window blob names static code {ci} of {len(_STATIC_CODES)}")
            static[_STATIC_CODES[ci]] = (v, h)
        (n_treat,) = struct.unpack_from("<B", blob, pos)
        pos += 1
        treatments = []
        newer = []  # read to the end first: a damaged blob is told by what follows (ValueError, struct.error)
        for _ in range(n_treat):
            ci, ts, v = struct.unpack_from("<Bqf", blob, pos)
            pos += 13
            if ci < len(_TREATMENT_CODES):
                treatments.append((_TREATMENT_CODES[ci], ts, v))
            else:
                newer.append(ci)
        position: tuple[int, int] | None = None
        if version >= 2:
            partition, offset = struct.unpack_from(cls._POSITION, blob, pos)
            position = (partition, offset) if partition >= 0 else None
            pos += struct.calcsize(cls._POSITION)
        ward: str | None = None
        if version >= 3:
            ward, pos = _read_text(blob, pos, "<B", "ward")
        ended_s = after_s = None
        ended_encounter = encounter = None
        if version >= 4:
            (ended,) = struct.unpack_from("<q", blob, pos)
            ended_encounter, pos = _read_text(blob, pos + 8, "<H", "ended encounter")
            encounter, pos = _read_text(blob, pos, "<H", "encounter")
            (after,) = struct.unpack_from("<q", blob, pos)
            pos += 8
            ended_s, after_s = ended or None, after or None
        evicted: dict[int, dict[int, Cell]] = {}
        if version >= 5:
            (n_unfolded,) = struct.unpack_from("<H", blob, pos)
            evicted, pos = _read_rows(blob, pos + 2, n_unfolded)
        ended_by: str | None = None
        if version >= 6:
            ended_by, pos = _read_text(blob, pos, "<B", "end's cause")
        if newer:
            known = len(_TREATMENT_CODES)
            raise NewerTreatmentTable(f"window blob names treatment {max(newer)}; this release knows {known}")
        return cls(
            anchor_s=anchor or None,  # 0: none (no observation is from 1970: schemas.events)
            last_hour=last_hour,
            rows=rows,
            static=static,
            treatments=treatments,
            position=position,
            ward=ward,
            ended_s=ended_s,
            ended_encounter=ended_encounter,
            ended_by=ended_by,
            encounter=encounter,
            after_s=after_s,
            evicted=evicted,
        )


def _row_bytes(rows: dict[int, dict[int, Cell]]) -> list[bytes]:
    """Hourly rows in the blob, oldest first: per row hour i32, n u8, n x (var u8, second u16, value f32)."""
    parts = []
    for hour in sorted(rows):
        row = rows[hour]
        parts.append(struct.pack("<iB", hour, len(row)))
        parts.extend(struct.pack("<BHf", idx, sec, val) for idx, (val, sec) in sorted(row.items()))
    return parts


def _read_rows(blob: bytes, pos: int, n_rows: int) -> tuple[dict[int, dict[int, Cell]], int]:
    """Hourly rows as ``_row_bytes`` writes them; a variable past ``DYNAMIC_CODES`` is a damaged blob
    (ValueError: ``infra.redis`` starts the window afresh), never a row that fails every later read."""
    rows: dict[int, dict[int, Cell]] = {}
    for _ in range(n_rows):
        hour, n = struct.unpack_from("<iB", blob, pos)
        pos += 5
        row: dict[int, Cell] = {}
        for _ in range(n):
            idx, sec, val = struct.unpack_from("<BHf", blob, pos)
            pos += 7
            if idx >= len(DYNAMIC_CODES):
                raise ValueError(f"window blob names variable {idx} of {len(DYNAMIC_CODES)}")
            row[idx] = (val, sec)
        rows[hour] = row
    return rows, pos


def _text(text: str | None, length: str) -> bytes:
    """A ward (u8 length: at most 32 characters, 128 bytes of UTF-8) or an encounter (u16: 64
    characters, up to 256 bytes) in the blob: its UTF-8 length, then its bytes."""
    raw = (text or "").encode()
    return struct.pack(length, len(raw)) + raw


def _read_text(blob: bytes, pos: int, length: str, what: str) -> tuple[str | None, int]:
    (n,) = struct.unpack_from(length, blob, pos)
    pos += struct.calcsize(length)
    raw = blob[pos : pos + n]
    if len(raw) < n:
        raise struct.error(f"window blob ends inside its {what} ({len(raw)} of {n} bytes)")
    return raw.decode() or None, pos + n
