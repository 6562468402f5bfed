"""Connections and the pool, with timeouts so that a dead server fails fast.

Every operation maps "cannot reach the database" (``psycopg.OperationalError``, which
includes the pool's timeouts) to ``rqs.errors.StorageUnavailable``.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
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
    """Whether an idle connection's socket has something to read.

    An idle connection is sent nothing unless its server is going away: a restart or
    ``pg_terminate_backend`` sends an error and closes the socket, and a killed server's
    socket reads as closed. Looking costs one ``select`` and no round trip, so every
    connection is checked before it is handed out, and only a suspect one pays for a
    real check.
    """
    if conn.closed:
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


async def _check_async(conn: Conn) -> None:
    if _has_news(conn):
        await AsyncConnectionPool.check_connection(conn)


def _check_sync(conn: SyncConn) -> None:
    if _has_news(conn):
        ConnectionPool.check_connection(conn)


def make_pool(url: str, size: int) -> Pool:
    return AsyncConnectionPool(
        url,
        kwargs=_kwargs(pooled=True),
        min_size=1,
        max_size=max(size, 2),  # a held cursor lease must not starve everything else
        timeout=POOL_TIMEOUT_S,
        # Without it, each connection a database restart broke would fail one request.
        check=_check_async,
        open=False,
        name="rqs",
    )


def make_read_pool(url: str, size: int) -> ReadPool:
    """Blocking connections for streamed scans, and nothing else (they do not sort)."""
    return ConnectionPool(
        url,
        kwargs=_kwargs(pooled=True, scans=True),
        min_size=1,
        max_size=size,
        timeout=POOL_TIMEOUT_S,
        # A scan's query starts after its response has begun: a connection broken by a
        # database restart would cut that response short.
        check=_check_sync,
        open=False,
        name="rqs-read",
    )


@contextmanager
def unavailable() -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
