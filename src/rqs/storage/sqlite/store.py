"""SQLite storage: the embedded default.

Writes go through one writer process (group commit, see ``writer``); reads run on a small
thread pool, each thread with its own connection. WAL mode lets reads proceed while the
writer commits, and readers only ever see whole commits, so the index they see is gapless.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

import apsw

from rqs.domain.events import PackedEvents, StoredEvent
from rqs.errors import Conflict
from rqs.settings import Settings
from rqs.storage.base import (
    ApiKey,
    AppendResult,
    Bounds,
    CursorInfo,
    CursorState,
    EventQuery,
    EventSource,
    R,
    Topic,
    TypeCount,
)
from rqs.storage.pages import chunk_for, pipelined, prefetched
from rqs.storage.sqlite import connection, ingest, reads
from rqs.storage.sqlite import sql as q
from rqs.storage.sqlite.writer import Writer

if TYPE_CHECKING:
    from rqs.storage.sqlite.delivery import SqliteDeliveryStore

T = TypeVar("T")
READ_THREADS = 2
_EXT_ID = attrgetter("ext_id")


class SqliteStorage:
    backend = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.sqlite_path
        self._writer = Writer(self.path, settings.sqlite_synchronous)
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._cursor_locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._conns: list[apsw.Connection] = []

    # --- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        await self.upgrade()
        self._writer.start()
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="rqs-sqlite-read")

    async def close(self) -> None:
        self._writer.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def delivery_store(self) -> SqliteDeliveryStore:
        """Push-delivery tables, on this store's writer and readers (``delivery_base``)."""
        from rqs.storage.sqlite.delivery import SqliteDeliveryStore

        return SqliteDeliveryStore(self._writer, self._read)

    async def upgrade(self) -> list[str]:
        return self._with_schema_conn(connection.upgrade)

    async def pending_migrations(self) -> list[str]:
        return self._with_schema_conn(connection.pending)

    def _with_schema_conn(self, fn: Callable[[apsw.Connection], T]) -> T:
        """A short-lived connection of its own, so schema work needs no open store."""
        conn = connection.connect(self.path, self.settings.sqlite_synchronous)
        try:
            return fn(conn)
        finally:
            conn.close()

    def _reader(self) -> apsw.Connection:
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connection.connect(self.path, self.settings.sqlite_synchronous, readonly=True)
            self._local.conn = conn
            self._conns.append(conn)
        return conn

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit_read(lambda: fn(self._reader(), *args))

    # --- append --------------------------------------------------------------------

    async def append(self, domain: str, events: EventSource) -> AppendResult:
        if callable(events):
            return await self._writer.submit(ingest.append_events, domain, events)
        # Packed events carry no ids; ids are never empty strings.
        if not isinstance(events, PackedEvents) and any(map(_EXT_ID, events)):
            # Re-sends are found in the writer; the events cross as one msgpack blob.
            blob = ingest.pack_events(events)
            return await self._writer.submit(ingest.append_blob, domain, blob)
        # Everything the rows need but their index is prepared here, beside the writer.
        return await self._writer.submit(ingest.append_packed, domain, ingest.pack(events))

    # --- reads ---------------------------------------------------------------------

    def scan(
        self, domain: str, query: EventQuery, chunk: int | None = None
    ) -> AsyncIterator[list[StoredEvent]]:
        return self.scan_map(domain, query, _identity, chunk)

    async def scan_map(
        self,
        domain: str,
        query: EventQuery,
        fn: Callable[[list[StoredEvent]], R],
        chunk: int | None = None,
        *,
        heavy: bool = False,
    ) -> AsyncIterator[R]:
        plan = await self._read(reads.plan, domain, query)
        if plan is None:
            return
        source = reads.Source(plan)
        chunk = chunk or chunk_for(query.limit)

        def take(want: int) -> list[StoredEvent]:
            return reads.take(self._reader(), source, want)

        def take_and_encode(want: int) -> tuple[int, R | None]:
            rows = take(want)
            return len(rows), (fn(rows) if rows else None)

        # On the two reader threads (see rqs.storage.pages for the two shapes).
        pages = (pipelined(lambda want: self._submit_read(take, want),
                           lambda rows: self._submit_read(fn, rows), query.limit, chunk)
                 if heavy else
                 prefetched(lambda want: self._submit_read(take_and_encode, want), query.limit,
                            chunk))
        async for page in pages:
            yield page

    def _submit_read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        assert self._pool is not None, "storage is not open"
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def get_event(self, domain: str, index: int) -> StoredEvent | None:
        return await self._read(reads.get_event, domain, index)

    async def bounds(self, domain: str) -> Bounds:
        return await self._read(reads.bounds, domain)

    async def counts(self, domain: str) -> list[TypeCount]:
        return await self._read(reads.counts, domain)

    async def domains(self) -> list[str]:
        return await self._read(lambda c: [r[1] for r in c.execute(q.ALL_DOMAINS)])

    async def purge_step(self, cutoff: int, max_rows: int) -> int:
        return await self._writer.submit(_purge_step, cutoff, max_rows)

    # --- keys ----------------------------------------------------------------------

    async def create_key(self, key: ApiKey) -> None:
        await self._writer.submit(_create_key, key)

    async def get_key(self, key_id: str) -> ApiKey | None:
        rows = await self._read(lambda c: list(c.execute(q.GET_KEY, (key_id,))))
        return ApiKey(*rows[0]) if rows else None

    async def list_keys(self) -> list[ApiKey]:
        return await self._read(lambda c: [ApiKey(*r) for r in c.execute(q.LIST_KEYS)])

    async def revoke_key(self, key_id: str, at: int) -> bool:
        return await self._writer.submit(_changed, q.REVOKE_KEY, (at, key_id))

    # --- topics --------------------------------------------------------------------

    async def create_topic(self, topic: Topic) -> None:
        await self._writer.submit(_create_topic, topic)

    async def get_topic(self, domain: str, name: str) -> Topic | None:
        rows = await self._read(lambda c: list(c.execute(q.GET_TOPIC, (domain, name))))
        return _topic(rows[0]) if rows else None

    async def list_topics(self, domain: str) -> list[Topic]:
        return await self._read(lambda c: [_topic(r) for r in c.execute(q.LIST_TOPICS, (domain,))])

    async def delete_topic(self, domain: str, name: str) -> bool:
        return await self._writer.submit(_changed, q.DELETE_TOPIC, (domain, name))

    # --- cursors -------------------------------------------------------------------

    async def cursor_state(self, key_id: str, domain: str, name: str) -> CursorState | None:
        rows = await self._read(lambda c: list(c.execute(q.GET_CURSOR, (key_id, domain, name))))
        return CursorState(*rows[0]) if rows else None

    async def list_cursors(self, domain: str) -> list[CursorInfo]:
        rows = await self._read(lambda c: list(c.execute(q.LIST_CURSORS, (domain,))))
        return [CursorInfo.from_row(r) for r in rows]

    @asynccontextmanager
    async def lease_cursor(self, key_id: str, domain: str, name: str) -> AsyncIterator[_Lease]:
        # One serving process owns a SQLite file, so an in-process lock is exclusive.
        lock = self._cursor_locks.setdefault((key_id, domain, name), asyncio.Lock())
        async with lock:
            state = await self.cursor_state(key_id, domain, name) or CursorState(0)
            yield _Lease(self, (key_id, domain, name), state)


class _Lease:
    def __init__(self, store: SqliteStorage, ident: tuple[str, str, str], state: CursorState):
        self._store = store
        self._ident = ident
        self.state = state

    async def commit(self, position: int, delivered: int, skipped: int = 0) -> None:
        params = (*self._ident, position, delivered, skipped, ingest.now_us())
        await self._store._writer.submit(_changed, q.PUT_CURSOR, params)
        self.state = CursorState(
            position, self.state.polled + delivered, self.state.skipped + skipped
        )


# --- writer-thread jobs ----------------------------------------------------------------


def _scalar(c: apsw.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    row = c.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _changed(c: apsw.Connection, sql: str, params: tuple[Any, ...]) -> bool:
    c.execute(sql, params)
    return bool(c.changes() > 0)


def _create_key(c: apsw.Connection, key: ApiKey) -> None:
    try:
        c.execute(q.INSERT_KEY, (key.id, key.name, key.scope, key.domain, key.secret_hash,
                                 key.created_at, key.revoked_at))
    except apsw.ConstraintError:
        raise Conflict(f"a key with id {key.id!r} exists") from None


def _create_topic(c: apsw.Connection, topic: Topic) -> None:
    try:
        c.execute(q.INSERT_TOPIC, (topic.domain, topic.name, json.dumps(topic.types),
                                   json.dumps(topic.channels), topic.created_at))
    except apsw.ConstraintError:
        raise Conflict(f"topic {topic.name!r} exists") from None


def _identity(rows: list[StoredEvent]) -> list[StoredEvent]:
    return rows


def _purge_step(c: apsw.Connection, cutoff: int, max_rows: int) -> int:
    """Remove up to ``max_rows`` events received before ``cutoff``, oldest first."""
    removed = 0
    for domain_id, _, next_index, purged in list(c.execute(q.ALL_DOMAINS)):
        if removed >= max_rows:
            break
        horizon = _scalar(c, q.PURGE_HORIZON, (domain_id, cutoff))
        if horizon is None or horizon <= purged:
            continue
        upto = min(horizon, purged + (max_rows - removed), next_index - 1)
        base = domain_id << q.INDEX_BITS
        lo, hi = base + purged, base + upto
        purged_types = set()
        for type_name, channel, n in list(c.execute(q.PURGE_COUNTS, (lo, hi))):
            c.execute(q.DROP_COUNT, (n, domain_id, type_name, channel))
            purged_types.add(type_name)
        c.executemany(q.PURGE_RUNS, [(t, base, hi, hi) for t in sorted(purged_types)])
        c.execute(q.PURGE_EVENTS, (lo, hi))
        c.execute(q.PURGE_EVENT_IDS, (domain_id, purged, upto))
        c.execute(q.PURGE_COMMITS, (domain_id, upto))
        c.execute(q.SET_PURGED, (upto, domain_id))
        removed += upto - purged
    return removed


def _topic(r: tuple[Any, ...]) -> Topic:
    return Topic(r[0], r[1], tuple(json.loads(r[2])), tuple(json.loads(r[3])), r[4])
