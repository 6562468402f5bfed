"""Scans: one planning round trip, then keyset-paginated pages in index order.

Every page query bounds both the index (``idx > after AND idx <= hi``) and the receive
time (``received_at BETWEEN t0 AND t1``). The index bound drives the index scan; the
time bound is implied by it (received_at never decreases with the index) and is there
so the planner prunes partitions: a poll of recent events touches today's partition
only, not one index per retained day.

Several types (a poll group: Mapp's have up to ten) are read as one ordered
``(domain_id, type, idx)`` range per type. When there are few ranges to merge (types
times the days the scan spans) and no filter on the rows, PostgreSQL merges them into
one ordered stream (``sql.scan_types_merged``: a Merge Append that reads each type's
range only as far as the merge gets), streamed like a single range. Mapp's pollByType
of a group on one day's events: 197-241k -> 282-334k events/s over HTTP. Otherwise each
range is read from its own position and merged here with a heap, the way the SQLite
backend does it: with 10 types over 31 daily partitions the merging query took 10-19 ms
to plan against 1-2 ms for this one. Either way every row of the ranges is read once,
however the types interleave. Other filters (channels, excluded types, campaign) are
checked on the rows of the range.

Every type, one type or a few are streamed: one query per few pages, its
rows handed over by libpq in chunks as PostgreSQL produces them, so the database keeps
working while this process converts, encodes and sends what came before. Measured over
HTTP, 100,000 events of one type in pages of 10,000: 219-269k -> 239-301k events/s
(one-off A/B runs, alternated). The stream runs on a thread with a blocking connection,
off the event loop: 232k -> 256k events/s for one type, 274k -> 323k after an index
(alternated one-off runs, pages of 10,000, warm cache). Its rows become StoredEvents in C,
straight from libpq's results, wherever that can be done (``raw_rows``).

Every scan query runs with sorting disabled (``connection.NO_SORT_OPTION``): its ORDER BY
must come from merging ordered index scans, whatever the statistics say.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rqs.domain.events import StoredEvent
from rqs.storage.base import EventQuery
from rqs.storage.postgres import raw_rows
from rqs.storage.postgres import sql as q
from rqs.storage.postgres.connection import (
    NO_SORT_LOCAL,
    Conn,
    SyncConn,
    pipelined_transaction,
)

PAGE = 2_000  # rows fetched per type and round trip when merging many types
FETCH = 1_000  # rows per chunk of a streamed query, as libpq hands them over
MERGED_RANGES = 40  # types x days spanned up to which PostgreSQL merges the ranges


@dataclass(slots=True)
class Plan:
    domain: str
    domain_id: int
    lo: int  # exclusive index
    hi: int  # inclusive index
    t0: int  # received_at of the first candidate (inclusive)
    t1: int  # received_at of the last candidate (inclusive)
    filters: str
    params: dict[str, Any]
    types: list[str] | None  # None: every type (one index range)


async def plan(conn: Conn, domain: str, query: EventQuery) -> Plan | None:
    """Resolve a query to index and time bounds, or None when nothing can match."""
    params = {"domain": domain, "since": query.since, "until": query.until,
              "after": query.after, "through": query.through}
    row = await (await conn.execute(q.SCAN_PLAN, params)).fetchone()
    if row is None:
        return None
    domain_id, next_index, purged, since_index, until_index, first_time, last_time = row
    # Retention decides first: a partition may be accounted as purged a moment before
    # it is detached.
    lo = max(query.after, purged, 0)
    hi = next_index - 1 if query.through is None else min(query.through, next_index - 1)
    if query.since is not None:
        lo = max(lo, (next_index if since_index is None else since_index) - 1)
    if query.until is not None:
        hi = min(hi, (next_index if until_index is None else until_index) - 1)
    sel = query.selector
    if hi <= lo or first_time is None or last_time is None or sel.types == frozenset():
        return None
    t0 = first_time if query.since is None else max(first_time, query.since)
    t1 = last_time if query.until is None else min(last_time, query.until - 1)
    filters: list[str] = []
    extra: dict[str, Any] = {}
    if sel.exclude_types:
        filters.append(q.SCAN_EXCLUDE_TYPES)
        extra["exclude"] = sorted(sel.exclude_types)
    if sel.channels is not None:
        filters.append(q.SCAN_CHANNELS)
        extra["channels"] = sorted(sel.channels)
    if query.campaign is not None:
        filters.append(q.SCAN_CAMPAIGN)
        extra["campaign"] = query.campaign
    return Plan(domain=domain, domain_id=domain_id, lo=lo, hi=hi, t0=t0, t1=t1,
                filters="".join(filters), params=extra,
                types=sorted(sel.types) if sel.types is not None else None)


def event(domain: str, r: tuple[Any, ...]) -> StoredEvent:
    # EVENT_COLUMNS are StoredEvent's fields after the domain, in order.
    return StoredEvent(domain, *r)


@dataclass(slots=True)
class _Stream:
    """One type's rows, fetched ahead; ``pos`` is the last index fetched."""

    type: str
    pos: int
    rows: deque[tuple[Any, ...]] = field(default_factory=deque)
    done: bool = False


class Reader:
    """The pages of one planned scan; keeps its place between pages."""

    def __init__(self, p: Plan) -> None:
        self.plan = p
        self.pos = p.lo  # last index returned
        self.t0 = p.t0  # received_at of the last row returned
        self.streams = [_Stream(t, p.lo) for t in p.types] if p.types is not None else None
        days = max(p.t1 // q.DAY_US - p.t0 // q.DAY_US + 1, 1)  # the partitions it spans
        # One ordered stream (every type, one, or a few merged by PostgreSQL) is read by
        # ``stream``; else page by page with ``merged``. Not with row filters (channels,
        # campaign): every query of the merged stream restarts each type's range at the
        # scan's position, so a type whose rows the filter drops would be read again by
        # each one, where ``merged`` keeps each type's own position.
        self.single = (self.streams is None or len(self.streams) == 1
                       or (not p.filters and len(self.streams) * days <= MERGED_RANGES))
        # Each page runs the same statement: formatted and encoded once per scan.
        if self.streams is None:
            template = q.SCAN_RANGE
        elif len(self.streams) == 1:
            template = q.SCAN_ONE_TYPE
        elif self.single:
            template = q.scan_types_merged(len(self.streams))
        else:
            template = q.SCAN_TYPES
        self.sql = template.format(filters=p.filters).encode()

    def _params(self, **more: Any) -> dict[str, Any]:
        p = self.plan
        return {"domain_id": p.domain_id, "hi": p.hi, "t0": self.t0, "t1": p.t1,
                **p.params, **more}

    def stream(self, conn: SyncConn, n: int, chunk: int) -> Iterator[list[StoredEvent]]:
        """Up to n events of a ``single`` scan, from one query, ``chunk`` at a time.

        Blocking, for a thread of its own: libpq hands the rows over in chunks as the
        server produces them (chunked-rows mode), so PostgreSQL keeps producing while
        the caller encodes and sends. On the event loop, psycopg's asynchronous waits
        and a generator step per row were most of a read's time (py-spy)."""
        assert self.single
        if self.streams is None:
            params = self._params(after=self.pos, n=n)
        elif len(self.streams) == 1:
            params = self._params(after=self.pos, n=n, type=self.streams[0].type)
        else:
            params = self._params(after=self.pos, n=n,
                                  **{f"type{i}": s.type for i, s in enumerate(self.streams)})
        rows: list[StoredEvent] = []
        for got in self._rows(conn, params):
            rows += got
            while len(rows) >= chunk:
                page, rows = rows[:chunk], rows[chunk:]
                self.pos, self.t0 = page[-1].index, page[-1].received_at
                yield page
        if rows:
            self.pos, self.t0 = rows[-1].index, rows[-1].received_at
            yield rows

    def _rows(self, conn: SyncConn, params: dict[str, Any]) -> Iterator[list[StoredEvent]]:
        """The query's rows as events, in lists of up to FETCH as libpq hands them over:
        built in C where that can be done (``raw_rows``), else from psycopg's rows."""
        domain = self.plan.domain
        if raw_rows.usable(conn):
            yield from raw_rows.stream(conn, self.sql, params, domain, FETCH)
            return
        got: list[StoredEvent] = []
        for r in conn.cursor(binary=True).stream(self.sql, params, size=FETCH):
            got.append(StoredEvent(domain, *r))
            if len(got) == FETCH:
                yield got
                got = []
        if got:
            yield got

    async def merged(self, conn: Conn, n: int) -> list[StoredEvent]:
        """The next n events of a scan over several types that is not ``single``, in
        index order."""
        out: list[StoredEvent] = []
        streams = self.streams
        assert streams is not None
        while len(out) < n:
            await self._refill(conn, [s for s in streams if not s.rows and not s.done],
                               min(n, PAGE))
            heap = [(s.rows[0][0], i) for i, s in enumerate(streams) if s.rows]
            if not heap:
                break
            heapq.heapify(heap)
            # Take the smallest head until done, or until a stream that may hold more
            # runs dry: its next row could come before the other heads.
            while heap and len(out) < n:
                _, i = heapq.heappop(heap)
                s = streams[i]
                row = s.rows.popleft()
                out.append(event(self.plan.domain, row))
                if s.rows:
                    heapq.heappush(heap, (s.rows[0][0], i))
                elif not s.done:
                    break
        if out:
            self.t0 = out[-1].received_at
        return out

    async def _refill(self, conn: Conn, needy: list[_Stream], page: int) -> None:
        if not needy:
            return
        params = self._params(types=[s.type for s in needy], positions=[s.pos for s in needy],
                              n=page)
        by_type: dict[str, list[tuple[Any, ...]]] = {s.type: [] for s in needy}
        # The pool's connections serve everything, so the setting is the statement's own.
        async with pipelined_transaction(conn):
            await conn.execute(NO_SORT_LOCAL)
            found = await (await conn.execute(self.sql, params, binary=True)).fetchall()
        for r in found:
            by_type[r[1]].append(r)
        for s in needy:
            rows = sorted(by_type[s.type])  # the lateral join keeps each type's order; be sure
            s.rows.extend(rows)
            s.done = len(rows) < page
            if rows:
                s.pos = rows[-1][0]
