"""Appending events: packed in the HTTP process, written by the writer process.

The writer process is the one thing every ingest request queues for, so work that does not
need the database happens before the batch crosses to it (``pack``): the batch's per-type
positions and per-(type, channel) counts are computed, and the events are encoded as
arrays that the writer decodes straight into row tuples. The writer then only stamps the
index and the commit time and runs the statements (``append_packed``).

A batch carrying sender ids may hold re-sends, which only the database can tell, so it goes
as plain events and is deduplicated, and summarised, in the writer (``append_events``).

Types are not indexed row by row. Each append writes one ``type_runs`` row per type it
holds, with the offsets of that type's events (see the 0200 migration): measured with
``bench/micro.py``, a B-tree index on ``events.type`` cost about a third of the writer's
insert rate.
"""

from __future__ import annotations

import array
import sys
import time
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any

import apsw
import msgspec
from msgspec.structs import astuple

from rqs.domain.events import NewEvent, PackedEvents
from rqs.storage.base import AppendResult, EventSource, events_of, positions_by
from rqs.storage.sqlite import sql as q

FIELDS = len(NewEvent.__struct_fields__)
ROWS_PER_INSERT = 100
_LITTLE = sys.byteorder == "little"
_TYPE, _CHANNEL = attrgetter("type"), attrgetter("channel")


class Packed(msgspec.Struct, array_like=True, gc=False):
    """A batch ready for the writer: no sender ids, so every event is new."""

    # Each event encodes as an array: its row's values in column order. Raw: the msgpack
    # of the list, as ingest's C parser wrote it (PackedEvents).
    events: Sequence[NewEvent] | msgspec.Raw
    runs: list[tuple[str, int, int, bytes | None]]  # type, first offset, last, offsets
    counts: list[tuple[str, str, int]]  # type, channel, events


class _Rows(msgspec.Struct, array_like=True, gc=False):
    """``Packed`` as the writer decodes it: the events straight into row tuples."""

    events: list[tuple[Any, ...]]
    runs: list[tuple[str, int, int, bytes | None]]
    counts: list[tuple[str, str, int]]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Rows)
_events_decoder = msgspec.msgpack.Decoder(list[NewEvent])


def pack(events: Sequence[NewEvent]) -> bytes:
    """``events`` as one ``Packed`` blob. Only for batches without sender ids."""
    if isinstance(events, PackedEvents):  # packed already: its bytes go as they are
        return _encoder.encode(Packed(msgspec.Raw(events.packed),
                                      *summary_of(events.types, events.channels)))
    return _encoder.encode(Packed(events, *summary(events)))


def pack_events(events: Sequence[NewEvent]) -> bytes:
    """``events`` as they are, for ``append_blob`` (batches that may hold re-sends)."""
    return _encoder.encode(events)


Summary = tuple[list[tuple[str, int, int, bytes | None]], list[tuple[str, str, int]]]


def summary(events: Sequence[NewEvent]) -> Summary:
    """The ``type_runs`` rows (relative to the batch) and (type, channel, count) of events."""
    return summary_of(list(map(_TYPE, events)), list(map(_CHANNEL, events)))


def summary_of(types: list[str], channels: list[str]) -> Summary:
    counts = Counter(zip(types, channels, strict=True))
    return runs_of(types), [(t, ch, n) for (t, ch), n in counts.items()]


def runs_of(types: Sequence[str]) -> list[tuple[str, int, int, bytes | None]]:
    """For each type: the offsets of its events among ``types``, as a ``type_runs`` row
    relative to the batch (offsets stored relative to the type's first event; None when
    its events are contiguous)."""
    runs: list[tuple[str, int, int, bytes | None]] = []
    for t, offsets in positions_by(types).items():
        first, last = offsets[0], offsets[-1]
        blob = None
        if last - first + 1 != len(offsets):
            packed = array.array("I", [o - first for o in offsets])
            if not _LITTLE:  # pragma: no cover - stored little-endian everywhere
                packed.byteswap()
            blob = packed.tobytes()
        runs.append((t, first, last, blob))
    return runs


def run_positions(first: int, last: int, offsets: bytes | None) -> list[int]:
    """The positions a ``type_runs`` row stands for, ascending."""
    if offsets is None:
        return list(range(first, last + 1))
    found = array.array("I")
    found.frombytes(offsets)
    if not _LITTLE:  # pragma: no cover
        found.byteswap()
    return [first + o for o in found]


@lru_cache(maxsize=ROWS_PER_INSERT)
def insert_sql(rows: int) -> str:
    """A multi-row INSERT whose ?1 is the first row's pos and ?2 the commit time, followed
    by each row's fields: the chunks of ``Packed`` bind to it as they are."""
    values = []
    for k in range(rows):
        first = 3 + k * FIELDS
        fields = ", ".join(f"?{first + j}" for j in range(FIELDS))
        values.append(f"(?1 + {k}, ?2, {fields})")
    return q.INSERT_EVENTS_HEAD + ",\n".join(values)


def now_us() -> int:
    return int(time.time() * 1_000_000)


def _domain_state(c: apsw.Connection, domain: str) -> tuple[int, int, int, int]:
    c.execute(q.ENSURE_DOMAIN, (domain,))
    row = c.execute(q.DOMAIN_STATE, (domain,)).fetchone()
    assert row is not None
    return row  # type: ignore[no-any-return]


# --- writer-process jobs ---------------------------------------------------------------


def append_packed(c: apsw.Connection, domain: str, blob: bytes) -> AppendResult:
    batch = _decoder.decode(blob)
    domain_id, next_index, last_received, _ = _domain_state(c, domain)
    received_at = max(now_us(), last_received)
    count = len(batch.events)
    if not count:  # nothing to index: no commit row, no runs
        return AppendResult(indexes=[], stored=0, received_at=received_at)
    _insert(c, (domain_id << q.INDEX_BITS) + next_index, received_at, batch.events)
    _finish(c, domain_id, next_index, count, received_at, batch.runs, batch.counts)
    return AppendResult(indexes=list(range(next_index, next_index + count)),
                        stored=count, received_at=received_at)


def _insert(c: apsw.Connection, base: int, received_at: int, rows: Sequence[Any]) -> None:
    """Insert ``rows`` (tuples of NewEvent's fields) at consecutive positions from ``base``."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        part = rows[start : start + ROWS_PER_INSERT]
        c.execute(insert_sql(len(part)),
                  [base + start, received_at, *chain.from_iterable(part)])


def append_blob(c: apsw.Connection, domain: str, blob: bytes) -> AppendResult:
    """``append_events`` of a ``pack_events`` blob (sent out of band, see ``Writer``)."""
    return append_events(c, domain, _events_decoder.decode(blob))


def append_events(c: apsw.Connection, domain: str, source: EventSource) -> AppendResult:
    events = events_of(source)
    domain_id, next_index, last_received, _ = _domain_state(c, domain)
    received_at = max(now_us(), last_received)
    if any(e.ext_id is not None for e in events):
        fresh, indexes = _dedupe(c, domain_id, events, next_index)
    else:
        fresh, indexes = list(events), list(range(next_index, next_index + len(events)))
    if not fresh:
        return AppendResult(indexes=indexes, stored=0, received_at=received_at)
    _insert(c, (domain_id << q.INDEX_BITS) + next_index, received_at,
            [astuple(e) for e in fresh])
    _finish(c, domain_id, next_index, len(fresh), received_at, *summary(fresh))
    return AppendResult(indexes=indexes, stored=len(fresh), received_at=received_at)


def _finish(
    c: apsw.Connection,
    domain_id: int,
    next_index: int,
    count: int,
    received_at: int,
    runs: list[tuple[str, int, int, bytes | None]],
    counts: list[tuple[str, str, int]],
) -> None:
    base = (domain_id << q.INDEX_BITS) + next_index
    c.executemany(q.INSERT_RUN,
                  [(t, base + first, base + last, blob) for t, first, last, blob in runs])
    last_index = next_index + count - 1
    c.execute(q.ADVANCE_DOMAIN, (last_index + 1, received_at, domain_id))
    c.execute(q.INSERT_COMMIT, (domain_id, next_index, last_index, received_at))
    c.executemany(q.BUMP_COUNT, [(domain_id, t, ch, n, n) for t, ch, n in counts])


def _dedupe(
    c: apsw.Connection, domain_id: int, events: Sequence[NewEvent], next_index: int
) -> tuple[list[NewEvent], list[int]]:
    """Drop events whose id is stored (or repeated in this batch); index what remains."""
    ids = [e.ext_id for e in events if e.ext_id is not None]
    known = _known_ids(c, domain_id, ids)
    fresh: list[NewEvent] = []
    indexes: list[int] = []
    new_ids: list[tuple[int, str, int]] = []
    idx = next_index
    for e in events:
        if e.ext_id is not None:
            seen = known.get(e.ext_id)
            if seen is not None:
                indexes.append(seen)
                continue
            known[e.ext_id] = idx
            new_ids.append((domain_id, e.ext_id, idx))
        fresh.append(e)
        indexes.append(idx)
        idx += 1
    if new_ids:
        c.executemany(q.INSERT_EVENT_ID, new_ids)
    return fresh, indexes


def _known_ids(c: apsw.Connection, domain_id: int, ids: list[str]) -> dict[str, int]:
    known: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        sql = f"SELECT ext_id, idx FROM event_ids WHERE domain_id = ? AND ext_id IN ({marks})"
        known.update(c.execute(sql, (domain_id, *part)))
    return known
