"""Connections and the pool, with timeouts so that a dead server fails fast.

Every operation maps "cannot reach the database" (``psycopg.OperationalError``, which
includes the pool's timeouts) to ``rqs.errors.StorageUnavailable``.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from rqs.errors import StorageUnavailable

Conn = psycopg.AsyncConnection[TupleRow]
Pool = AsyncConnectionPool[Conn]
# Blocking connections, for streamed scans on threads of their own (see store.scan_map).
SyncConn = psycopg.Connection[TupleRow]
ReadPool = ConnectionPool[SyncConn]

CONNECT_TIMEOUT_S = 5  # libpq connect_timeout
POOL_TIMEOUT_S = 10.0  # waiting for a pooled connection (server down, or pool exhausted)
# Pooled connections only (migrations may take longer): a statement stuck behind a lock
# or a wedged server fails instead of hanging its request; a lease whose process hangs
# gives its cursor back.
STATEMENT_TIMEOUT_MS = 60_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 600_000

# Advisory lock keys (any bigint unique to rqs): migrations, partition DDL, purging.
MIGRATION_LOCK = 0x5251_5301
PARTITION_LOCK = 0x5251_5302
PURGE_LOCK = 0x5251_5303


# Scans of events must never sort: once a day's partition has been vacuumed but not yet
# analyzed (a manual VACUUM, or autovacuum's insert threshold), the planner estimates one
# matching row and sorts every event of the type, or of the day, for a page of them:
# seconds and temp files where a merge of ordered index scans takes milliseconds.
# PostgreSQL has no per-statement hint, so scan connections run with sorting disabled
# (still possible when nothing else can answer, only never chosen over an ordered path).
NO_SORT_OPTION = "-c enable_sort=off"
NO_SORT_LOCAL = "SET LOCAL enable_sort = off"


def _kwargs(pooled: bool = False, scans: bool = False) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        # Statements run in autocommit unless a transaction is opened explicitly, so an
        # idle pooled connection never holds a snapshot or a lock.
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "rqs",
        # Binary COPY rows are written, and scan rows read, as UTF-8 in C (copy.c,
        # pgrows.c), whatever PGCLIENTENCODING or the database's default says.
        "client_encoding": "UTF8",
        # Notice a server that vanished without closing the socket.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if pooled:
        kwargs["options"] = (f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
                             f" -c idle_in_transaction_session_timeout="
                             f"{IDLE_IN_TRANSACTION_TIMEOUT_MS}")
    if scans:
        kwargs["options"] = f"{kwargs.get('options', '')} {NO_SORT_OPTION}".strip()
    return kwargs


async def connect(url: str) -> Conn:
    """One connection outside the pool, for migrations."""
    with unavailable():
        return await psycopg.AsyncConnection.connect(url, **_kwargs())


def _has_news(conn: Conn | SyncConn) -> bool:
    """Whether an idle connection's socket has something to read (or cannot be looked at).

    An idle connection is sent nothing unless its server is going away: a restart or
    ``pg_terminate_backend`` sends an error and closes the socket, and a killed server's
    socket reads as closed. Looking costs one ``poll`` and no round trip, so every
    connection is looked at before it is handed out, and only a suspect one pays for a
    real check. (``poll``, not ``select``: descriptors above 1023 are common in a busy
    server, and ``select`` cannot take them.)
    """
    if conn.closed:
        return True
    try:
        watch = select.poll()
        watch.register(conn.fileno(), select.POLLIN)
        return bool(watch.poll(0))
    except (OSError, ValueError):
        return True


def make_pool(url: str, size: int) -> Pool:
    async def check(conn: Conn) -> None:
        if not _has_news(conn):
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            # A restart breaks every idle connection at once. The pool would try them one
            # by one, waiting longer after each (1, 2, 4 s...) until its timeout: drop all
            # the broken ones now instead.
            await pool.check()
            raise

    pool: Pool = AsyncConnectionPool(
        url,
        kwargs=_kwargs(pooled=True),
        min_size=1,
        max_size=max(size, 2),  # a held cursor lease must not starve everything else
        timeout=POOL_TIMEOUT_S,
        # Without it, each connection a database restart broke would fail one request.
        check=check,
        open=False,
        name="rqs",
    )
    return pool


def make_read_pool(url: str, size: int) -> ReadPool:
    """Blocking connections for streamed scans, and nothing else (they do not sort)."""

    def check(conn: SyncConn) -> None:
        if not _has_news(conn):
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            pool.check()  # as in make_pool: every broken idle connection at once
            raise

    pool: ReadPool = ConnectionPool(
        url,
        kwargs=_kwargs(pooled=True, scans=True),
        min_size=1,
        max_size=size,
        timeout=POOL_TIMEOUT_S,
        # A scan's query starts after its response has begun: a connection broken by a
        # database restart would cut that response short.
        check=check,
        open=False,
        name="rqs-read",
    )
    return pool


@contextmanager
def unavailable() -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(f"PostgreSQL is unavailable: {exc}") from exc


@asynccontextmanager
async def pipelined_transaction(conn: Conn) -> AsyncIterator[None]:
    """A transaction whose statements go out without waiting for each other: only a fetch
    inside it, and its end, wait for the server. BEGIN and COMMIT are plain statements in
    the pipeline because ``conn.transaction()`` there syncs at both ends (two round trips
    more)."""
    try:
        async with conn.pipeline():
            await conn.execute("BEGIN")
            yield
            await conn.execute("COMMIT")
    except BaseException:
        # A failed statement leaves the transaction aborted, a failure in the block leaves
        # it open: end it here, as conn.transaction() would, so the pool gets it back idle.
        with suppress(psycopg.Error):
            await conn.rollback()
        raise
