"""PostgreSQL storage: several rqs processes share one database.

psycopg 3 with a connection pool (``settings.pool_size``). Index assignment is in
``ingest`` (concurrent appends to one domain share transactions: ``group``), scans in
``scan``, retention in ``purge``, the schema and partitions in ``schema``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from rqs.domain.events import StoredEvent
from rqs.errors import Conflict, StorageUnavailable
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
    events_of,
)
from rqs.storage.pages import Streamed, chunk_for, in_thread, pipelined
from rqs.storage.postgres import ingest, purge, schema
from rqs.storage.postgres import scan as scans
from rqs.storage.postgres import sql as q
from rqs.storage.postgres.connection import (
    POOL_TIMEOUT_S,
    Conn,
    Pool,
    ReadPool,
    connect,
    make_pool,
    make_read_pool,
    unavailable,
)
from rqs.storage.postgres.group import GroupCommit

if TYPE_CHECKING:
    from rqs.storage.postgres.delivery import PostgresDeliveryStore

MAX_INDEX = 2**63 - 1
APPEND_ATTEMPTS = 3
# Chunks per streamed query. A query runs to its end whatever the client's pace (it never
# holds a statement open on a slow reader), so a scan buffers at most one query's chunks
# plus the two ``Streamed`` keeps ahead, besides the pages in the pipeline: at most six
# chunks, 30,000 events. With 4 rather than 2, a request of 10,000 is one query instead
# of two (each query starts cold): alternated runs, pages of 10,000, one type 228k ->
# 267k, after an index 281k -> 319k events/s.
STREAM_CHUNKS = 4
# Threads (and pooled blocking connections) for streamed scans: concurrent one-range reads
# beyond this wait for a turn, one query (four chunks) at a time.
READERS = 4


class PostgresStorage:
    backend = "postgres"

    def __init__(self, settings: Settings) -> None:
        if not settings.database_url:
            raise ValueError("PostgresStorage needs settings.database_url")
        self.settings = settings
        self.url = settings.database_url
        self._pool: Pool | None = None
        self._days: set[int] = set()  # days whose partition is known to exist
        self._groups: dict[str, GroupCommit] = {}  # per domain
        self._encoders: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._read_pool: ReadPool | None = None
        # In-process turn-taking before the cross-process row lock, so that many polls
        # of one cursor hold one pooled connection between them, not one each.
        self._cursor_locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # --- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        conn = await connect(self.url)
        try:
            with unavailable():
                await schema.upgrade(conn)
                self._days = await purge.ensure_ahead(conn, ingest.now_us()) or set()
        finally:
            await conn.close()
        pool = make_pool(self.url, self.settings.pool_size)
        try:
            with unavailable():
                await pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        # Scans encode pages here, beside the event loop reading the next one (see
        # rqs.storage.pages). Two threads: concurrent scans' encodes need not queue.
        self._encoders = ThreadPoolExecutor(2, thread_name_prefix="rqs-pg-encode")
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="rqs-pg-read")
        self._read_pool = make_read_pool(self.url, READERS)
        try:
            with unavailable():
                await asyncio.get_running_loop().run_in_executor(
                    self._readers, functools.partial(self._read_pool.open, wait=True,
                                                     timeout=POOL_TIMEOUT_S))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        # Appends already accepted finish first.
        await asyncio.gather(*(g.task for g in self._groups.values() if g.task is not None),
                             return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        loop = asyncio.get_running_loop()
        # Queries under way on the reader threads finish before their pool closes; the
        # threads are waited for off the event loop (a query may take a while).
        for attr in ("_encoders", "_readers"):
            executor: ThreadPoolExecutor | None = getattr(self, attr)
            if executor is not None:
                setattr(self, attr, None)
                await loop.run_in_executor(None, functools.partial(executor.shutdown,
                                                                   wait=True))
        if self._read_pool is not None:
            read_pool, self._read_pool = self._read_pool, None
            await loop.run_in_executor(None, read_pool.close)

    async def upgrade(self) -> list[str]:
        conn = await connect(self.url)
        try:
            with unavailable():
                return await schema.upgrade(conn)
        finally:
            await conn.close()

    async def pending_migrations(self) -> list[str]:
        conn = await connect(self.url)
        try:
            with unavailable():
                return await schema.pending(conn)
        finally:
            await conn.close()

    def delivery_store(self) -> PostgresDeliveryStore:
        """Push-delivery tables, on this store's pool (``delivery_base``)."""
        from rqs.storage.postgres.delivery import PostgresDeliveryStore

        return PostgresDeliveryStore(self._conn)

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        with unavailable():
            async with self._pool.connection() as conn:
                yield conn

    async def _fetch(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self._conn() as conn:
            return await (await conn.execute(query.encode(), params)).fetchall()

    async def _write(self, query: str, params: Any) -> int:
        async with self._conn() as conn:
            return (await conn.execute(query.encode(), params)).rowcount

    # --- append --------------------------------------------------------------------

    async def append(self, domain: str, source: EventSource) -> AppendResult:
        batch = ingest.Batch.of(events_of(source))
        writer = self._groups.get(domain)
        if writer is None:
            writer = self._groups[domain] = GroupCommit(
                functools.partial(self._append_batch, domain))
        return await writer.append(batch)

    async def _append_batch(self, domain: str, batch: ingest.Batch) -> ingest.Outcome:
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            now = ingest.now_us()
            if schema.day_of(now) not in self._days:
                await self._ensure_partitions(now)
            try:
                async with self._conn() as conn:
                    return await ingest.append(conn, domain, batch, now)
            except ingest.MissingPartition as exc:
                # received_at is ahead of this clock (another host's), or a day began
                if attempt == APPEND_ATTEMPTS:
                    raise StorageUnavailable(f"{exc}; creating it failed") from exc
                await self._ensure_partitions(exc.received_at)
        raise AssertionError("unreachable")

    async def _ensure_partitions(self, at: int) -> None:
        async with self._conn() as conn:
            found = await purge.ensure_ahead(conn, at)
        if found is not None:
            self._days = found

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
        # Always a pipeline with encodes on a thread, heavy or not: poll groups read on the
        # event loop here, so an encode there would stall them (see rqs.storage.pages).
        async with self._conn() as conn:
            plan = await scans.plan(conn, domain, query)
        if plan is None:
            return
        reader = scans.Reader(plan)
        loop = asyncio.get_running_loop()
        chunk = chunk or chunk_for(query.limit)
        encoders = self._encoders
        assert encoders is not None, "storage is not open"

        def encode(rows: list[StoredEvent]) -> asyncio.Future[R]:
            return loop.run_in_executor(encoders, fn, rows)

        if not reader.single:
            def take(want: int) -> asyncio.Future[list[StoredEvent]]:
                return asyncio.ensure_future(self._page(reader, want))

            # The database reads page k+2 (on the event loop) while a thread encodes page
            # k+1 and the caller sends page k (see rqs.storage.pages).
            async for page in pipelined(take, encode, query.limit, chunk):
                yield page
            return

        readers, read_pool = self._readers, self._read_pool
        assert readers is not None and read_pool is not None, "storage is not open"

        def rows_of(n: int) -> Iterator[list[StoredEvent]]:
            with unavailable(), read_pool.connection() as conn:
                yield from reader.stream(conn, n, chunk)

        def one_query(n: int) -> AsyncIterator[list[StoredEvent]]:
            return in_thread(readers, functools.partial(rows_of, n))

        # One range: the rows stream in while earlier chunks are encoded and sent.
        stream = Streamed(one_query, query.limit, chunk * STREAM_CHUNKS)
        try:
            async for page in pipelined(stream.take, encode, query.limit, chunk):
                yield page
        finally:
            await stream.close()

    async def _page(self, reader: scans.Reader, n: int) -> list[StoredEvent]:
        async with self._conn() as conn:
            return await reader.merged(conn, n)

    async def get_event(self, domain: str, index: int) -> StoredEvent | None:
        if not 1 <= index <= MAX_INDEX:
            return None
        rows = await self._fetch(q.GET_EVENT, {"domain": domain, "index": index})
        return scans.event(domain, rows[0]) if rows else None

    async def bounds(self, domain: str) -> Bounds:
        rows = await self._fetch(q.DOMAIN_STATE, (domain,))
        if not rows:
            return Bounds(oldest=None, newest=0, purged_through=0)
        _, next_index, purged = rows[0]
        newest = next_index - 1
        return Bounds(oldest=purged + 1 if newest > purged else None, newest=newest,
                      purged_through=purged)

    async def counts(self, domain: str) -> list[TypeCount]:
        return [TypeCount(*r) for r in await self._fetch(q.COUNTS, (domain,))]

    async def domains(self) -> list[str]:
        return [r[0] for r in await self._fetch(q.ALL_DOMAINS)]

    async def purge_step(self, cutoff: int, max_rows: int) -> int:
        async with self._conn() as conn:
            return await purge.purge_step(conn, cutoff, max_rows, ingest.now_us())

    # --- keys ----------------------------------------------------------------------

    async def create_key(self, key: ApiKey) -> None:
        try:
            await self._write(q.INSERT_KEY, (key.id, key.name, key.scope, key.domain,
                                             key.secret_hash, key.created_at, key.revoked_at))
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"a key with id {key.id!r} exists") from None

    async def get_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetch(q.GET_KEY, (key_id,))
        return ApiKey(*rows[0]) if rows else None

    async def list_keys(self) -> list[ApiKey]:
        return [ApiKey(*r) for r in await self._fetch(q.LIST_KEYS)]

    async def revoke_key(self, key_id: str, at: int) -> bool:
        return await self._write(q.REVOKE_KEY, (at, key_id)) > 0

    # --- topics --------------------------------------------------------------------

    async def create_topic(self, topic: Topic) -> None:
        try:
            await self._write(q.INSERT_TOPIC, (topic.domain, topic.name, list(topic.types),
                                               list(topic.channels), topic.created_at))
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"topic {topic.name!r} exists") from None

    async def get_topic(self, domain: str, name: str) -> Topic | None:
        rows = await self._fetch(q.GET_TOPIC, (domain, name))
        return _topic(rows[0]) if rows else None

    async def list_topics(self, domain: str) -> list[Topic]:
        return [_topic(r) for r in await self._fetch(q.LIST_TOPICS, (domain,))]

    async def delete_topic(self, domain: str, name: str) -> bool:
        return await self._write(q.DELETE_TOPIC, (domain, name)) > 0

    # --- cursors -------------------------------------------------------------------

    async def cursor_state(self, key_id: str, domain: str, name: str) -> CursorState | None:
        rows = await self._fetch(q.GET_CURSOR, (key_id, domain, name))
        return CursorState(*rows[0]) if rows else None

    async def list_cursors(self, domain: str) -> list[CursorInfo]:
        return [CursorInfo.from_row(r) for r in await self._fetch(q.LIST_CURSORS, (domain,))]

    @asynccontextmanager
    async def lease_cursor(self, key_id: str, domain: str, name: str) -> AsyncIterator[_Lease]:
        """Holds the cursor's row lock (in a transaction on its own connection) until
        the lease commits or ends, so leases exclude each other across processes."""
        ident = (key_id, domain, name)
        lock = self._cursor_locks.get(ident)
        if lock is None:
            lock = self._cursor_locks[ident] = asyncio.Lock()
        async with lock, self._conn() as conn:
            lease = await _Lease.begin(conn, ident)
            try:
                yield lease
            finally:
                await lease.end()


class _Lease:
    def __init__(self, conn: Conn, ident: tuple[str, str, str], state: CursorState) -> None:
        self._conn = conn
        self._ident = ident
        self._open = True
        self.state = state

    @classmethod
    async def begin(cls, conn: Conn, ident: tuple[str, str, str]) -> _Lease:
        await conn.execute(b"BEGIN")
        try:
            await conn.execute(q.ENSURE_CURSOR, (*ident, ingest.now_us()))
            row = await (await conn.execute(q.LOCK_CURSOR, ident)).fetchone()
        except BaseException:
            await _rollback(conn)
            raise
        assert row is not None
        return cls(conn, ident, CursorState(*row))

    async def commit(self, position: int, delivered: int, skipped: int = 0) -> None:
        if not self._open:
            raise RuntimeError("this cursor lease has committed already")
        with unavailable():
            await self._conn.execute(
                q.UPDATE_CURSOR, (position, delivered, skipped, ingest.now_us(), *self._ident)
            )
            await self._conn.execute(b"COMMIT")
        self._open = False
        self.state = CursorState(
            position, self.state.polled + delivered, self.state.skipped + skipped
        )

    async def end(self) -> None:
        if self._open:
            self._open = False
            await _rollback(self._conn)


async def _rollback(conn: Conn) -> None:
    # On a broken connection the server has ended the transaction; the pool drops it.
    with contextlib.suppress(psycopg.Error):
        await conn.execute(b"ROLLBACK")


def _identity(rows: list[StoredEvent]) -> list[StoredEvent]:
    return rows


def _topic(r: tuple[Any, ...]) -> Topic:
    return Topic(r[0], r[1], tuple(r[2]), tuple(r[3]), r[4])
