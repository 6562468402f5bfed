"""Scan rows read from libpq's results in C, without psycopg's object per value.

A streamed scan (``scan.Reader.stream``) is the PostgreSQL store's hot read. Through
psycopg each row became a tuple of seven Python values and then a StoredEvent; here the
query is sent over the connection's own libpq handle (``Connection.pgconn``, psycopg's
documented low-level interface) in chunked-rows mode, and each chunk's PGresult is turned
into StoredEvents by ``rqs._speedups.pg_fetch``, which also waits for and reads each
chunk without holding the GIL (a notice arriving meanwhile reaches psycopg's handler,
which takes the GIL itself). The query's values are merged in by psycopg
(``ClientCursor.mogrify``), so it quotes them exactly as it would send them.

The C code reads results with the functions of the libpq that psycopg loaded, found in
the process's memory map (Linux). Where that cannot be done (another system, more than one
libpq loaded, no C extension) ``available()`` is False and the store reads through
psycopg as before.
"""

from __future__ import annotations

import ctypes
import select
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from rqs.domain.events import StoredEvent
from rqs.speedups import NATIVE

_FUNCTIONS = ("PQntuples", "PQnfields", "PQftype", "PQfformat", "PQgetvalue", "PQgetlength",
              "PQgetisnull", "PQconsumeInput", "PQisBusy", "PQgetResult", "PQclear",
              "PQresultStatus", "PQresultErrorField", "PQresultErrorMessage", "PQerrorMessage",
              "PQsocket")


def _loaded_libpq() -> str | None:
    """The one libpq file mapped into this process (psycopg's), or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    found = set()
    for line in maps.splitlines():
        fields = line.split(None, 5)  # address, perms, offset, device, inode, path
        if len(fields) == 6 and Path(fields[5]).name.startswith("libpq"):
            found.add(fields[5])
    return found.pop() if len(found) == 1 else None


def _bind() -> bool:
    if NATIVE is None or not hasattr(pq.PGconn, "pgconn_ptr"):
        return False
    if pq.version() < 170000:  # (loads psycopg's libpq) chunked rows came with libpq 17
        return False
    path = _loaded_libpq()
    if path is None:
        return False
    try:
        lib = ctypes.CDLL(path)  # the same handle: the library is loaded already
        addresses = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
                     for name in _FUNCTIONS]
    except (OSError, AttributeError):
        return False
    NATIVE.bind_libpq(addresses)
    return True


_BOUND = _bind()


def available() -> bool:
    return _BOUND


def usable(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``stream`` can read this connection: the C code takes text as UTF-8 (rqs'
    connections ask for it, see ``connection._kwargs``)."""
    return _BOUND and conn.info.encoding == "utf-8"


def stream(conn: psycopg.Connection[Any], query: bytes, params: dict[str, Any], domain: str,
           chunk: int) -> Iterator[list[StoredEvent]]:
    """The rows of ``query`` as StoredEvents, in lists of up to ``chunk`` as libpq hands
    them over. Blocking (for a thread of its own); the connection must be ``usable``,
    idle and in autocommit, and is idle again when this ends, however it ends."""
    assert NATIVE is not None and usable(conn)
    sql = psycopg.ClientCursor(conn).mogrify(query, params).encode()
    pgconn = conn.pgconn
    # Every psycopg implementation has it; its typing Protocol does not list it.
    address: int = pgconn.pgconn_ptr  # type: ignore[attr-defined]
    done = False
    try:
        pgconn.send_query_params(sql, None, result_format=pq.Format.BINARY)
        pgconn.set_chunked_rows_mode(chunk)
        _flush(pgconn)
        while (got := NATIVE.pg_fetch(address, domain, StoredEvent)) is not None:
            if isinstance(got, tuple):
                raise _error(*got)
            if got:
                yield got
        done = True
    finally:
        if not done:
            _abandon(conn)


def _wait(pgconn: pq.abc.PGconn, events: int) -> None:
    poller = select.poll()
    poller.register(pgconn.socket, events)
    poller.poll()


def _flush(pgconn: pq.abc.PGconn) -> None:
    while pgconn.flush():
        _wait(pgconn, select.POLLOUT | select.POLLIN)
        pgconn.consume_input()


def _result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    """The next result of the query, waiting for it without holding the GIL."""
    pgconn.consume_input()
    while pgconn.is_busy():
        _wait(pgconn, select.POLLIN)
        pgconn.consume_input()
    return pgconn.get_result()


def _error(state: bytes | None, message: bytes) -> psycopg.Error:
    text = message.decode("utf-8", "replace").strip() or "the scan failed"
    kind: type[psycopg.Error] = psycopg.OperationalError
    if state:
        try:
            kind = psycopg.errors.lookup(state.decode())
        except KeyError:  # a SQLSTATE this psycopg does not know
            kind = psycopg.DatabaseError
    return kind(text)


def _abandon(conn: psycopg.Connection[Any]) -> None:
    """Stop a query the caller no longer wants (or that failed) and read what is left, so
    the connection is idle for its next user; close it if it will not get there."""
    pgconn = conn.pgconn
    if pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
        with suppress(psycopg.Error):
            conn.cancel_safe(timeout=5.0)
    with suppress(psycopg.Error, OSError):
        for _ in range(_MAX_LEFT):
            res = _result(pgconn)
            if res is None:
                return
            if res.status in _COPY:  # a COPY never ends by reading results
                break
    conn.close()  # the pool discards it


_MAX_LEFT = 100_000  # results a cancelled query may still deliver (chunks, then its end)
_COPY = (pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH)
