"""Scan rows read from libpq's results in C (storage/postgres/raw_rows.py, pgrows.c).

Each test compares with what psycopg's own rows give for the same query, or checks that
the connection is idle and usable after the stream ends in a way other than reading it
to the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from rqs.domain import selectors
from rqs.domain.events import NewEvent, StoredEvent
from rqs.settings import Settings
from rqs.speedups import NATIVE
from rqs.storage.base import EventQuery
from rqs.storage.postgres import PostgresStorage, raw_rows
from rqs.storage.postgres.sql import EVENT_COLUMNS

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(NATIVE is None, reason="the C extension was not built"),
]

# The scan's columns over a table of any rows (same names and types as events).
ROWS = f"""
SELECT {EVENT_COLUMNS} FROM (VALUES {{values}}) AS e(idx, type, channel, received_at, payload,
                                                      ext_id, occurred_at)
ORDER BY e.idx
"""

# 100,000,000 rows of the scan's columns, streamed (one generate_series of them all would be
# built in full before its first row).
ENDLESS = b"SELECT " + EVENT_COLUMNS.encode() + b""" FROM (
    SELECT a * 100000 + b AS idx, 'T'::text AS type, 'Email'::text AS channel,
           b AS received_at, '\\x7b7d'::bytea AS payload, NULL::text AS ext_id,
           NULL::bigint AS occurred_at
    FROM generate_series(0::bigint, 999) a, generate_series(1::bigint, 100000) b) e"""


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


def test_it_is_in_use_here() -> None:
    """CI runs on Linux with psycopg's wheel: the fast path must be the one measured."""
    assert raw_rows.available()


def _values(n: int) -> str:
    rows = []
    for i in range(1, n + 1):
        ext = "NULL::text" if i % 3 else f"'ext-{i}-é'"
        occurred = "NULL::bigint" if i % 4 else str(-(10**15) + i)
        # 40 distinct types: more than the C code's memo of recent strings holds
        rows.append(f"({i}::bigint, 'TYPE_{i % 40}'::text, 'Channël{i % 3}'::text,"
                    f" {1_700_000_000_000_000 + i // 7}::bigint,"
                    f" convert_to('{{\"n\": {i}, \"s\": \"ü\"}}', 'UTF8'), {ext}, {occurred})")
    return ",".join(rows)


def _psycopg_rows(conn: psycopg.Connection[Any], query: str, domain: str) -> list[StoredEvent]:
    cur = conn.cursor(binary=True)
    return [StoredEvent(domain, *r) for r in cur.execute(query)]


def test_events_equal_psycopgs_rows(conn: psycopg.Connection[Any]) -> None:
    query = ROWS.format(values=_values(2_345))
    got = [e for page in raw_rows.stream(conn, query.encode(), {}, "acme", 1_000)
           for e in page]
    assert got == _psycopg_rows(conn, query, "acme")
    assert len(got) == 2_345
    assert {e.ext_id is None for e in got} == {True, False}
    assert {e.occurred_at is None for e in got} == {True, False}


def test_rows_come_in_chunks_of_the_size_asked(conn: psycopg.Connection[Any]) -> None:
    query = ROWS.format(values=_values(2_345))
    sizes = [len(page) for page in raw_rows.stream(conn, query.encode(), {}, "acme", 1_000)]
    assert sizes == [1_000, 1_000, 345]


def test_values_are_merged_as_psycopg_quotes_them(conn: psycopg.Connection[Any]) -> None:
    query = ROWS.format(values=_values(50)) .replace("ORDER BY", "WHERE e.channel <> %(odd)s"
                                                     " AND e.idx > %(after)s ORDER BY")
    params = {"odd": "it's \\ 'quoted'", "after": 10}
    got = [e for page in raw_rows.stream(conn, query.encode(), params, "acme", 7) for e in page]
    cur = conn.cursor(binary=True)
    assert got == [StoredEvent("acme", *r) for r in cur.execute(query, params)]
    assert [e.index for e in got] == list(range(11, 51))


def test_no_rows(conn: psycopg.Connection[Any]) -> None:
    query = ROWS.format(values=_values(3)).replace("ORDER BY", "WHERE false ORDER BY")
    assert list(raw_rows.stream(conn, query.encode(), {}, "acme", 1_000)) == []
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stopping_early_leaves_the_connection_idle(conn: psycopg.Connection[Any]) -> None:
    pages = raw_rows.stream(conn, ENDLESS, {}, "acme", 100)
    assert len(next(pages)) == 100
    pages.close()  # the caller went away: the query is cancelled, not read to its end
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_failing_query_raises_psycopgs_error(conn: psycopg.Connection[Any]) -> None:
    query = ROWS.format(values=_values(3)).replace("e.idx,", "e.idx / (e.idx - 2),", 1)
    with pytest.raises(psycopg.errors.DivisionByZero, match="division by zero"):
        list(raw_rows.stream(conn, query.encode(), {}, "acme", 1))
    assert conn.execute("SELECT 3").fetchone() == (3,)


@pytest.mark.parametrize(("first", "second", "message"), [
    (b"1::int4", b"'a'::text", "column 0 is type 23"),  # not the scan's columns
    (b"1::int8", b"NULL::text", "column 1 is NULL"),  # a NULL where there may be none
])
def test_rows_other_than_the_scans_are_refused(conn: psycopg.Connection[Any], first: bytes,
                                               second: bytes, message: str) -> None:
    query = b"SELECT " + first + b", " + second + b", 'b'::text, 2::int8, '\\x00'::bytea," \
            b" NULL::text, NULL::int8"
    with pytest.raises(ValueError, match=message):
        list(raw_rows.stream(conn, query, {}, "acme", 10))
    assert conn.execute("SELECT 4").fetchone() == (4,)


def test_a_dead_connection_raises_operational_error(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as victim, \
            psycopg.connect(pg_url, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            list(raw_rows.stream(victim, ROWS.format(values=_values(3)).encode(), {}, "a", 10))


def test_notices_reach_psycopgs_handler(conn: psycopg.Connection[Any]) -> None:
    """libpq calls the notice handler from inside pg_fetch, which has let go of the GIL:
    psycopg's handler takes it back itself."""
    heard: list[str] = []
    conn.add_notice_handler(lambda d: heard.append(str(d.message_primary)))
    conn.execute("""CREATE FUNCTION pg_temp.noisy(i bigint) RETURNS bool LANGUAGE plpgsql
                    AS $$ BEGIN RAISE NOTICE 'row %', i; RETURN true; END $$""")
    query = ROWS.format(values=_values(30)).replace("ORDER BY", "WHERE pg_temp.noisy(e.idx)"
                                                                " ORDER BY")
    got = [e for page in raw_rows.stream(conn, query.encode(), {}, "acme", 7) for e in page]
    assert [e.index for e in got] == list(range(1, 31))
    assert sorted(heard) == sorted(f"row {i}" for i in range(1, 31))


def test_an_unknown_sqlstate_is_still_a_database_error() -> None:
    err = raw_rows._error(b"ZZ999", b"ERROR:  something new\n")
    assert type(err) is psycopg.DatabaseError and str(err) == "ERROR:  something new"
    assert isinstance(raw_rows._error(None, b""), psycopg.OperationalError)


def test_a_query_that_is_not_rows_closes_the_connection(conn: psycopg.Connection[Any]) -> None:
    """Nothing a scan sends gives a COPY, but if it did, the stream must not wait for a
    COPY's results to end (they never do): it fails, and the connection is closed for the
    pool to replace."""
    with pytest.raises(psycopg.OperationalError, match="unexpected result status"):
        list(raw_rows.stream(conn, b"COPY (SELECT 1) TO STDOUT", {}, "acme", 10))
    assert conn.closed


def test_the_server_going_away_mid_stream(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as victim, \
            psycopg.connect(pg_url, autocommit=True) as killer:
        pages = raw_rows.stream(victim, ENDLESS, {}, "acme", 100)
        assert len(next(pages)) == 100
        killer.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            for _ in pages:
                pass
        assert victim.closed or victim.pgconn.status == psycopg.pq.ConnStatus.BAD


def test_connections_in_another_encoding_are_read_through_psycopg(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True, client_encoding="LATIN1") as latin:
        assert not raw_rows.usable(latin)
    with psycopg.connect(pg_url, autocommit=True) as utf8:
        assert raw_rows.usable(utf8)


@pytest.mark.parametrize("fast", [True, False], ids=["c-rows", "psycopg-rows"])
async def test_store_scans_read_alike_either_way(pg_url: str, fast: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's streamed scans give the same events through both row paths, also when
    the environment asks libpq for another client encoding (rqs' connections ask for
    UTF-8: with LATIN1, binary COPY stored non-ASCII text as mojibake)."""
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    if not fast:
        monkeypatch.setattr(raw_rows, "usable", lambda conn: False)
    store = PostgresStorage(Settings(database_url=pg_url, pool_size=2))
    await store.open()
    try:
        new = [NewEvent(f"TYPÉ_{i % 3}", "Email", f'{{"n":{i},"s":"ü"}}'.encode(),
                        ext_id=f"idé-{i}" if i % 2 else None,
                        occurred_at=1_700_000_000_000_000 + i if i % 5 else None)
               for i in range(3_000)]
        await store.append("acme", new)
        every = [e async for page in store.scan("acme", EventQuery(limit=5_000)) for e in page]
        one = selectors.for_filters(["TYPÉ_1"])
        ones = [e async for page in store.scan("acme", EventQuery(selector=one, limit=5_000))
                for e in page]
    finally:
        await store.close()
    assert [(e.index, e.type, e.payload, e.ext_id, e.occurred_at) for e in every] == [
        (i + 1, n.type, n.payload, n.ext_id, n.occurred_at) for i, n in enumerate(new)]
    assert [e.index for e in ones] == list(range(2, 3_001, 3))
