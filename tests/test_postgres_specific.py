"""PostgreSQL backend specifics: migrations, partitions, query plans, failures, and
gapless commit-ordered indexes under concurrent writer processes.

Behaviour shared with SQLite is in ``tests/contract``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from rqs.domain import catalog, selectors
from rqs.domain.events import NewEvent
from rqs.errors import StorageUnavailable
from rqs.settings import Settings
from rqs.storage.base import Bounds, CursorState, EventQuery
from rqs.storage.postgres import PostgresStorage, connection, ingest, raw_rows, schema
from rqs.storage.postgres import scan as scans
from rqs.storage.postgres import sql as q
from tests.conftest import _admin, _db_url, _drop_db

pytestmark = pytest.mark.postgres

DAY = q.DAY_US


def ev(type_name: str = "EMAIL_BOUNCED", ext_id: str | None = None, n: int | None = None
       ) -> NewEvent:
    """An event; with ``n``, its payload is ``{"n": n}``, to tell it apart."""
    return NewEvent(type=type_name, channel=catalog.channel_for(type_name, None).value,
                    payload=b'{"x":1}' if n is None else b'{"n":%d}' % n, ext_id=ext_id)


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStorage]:
    s = PostgresStorage(Settings(database_url=pg_url, pool_size=4))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def empty_db_url(pg_databases: object) -> Iterator[str]:
    """A database with nothing in it (pg_databases: skip without a server)."""
    name = f"rqs_test_empty_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _db_url(name)
    finally:
        _drop_db(name)


def fetch(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def attached_days(url: str) -> set[int]:
    names = fetch(url, "SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                       "ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass")
    return {d for (n,) in names if (d := schema.parse_partition(n)) is not None}


# --- migrations and partitions ---------------------------------------------------------


async def test_migrations_from_an_empty_database(empty_db_url: str) -> None:
    names = [name for name, _ in schema.available_migrations()]
    assert names[0] == "0001_initial"
    store = PostgresStorage(Settings(database_url=empty_db_url))
    assert await store.pending_migrations() == names
    assert await store.upgrade() == names
    assert await store.pending_migrations() == []
    assert await store.upgrade() == []
    assert [r[0] for r in fetch(empty_db_url, "SELECT version FROM schema_migrations "
                                              "ORDER BY version")] == names
    await store.open()
    try:
        assert (await store.append("acme", [ev()])).indexes == [1]
    finally:
        await store.close()


async def test_processes_opening_together_migrate_once(empty_db_url: str) -> None:
    stores = [PostgresStorage(Settings(database_url=empty_db_url, pool_size=1))
              for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert fetch(empty_db_url, "SELECT count(*) FROM schema_migrations")[0][0] == len(
            schema.available_migrations())
        results = await asyncio.gather(*(s.append("acme", [ev()]) for s in stores))
        assert sorted(r.indexes[0] for r in results) == [1, 2, 3, 4]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_partitions_are_created_ahead(store: PostgresStorage, pg_url: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = ingest.now_us
    today = schema.day_of(real())
    assert {today, today + 1, today + 2} <= attached_days(pg_url)
    # appending to a day without a partition creates it (a clock ahead, or a new day)
    later = (today + 9) * DAY + 5
    await store.append("acme", [ev()])
    monkeypatch.setattr(ingest, "now_us", lambda: later)
    result = await store.append("acme", [ev()])
    monkeypatch.setattr(ingest, "now_us", real)
    assert result.received_at == later
    assert today + 9 in attached_days(pg_url)
    # received_at never goes back, even when the clock does
    assert (await store.append("acme", [ev()])).received_at == later


async def test_purge_drops_expired_partitions(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ingest.now_us
    old = real() - 5 * DAY
    monkeypatch.setattr(ingest, "now_us", lambda: old)
    store = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    await store.open()
    try:
        await store.append("acme", [ev(ext_id=f"old{i}") for i in range(30)])
        await store.append("beta", [ev("SMS_FAILED") for _ in range(5)])
        monkeypatch.setattr(ingest, "now_us", real)
        await store.append("acme", [ev(ext_id="new"), ev("EMAIL_CLICKED")])
        old_day = schema.day_of(old)
        assert old_day in attached_days(pg_url)

        removed = await store.purge_step(real() - DAY, 10)
        assert removed == 35  # whole partitions go at once, beyond the row budget
        assert old_day not in attached_days(pg_url)
        assert fetch(pg_url, "SELECT to_regclass(%s)", (schema.partition_name(old_day),)) == [
            (None,)]
        assert await store.bounds("acme") == Bounds(oldest=31, newest=32, purged_through=30)
        assert await store.bounds("beta") == Bounds(oldest=None, newest=5, purged_through=5)
        counts = {(c.type, c.retained, c.ingested) for c in await store.counts("acme")}
        assert counts == {("EMAIL_BOUNCED", 1, 31), ("EMAIL_CLICKED", 1, 1)}
        assert [e.index async for rows in store.scan("acme", EventQuery()) for e in rows] == [
            31, 32]
        assert await store.get_event("acme", 30) is None
        assert fetch(pg_url, "SELECT count(*) FROM day_counts WHERE day = %s",
                     (schema.as_date(old_day),)) == [(0,)]
        # ids and commits of purged events are tidied in bounded steps
        for _ in range(5):
            assert await store.purge_step(real() - DAY, 10) == 0
        assert fetch(pg_url, "SELECT count(*) FROM event_ids") == [(1,)]
        assert fetch(pg_url, "SELECT count(*) FROM commits") == [(1,)]
        again = await store.append("acme", [ev(ext_id="old3"), ev(ext_id="new")])
        assert (again.indexes, again.stored) == ([33, 31], 1)
    finally:
        await store.close()


async def test_purge_drops_a_partition_left_detached(store: PostgresStorage,
                                                     pg_url: str) -> None:
    # What a purge interrupted between DETACH and DROP leaves behind.
    fetch(pg_url, "CREATE TABLE events_p20000101 (LIKE events INCLUDING ALL)")
    await store.purge_step(ingest.now_us() - DAY, 10)
    assert fetch(pg_url, "SELECT to_regclass('events_p20000101')") == [(None,)]


async def test_purge_while_appending(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ingest.now_us
    monkeypatch.setattr(ingest, "now_us", lambda: real() - 3 * DAY)
    writer = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    purger = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    await writer.open()
    await purger.open()
    try:
        await writer.append("acme", [ev() for _ in range(100)])
        monkeypatch.setattr(ingest, "now_us", real)

        async def keep_appending() -> int:
            n = 0
            for _ in range(30):
                n += (await writer.append("acme", [ev() for _ in range(20)])).stored
            return n

        appended, removed = await asyncio.gather(
            keep_appending(), purger.purge_step(real() + DAY, 1_000))  # a later cutoff: now
        assert removed >= 100
        bounds = await writer.bounds("acme")
        assert bounds.newest == 100 + appended
        left = [e.index async for rows in writer.scan("acme", EventQuery(limit=10**6))
                for e in rows]
        assert left == list(range(bounds.purged_through + 1, bounds.newest + 1))
        retained = sum(c.retained for c in await writer.counts("acme"))
        assert retained == len(left)
    finally:
        await writer.close()
        await purger.close()


# --- rows on disk ----------------------------------------------------------------------


def on_disk(url: str) -> list[tuple[int, str, bytes]]:
    """(index, type, payload) of every event in the order of the rows in the heap."""
    return [(i, t, bytes(p)) for i, t, p in
            fetch(url, "SELECT idx, type, payload FROM events ORDER BY tableoid, ctid")]


async def test_an_append_writes_its_rows_grouped_by_type(store: PostgresStorage,
                                                         pg_url: str) -> None:
    types = ["EMAIL_CLICKED", "EMAIL_BOUNCED", "EMAIL_CLICKED", "EMAIL_OPENED",
             "EMAIL_BOUNCED", "EMAIL_CLICKED"]
    result = await store.append("acme", [ev(t, n=n) for n, t in enumerate(types)])
    assert result.indexes == [1, 2, 3, 4, 5, 6]  # indexes keep the order the events came in
    clicked, bounced, opened = "EMAIL_CLICKED", "EMAIL_BOUNCED", "EMAIL_OPENED"
    assert on_disk(pg_url) == [
        (1, clicked, b'{"n":0}'), (3, clicked, b'{"n":2}'), (6, clicked, b'{"n":5}'),
        (2, bounced, b'{"n":1}'), (5, bounced, b'{"n":4}'), (4, opened, b'{"n":3}')]
    page = [e async for chunk in store.scan("acme", EventQuery()) for e in chunk]
    assert [(e.index, e.payload) for e in page] == [
        (n + 1, b'{"n":%d}' % n) for n in range(len(types))]


async def test_grouped_rows_keep_their_indexes_when_some_events_are_repeats(
        store: PostgresStorage, pg_url: str) -> None:
    await store.append("acme", [ev("EMAIL_OPENED", "old", n=0)])
    result = await store.append("acme", [
        ev("EMAIL_CLICKED", n=1), ev("EMAIL_BOUNCED", n=2),
        ev("EMAIL_CLICKED", n=3), ev("EMAIL_OPENED", "old", n=4),
        ev("EMAIL_BOUNCED", n=5), ev("EMAIL_CLICKED", "d", n=6),
        ev("EMAIL_CLICKED", "d", n=7)])
    assert (result.indexes, result.stored) == ([2, 3, 4, 1, 5, 6, 6], 5)
    assert on_disk(pg_url)[1:] == [
        (2, "EMAIL_CLICKED", b'{"n":1}'), (4, "EMAIL_CLICKED", b'{"n":3}'),
        (6, "EMAIL_CLICKED", b'{"n":6}'), (3, "EMAIL_BOUNCED", b'{"n":2}'),
        (5, "EMAIL_BOUNCED", b'{"n":5}')]
    query = EventQuery(selector=selectors.for_filters(["EMAIL_CLICKED"]))
    clicks = [e async for chunk in store.scan("acme", query) for e in chunk]
    assert [(e.index, e.payload) for e in clicks] == [
        (2, b'{"n":1}'), (4, b'{"n":3}'), (6, b'{"n":6}')]


async def test_a_group_commit_writes_its_joined_rows_grouped_by_type(
        store: PostgresStorage, pg_url: str) -> None:
    """Appends joined into one transaction (group commit) are grouped across requests."""
    await store.append("acme", [ev("EMAIL_OPENED", "old", n=0)])
    first = ingest.Batch.of([ev("EMAIL_CLICKED", n=1), ev("EMAIL_OPENED", "old", n=2)])
    second = ingest.Batch.of([ev("EMAIL_BOUNCED", n=3), ev("EMAIL_CLICKED", "d", n=4),
                              ev("EMAIL_CLICKED", "d", n=5)])
    conn = await connection.connect(pg_url)
    try:
        out = await ingest.append(conn, "acme", ingest.Batch.join([first, second]),
                                  ingest.now_us())
    finally:
        await conn.close()
    assert out.indexes == [2, 1, 3, 4, 4]
    assert on_disk(pg_url)[1:] == [
        (2, "EMAIL_CLICKED", b'{"n":1}'), (4, "EMAIL_CLICKED", b'{"n":4}'),
        (3, "EMAIL_BOUNCED", b'{"n":3}')]


# --- failures --------------------------------------------------------------------------


async def test_append_fails_whole_when_its_last_statement_fails(
    store: PostgresStorage, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.append("acme", [ev(ext_id="a")])
    # the last statement of the append's transaction, after the COPYs, fails on the server
    monkeypatch.setattr(q, "BUMP_DAY_COUNTS", "SELECT %s::date, %s::int, %s::text[], "
                                              "%s::text[], %s::bigint[], 1/0")
    with pytest.raises(psycopg.errors.DivisionByZero):
        await store.append("acme", [ev(ext_id="b"), ev(), ev(ext_id="a")])
    monkeypatch.undo()
    assert fetch(pg_url, "SELECT count(*) FROM events") == [(1,)]
    assert fetch(pg_url, "SELECT ext_id FROM event_ids") == [("a",)]
    assert await store.bounds("acme") == Bounds(oldest=1, newest=1, purged_through=0)
    again = await store.append("acme", [ev(ext_id="b"), ev(), ev(ext_id="a")])
    assert (again.indexes, again.stored) == ([2, 3, 1], 2)



async def test_unreachable_server_raises_storage_unavailable() -> None:
    store = PostgresStorage(Settings(database_url="postgresql://postgres@127.0.0.1:1/none"))
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await store.open()
    assert time.monotonic() - started < connection.CONNECT_TIMEOUT_S + 1


@contextlib.asynccontextmanager
async def _impatient_store(pg_url: str, monkeypatch: pytest.MonkeyPatch, pool_size: int
                           ) -> AsyncIterator[tuple[PostgresStorage, str]]:
    """An open store whose pools give up after one second, and its database's name."""
    monkeypatch.setattr(connection, "POOL_TIMEOUT_S", 1.0)
    store = PostgresStorage(Settings(database_url=pg_url, pool_size=pool_size))
    await store.open()
    try:
        yield store, str(psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"])
    finally:
        await store.close()


async def test_lost_server_raises_storage_unavailable(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _impatient_store(pg_url, monkeypatch, 2) as (store, name):
        try:
            await store.append("acme", [ev()])
            with _admin() as admin:
                ident = sql.Identifier(name)
                admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s", (name,))
            started = time.monotonic()
            for _ in range(3):  # a dead pooled connection, then no new connection
                with pytest.raises(StorageUnavailable):
                    await store.bounds("acme")
            with pytest.raises(StorageUnavailable):
                await store.append("acme", [ev()])
            with pytest.raises(StorageUnavailable):
                [e async for rows in store.scan("acme", EventQuery()) for e in rows]
            with pytest.raises(StorageUnavailable):
                async with store.lease_cursor("k", "acme", "main"):
                    pass
            assert time.monotonic() - started < 15
        finally:
            with _admin() as admin:
                ident = sql.Identifier(name)
                admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(ident))


async def test_connections_broken_by_a_restart_are_replaced_not_failed(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A restart terminates every backend. The pooled connections left behind must neither
    # fail a request each, nor be tried one by one: the pool waits longer after each
    # failed check (1, 2, 4 s...), so six of them would outlast a one-second timeout.
    async with _impatient_store(pg_url, monkeypatch, 8) as (store, name):
        await store.append("acme", [ev()])
        # Exercise both pools; hold six connections at once so that six stay idle.
        assert [e.index async for rows in store.scan("acme", EventQuery()) for e in rows] == [1]
        pool = store._pool
        assert pool is not None
        async with contextlib.AsyncExitStack() as held:
            for _ in range(6):
                await held.enter_async_context(pool.connection())
        assert pool.get_stats()["pool_available"] >= 6
        with _admin() as admin:
            killed = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000)"
                " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()) t",
                (name,)).fetchone()
        assert killed is not None and killed[0] >= 7
        assert (await store.bounds("acme")).newest == 1
        assert (await store.append("acme", [ev()])).indexes == [2]
        assert [e.index async for rows in store.scan("acme", EventQuery())
                for e in rows] == [1, 2]


def test_idle_connections_are_looked_at_whatever_their_descriptor() -> None:
    # select() cannot take descriptors above 1023, which a busy server reaches.
    class Idle:
        closed = False

        def __init__(self, fd: int) -> None:
            self.fd = fd

        def fileno(self) -> int:
            return self.fd

    a, b = socket.socketpair()
    high = os.dup2(a.fileno(), 1500)
    try:
        assert connection._has_news(Idle(high)) is False  # type: ignore[arg-type]
        b.send(b"E")  # what a terminating server sends before closing
        assert connection._has_news(Idle(high)) is True  # type: ignore[arg-type]
    finally:
        os.close(high)
        a.close()
        b.close()


# --- cursor leases across processes ------------------------------------------------------


async def test_leases_exclude_each_other_across_storages(pg_url: str) -> None:
    # Two storages with their own pools stand for two processes: only the row lock
    # in the database keeps them apart.
    a = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    b = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    await a.open()
    await b.open()
    try:
        async with a.lease_cursor("k", "acme", "main") as first:
            second = asyncio.create_task(_lease_and_report(b))
            done, _ = await asyncio.wait([second], timeout=0.3)
            assert not done, "the second storage got the lease while the first held it"
            await first.commit(9, 9)
        assert await asyncio.wait_for(second, 10) == 9
        assert await a.cursor_state("k", "acme", "main") == CursorState(10, 10, 0)
        # a holder that goes away without committing releases the row as well
        async with a.lease_cursor("k", "acme", "main"):
            pass
        async with asyncio.timeout(10), b.lease_cursor("k", "acme", "main") as lease:
            assert lease.state.position == 10
    finally:
        await a.close()
        await b.close()


async def _lease_and_report(store: PostgresStorage) -> int:
    async with store.lease_cursor("k", "acme", "main") as lease:
        seen = lease.state.position
        await lease.commit(seen + 1, 1)
        return seen


# --- query plans -----------------------------------------------------------------------


class Recorder:
    """Passes queries to a connection and keeps them, to EXPLAIN what the code runs."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.calls: list[tuple[Any, Any]] = []

    async def execute(self, query: Any, params: Any = None, *, binary: bool = False) -> Any:
        self.calls.append((query, params))
        return await self.conn.execute(query, params, binary=binary)

    def pipeline(self) -> Any:
        return self.conn.pipeline()

    async def rollback(self) -> None:
        await self.conn.rollback()


class SyncRecorder:
    """The same for the blocking connections streamed scans run on."""

    def __init__(self, conn: psycopg.Connection[Any], calls: list[tuple[Any, Any]]) -> None:
        self.conn = conn
        self.calls = calls

    def cursor(self, *, binary: bool = False) -> SyncRecorder:
        self._binary = binary
        return self

    def stream(self, query: Any, params: Any = None, *, size: int = 1) -> Iterator[Any]:
        self.calls.append((query, params))
        yield from self.conn.cursor(binary=self._binary).stream(query, params, size=size)


async def explain(conn: psycopg.AsyncConnection[Any], query: Any, params: Any) -> dict[str, Any]:
    text = query if isinstance(query, bytes) else str(query).encode()
    cur = await conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + text, params)
    row = await cur.fetchone()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def event_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Scans of events partitions that ran (pruned ones are absent or never executed)."""
    return [n for n in nodes(plan) if str(n.get("Relation Name", "")).startswith("events_p")
            and n.get("Actual Loops", 1) > 0]


TYPES_MIX = ["EMAIL_SENT_TO_MTA"] * 5 + ["EMAIL_OPENED"] * 3 + [
    "EMAIL_BOUNCED", "EMAIL_CLICKED", "SMS_FAILED", "PUSH_BOUNCED", "EMAIL_FAILED"]


async def _ingest_days(store: PostgresStorage, monkeypatch: pytest.MonkeyPatch,
                       days_back: tuple[int, ...], per_day: int) -> list[int]:
    """``per_day`` events (in batches of up to 2,000) received on each of the days so many
    days back; each day's first index."""
    real = ingest.now_us
    firsts: list[int] = []
    try:
        for back in days_back:
            monkeypatch.setattr(ingest, "now_us", lambda back=back: real() - back * DAY)
            for start in range(0, per_day, 2000):
                n = min(2000, per_day - start)
                batch = [ev(TYPES_MIX[(start + i) % len(TYPES_MIX)]) for i in range(n)]
                result = await store.append("acme", batch)
                if start == 0:
                    firsts.append(result.indexes[0])
    finally:
        monkeypatch.setattr(ingest, "now_us", real)
    return firsts


@pytest.fixture
async def three_days(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[PostgresStorage, list[int]]]:
    """~24,000 events over three days; returns the store and each day's first index."""
    store = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    await store.open()
    try:
        firsts = await _ingest_days(store, monkeypatch, (2, 1, 0), 8000)
        fetch(pg_url, "ANALYZE")
        yield store, firsts
    finally:
        await store.close()


@pytest.fixture
async def vacuumed_then_a_new_day(pg_url: str, monkeypatch: pytest.MonkeyPatch
                                  ) -> AsyncIterator[tuple[PostgresStorage, list[int]]]:
    """Two full days, vacuumed and never analyzed (row counts known, no column
    statistics), then the first few events of today: what a read across midnight meets
    after a manual VACUUM or autovacuum's insert threshold."""
    store = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    await store.open()
    try:
        firsts = await _ingest_days(store, monkeypatch, (2, 1), 8000)
        fetch(pg_url, "VACUUM")
        firsts += await _ingest_days(store, monkeypatch, (0,), 26)
        yield store, firsts
    finally:
        await store.close()


async def _plans(url: str, store: PostgresStorage, query: EventQuery, take: int = 200
                 ) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of every query one scan page runs (planning, then the page), with
    the settings of the connections the store runs them on."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rec = Recorder(conn)
        plan = await scans.plan(rec, "acme", query)  # type: ignore[arg-type]
        assert plan is not None
        reader = scans.Reader(plan)
        if reader.single:
            kwargs = connection._kwargs(pooled=True, scans=True)
            with psycopg.Connection.connect(url, **kwargs) as sync:
                if raw_rows.available():  # the scan sends its query through libpq itself
                    real = raw_rows.stream

                    def spy(conn: Any, query: Any, params: Any, *rest: Any) -> Any:
                        # explained as sent: values merged in, planned for them
                        sent = psycopg.ClientCursor(conn).mogrify(query, params)
                        rec.calls.append((sent, None))
                        return real(conn, query, params, *rest)

                    with pytest.MonkeyPatch.context() as patch:
                        patch.setattr(raw_rows, "stream", spy)
                        for _ in reader.stream(sync, take, take):
                            pass
                else:
                    for _ in reader.stream(SyncRecorder(sync, rec.calls),  # type: ignore[arg-type]
                                           take, take):
                        pass
                # Explained on the connection they ran on, with its settings.
                return [_explain_sync(sync, sql_, params) for sql_, params in rec.calls[1:]]
        await reader.merged(rec, take)  # type: ignore[arg-type]
        plans = []
        async with conn.transaction():
            for sql_, params in rec.calls[1:]:
                if str(sql_).startswith("SET LOCAL"):
                    await conn.execute(sql_)
                elif str(sql_) not in ("BEGIN", "COMMIT"):
                    plans.append(await explain(conn, sql_, params))
        return plans


def _explain_sync(conn: psycopg.Connection[Any], query: Any, params: Any) -> dict[str, Any]:
    text = query if isinstance(query, bytes) else str(query).encode()
    row = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + text, params).fetchone()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


async def test_plan_poll_by_type_after_an_index(three_days: tuple[PostgresStorage, list[int]],
                                                pg_url: str) -> None:
    store, firsts = three_days
    one = selectors.for_filters(["EMAIL_BOUNCED"])
    for plan in await _plans(pg_url, store, EventQuery(after=firsts[2] + 100, selector=one)):
        scanned = event_scans(plan)
        assert len(scanned) == 1, "only today's partition"
        assert scanned[0]["Node Type"] == "Index Scan"
        assert scanned[0]["Index Name"].endswith("_domain_id_type_idx_idx")
    group = selectors.for_poll_type("mtaResponse")
    assert group is not None
    plans = await _plans(pg_url, store, EventQuery(after=firsts[1] + 100, selector=group))
    for plan in plans:
        scanned = event_scans(plan)
        assert {n["Node Type"] for n in scanned} == {"Index Scan"}
        assert all(n["Index Name"].endswith("_domain_id_type_idx_idx") for n in scanned)
        assert len({n["Relation Name"] for n in scanned}) <= 2  # yesterday and today


def test_few_ranges_are_merged_by_postgresql_and_many_here() -> None:
    def reader(types: int, days: int, filters: str = "") -> scans.Reader:
        return scans.Reader(scans.Plan(
            domain="acme", domain_id=1, lo=0, hi=10, t0=5 * DAY, t1=(5 + days) * DAY - 1,
            filters=filters, params={}, types=[f"T{i}" for i in range(types)]))

    assert reader(10, 4).single and b"UNION ALL" in reader(10, 4).sql
    assert reader(2, 20).single
    assert not reader(10, 5).single and b"LATERAL" in reader(10, 5).sql
    assert not reader(41, 1).single
    assert reader(1, 31).single  # one type: one range however many days
    # A filter on the rows: each type keeps its own position (see scan.Reader).
    assert not reader(2, 1, q.SCAN_CHANNELS).single
    assert not reader(2, 1, q.SCAN_CAMPAIGN).single
    assert reader(1, 1, q.SCAN_CHANNELS).single


async def test_plan_all_messages_after_an_index(three_days: tuple[PostgresStorage, list[int]],
                                                pg_url: str) -> None:
    store, firsts = three_days
    every = selectors.for_poll_type("allMessages")
    assert every is not None
    for plan in await _plans(pg_url, store, EventQuery(after=firsts[2] + 10, selector=every)):
        scanned = event_scans(plan)
        assert len(scanned) == 1
        assert scanned[0]["Node Type"] == "Index Scan"
        assert scanned[0]["Index Name"].endswith("_pkey")


async def test_plan_time_range(three_days: tuple[PostgresStorage, list[int]],
                               pg_url: str) -> None:
    store, firsts = three_days
    yesterday = await store.get_event("acme", firsts[1] + 10)
    assert yesterday is not None
    since, until = yesterday.received_at, yesterday.received_at + 1
    for plan in await _plans(pg_url, store, EventQuery(since=since, until=until)):
        scanned = event_scans(plan)
        assert len(scanned) == 1, "only yesterday's partition"
        assert scanned[0]["Relation Name"] == schema.partition_name(
            schema.day_of(yesterday.received_at))
        assert scanned[0]["Node Type"] == "Index Scan"


def sorts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in nodes(plan) if "Sort" in str(n["Node Type"])]


async def test_scans_merge_ordered_index_scans_whatever_the_statistics(
        vacuumed_then_a_new_day: tuple[PostgresStorage, list[int]], pg_url: str) -> None:
    store, firsts = vacuumed_then_a_new_day
    one = selectors.for_filters(["EMAIL_BOUNCED"])
    group = selectors.for_poll_type("mtaResponse")
    assert group is not None
    group_push = selectors.for_filters(["mtaResponse"], ["Push"])  # per-type pages
    queries = {"one type": EventQuery(after=firsts[1] + 100, selector=one),
               "every type": EventQuery(after=firsts[1] + 100),
               "a poll group": EventQuery(after=firsts[1] + 100, selector=group),
               "a poll group on one channel": EventQuery(after=firsts[1] + 100,
                                                        selector=group_push)}
    for name, query in queries.items():
        plans = await _plans(pg_url, store, query, take=300)
        assert plans, name
        for plan in plans:
            assert not sorts(plan), f"{name}: {plan}"
            scanned = event_scans(plan)
            assert {n["Node Type"] for n in scanned} == {"Index Scan"}, name
            # A page reads what it returns, not every candidate of yesterday and today.
            assert sum(n["Actual Rows"] for n in scanned) <= 3 * 300, name
    # The fixture does set the trap: planned with default settings, that page sorts
    # every candidate.
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        rec = Recorder(conn)
        plan_ = await scans.plan(rec, "acme", queries["one type"])  # type: ignore[arg-type]
        assert plan_ is not None
        reader = scans.Reader(plan_)
        page = await explain(conn, reader.sql, reader._params(
            after=reader.pos, n=300, type="EMAIL_BOUNCED"))
    assert sorts(page)


async def test_plan_get_event_by_index(three_days: tuple[PostgresStorage, list[int]],
                                       pg_url: str) -> None:
    _, firsts = three_days
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        plan = await explain(conn, q.GET_EVENT.encode(), {"domain": "acme",
                                                          "index": firsts[1] + 7})
    scanned = event_scans(plan)
    assert len(scanned) == 1, "the event's own partition only"
    assert scanned[0]["Node Type"] == "Index Scan"
    assert scanned[0]["Index Name"].endswith("_pkey")
    assert scanned[0]["Actual Rows"] == 1


# --- concurrent writers --------------------------------------------------------------

WRITERS = 4
BATCHES = 40
GROUP = "mtaResponse"
TYPES = ["EMAIL_BOUNCED", "EMAIL_OPENED", "EMAIL_SENT_TO_MTA", "SMS_FAILED", "PUSH_BOUNCED",
         "EMAIL_CLICKED", "EMAIL_OPENED"]


def _batch(writer: int, k: int) -> list[NewEvent]:
    size = (writer * 31 + k * 17) % 120 + 1
    return [ev(TYPES[(k + i) % len(TYPES)], f"w{writer}-{k}-{i}" if i % 2 else None)
            for i in range(size)]


def _writer_main(url: str, writer: int, barrier: Any, out: Any) -> None:
    """A writer process: appends its batches as fast as it can, re-sending some."""

    async def run() -> list[tuple[int, list[int], int]]:
        store = PostgresStorage(Settings(database_url=url, pool_size=2))
        await store.open()
        try:
            barrier.wait(30)
            results = []
            for k in range(BATCHES):
                batch = _batch(writer, k)
                r = await store.append("acme", batch)
                results.append((k, r.indexes, r.stored))
                if k % 7 == 3:  # a re-send of what has ids: nothing new
                    again = await store.append("acme", [e for e in batch if e.ext_id])
                    assert again.stored == 0
                    assert again.indexes == [i for e, i in zip(batch, r.indexes, strict=True)
                                             if e.ext_id]
            return results
        finally:
            await store.close()

    try:
        out.put((writer, asyncio.run(run())))
    except BaseException as exc:
        out.put((writer, repr(exc)))
        raise


async def _poller(url: str, name: str, query_of: Any, expected: int, chunk: int,
                  gapless: bool, seen: dict[str, list[int]]) -> None:
    store = PostgresStorage(Settings(database_url=url, pool_size=2))
    await store.open()
    got = seen[name] = []
    last = 0
    try:
        while len(got) < expected:
            async for rows in store.scan("acme", query_of(last), chunk):
                for e in rows:
                    if gapless:
                        assert e.index == last + 1, f"{name}: {e.index} after {last}"
                    else:
                        assert e.index > last, f"{name}: {e.index} after {last}"
                    last = e.index
                    got.append(e.index)
    finally:
        await store.close()


def test_concurrent_writer_processes_and_pollers(pg_url: str) -> None:
    batches = {(w, k): _batch(w, k) for w in range(WRITERS) for k in range(BATCHES)}
    total = sum(len(b) for b in batches.values())
    group = selectors.for_poll_type(GROUP)
    assert group is not None
    in_group = sum(1 for b in batches.values() for e in b if e.type in (group.types or ()))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer_main, args=(pg_url, w, barrier, out), daemon=True)
             for w in range(WRITERS)]
    seen: dict[str, list[int]] = {}

    async def main() -> list[tuple[int, Any]]:
        for p in procs:
            p.start()
        pollers = [asyncio.create_task(p) for p in [
            _poller(pg_url, "all-1", lambda a: EventQuery(after=a, limit=5_000), total, 700,
                    True, seen),
            _poller(pg_url, "all-2", lambda a: EventQuery(after=a, limit=333), total, 50,
                    True, seen),
            _poller(pg_url, "group", lambda a: EventQuery(after=a, selector=group, limit=400),
                    in_group, 64, False, seen),
        ]]
        async with asyncio.timeout(60):
            results = await asyncio.gather(*(asyncio.to_thread(out.get, True, 60)
                                             for _ in procs))
            if any(isinstance(r, str) for _, r in results):
                for t in pollers:
                    t.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            for t in pollers:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        return results

    started = time.monotonic()
    try:
        written = asyncio.run(main())
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    elapsed = time.monotonic() - started
    failures = [r for _, r in written if isinstance(r, str)]
    assert not failures, failures
    assert all(p.exitcode == 0 for p in procs)

    assigned: list[int] = []
    for _, results in written:
        for _k, indexes, stored in results:
            fresh = sorted(set(indexes))
            assert len(fresh) == stored
            # one append's events get consecutive indexes: assignment is serialized
            assert fresh == list(range(fresh[0], fresh[0] + stored))
            assigned.extend(fresh)
    assert sorted(assigned) == list(range(1, total + 1))
    assert seen["all-1"] == list(range(1, total + 1))
    assert seen["all-2"] == list(range(1, total + 1))
    assert len(seen["group"]) == in_group
    assert elapsed < 30, f"took {elapsed:.1f}s"
