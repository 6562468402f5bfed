"""Design measurements behind docs/architecture.md, reproducible one by one.

    python -m bench.micro                 # both, writes its section of docs/benchmarks.md
    python -m bench.micro --only index    # SQLite: type runs against a per-row type index
    python -m bench.micro --only pg-json  # PostgreSQL: JSON built in SQL against in Python
    python -m bench.micro --only parse    # ingest parsing: the C splitter against Python

``index`` writes the same workload batches through the SQLite writer's own job
(``ingest.append_packed``: one savepoint per batch, four batches a commit, synchronous=FULL)
into the current schema, and into the same schema with the old ``events_by_type`` index put
back. ``pg-json`` reads 100,000 events of one type from a scratch database in pages of 5,000,
once as rows encoded by rqs' native page encoder and once with each event's JSON built by
PostgreSQL itself. ``parse`` parses the same batches of 1,000 Responsys payloads, sent as a
JSON array and as NDJSON, with ``rqs._speedups`` and without it (best of five passes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

import psycopg

from bench import workload
from bench.common import machine, write_section
from bench.pg_raw import scratch_database
from rqs.domain import events as domain_events
from rqs.domain.events import StoredEvent, parse_batch
from rqs.settings import Settings
from rqs.storage.postgres.store import PostgresStorage
from rqs.storage.sqlite import connection, ingest
from rqs.web import render

OLD_INDEX = "CREATE INDEX events_by_type ON events (type)"


def sqlite_rate(blobs: list[bytes], events: int, with_index: bool) -> float:
    folder = Path(tempfile.mkdtemp(prefix="rqs-micro-"))
    try:
        conn = connection.connect(folder / "rqs.db", "FULL")
        connection.upgrade(conn)
        if with_index:
            conn.execute(OLD_INDEX)
        t0 = time.perf_counter()
        for start in range(0, len(blobs), 4):
            conn.execute("BEGIN IMMEDIATE")
            for blob in blobs[start : start + 4]:
                conn.execute("SAVEPOINT job")
                ingest.append_packed(conn, "bench", blob)
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
        return events / elapsed
    finally:
        shutil.rmtree(folder)


def index_rows(events: int) -> list[str]:
    blobs = [ingest.pack(parse_batch(body, "application/json", "bench", 100_000))
             for body in workload.batches(events, 1_000)]
    rows = []
    for label, with_index in [("type runs (current)", False),
                              ("per-row `events_by_type` index (before 0200)", True)] * 2:
        rate = sqlite_rate(blobs, events, with_index)
        rows.append(f"| SQLite writer job, {events:,} events | {label} | {rate:,.0f} rows/s |")
    return rows


_TIME = """to_char(timestamp '1970-01-01' + e.received_at * interval '1 microsecond',
                  'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
_PAGE = """FROM events e WHERE e.domain_id = %s AND e.type = 'EMAIL_CLICKED' AND e.idx > %s
ORDER BY e.idx LIMIT 5000"""
ROWS_SQL = ("SELECT e.idx, e.type, e.channel, e.received_at, e.payload, e.ext_id, e.occurred_at "
            + _PAGE)
JSON_SQL = (
    "SELECT e.idx, convert_to('{\"index\":' || e.idx || ',\"id\":' "
    "|| to_json(coalesce(e.ext_id, 'rqs-bench-' || e.idx))::text"
    " || ',\"type\":' || to_json(e.type)::text || ',\"channel\":' || to_json(e.channel)::text"
    f" || ',\"received_at\":\"' || {_TIME} || '\",\"occurred_at\":null,\"payload\":', 'UTF8')"
    " || e.payload || '\\x7d'::bytea " + _PAGE)


def read_100k(conn: psycopg.Connection[tuple[object, ...]], domain_id: int,
              as_json: bool) -> tuple[float, int]:
    encode = render.json_page(render.TimeCache())
    after, count, size = 0, 0, 0
    t0 = time.perf_counter()
    while count < 100_000:
        rows = conn.execute(JSON_SQL if as_json else ROWS_SQL, (domain_id, after),
                            binary=True).fetchall()
        if not rows:
            break
        after, count = int(rows[-1][0]), count + len(rows)  # type: ignore[call-overload]
        if as_json:
            size += len(b",".join(r[1] for r in rows))  # type: ignore[misc]
        else:
            page = [StoredEvent("bench", *r) for r in rows]  # type: ignore[arg-type]
            size += len(encode(page).body)
    return time.perf_counter() - t0, size


def pg_json_rows(events: int) -> list[str]:
    with scratch_database("micro") as url:
        async def fill() -> None:
            store = PostgresStorage(Settings(database_url=url))
            await store.open()
            try:
                for body in workload.batches(events, 1_000):
                    await store.append("bench", parse_batch(body, "application/json", "bench",
                                                            100_000))
            finally:
                await store.close()

        asyncio.run(fill())
        rows = []
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute("SELECT id FROM domains WHERE name = 'bench'").fetchone()
            assert found is not None
            for _ in range(3):
                for label, as_json in [("rows, encoded in Python (current)", False),
                                       ("JSON built by PostgreSQL", True)]:
                    seconds, size = read_100k(conn, int(found[0]), as_json)
                    rows.append(f"| PostgreSQL read, 100,000 EMAIL_CLICKED in pages of 5,000 | "
                                f"{label} | {seconds:.3f} s ({size / 1e6:.1f} MB) |")
        return rows


def parse_rows(events: int) -> list[str]:
    arrays = workload.batches(events, 1_000)
    lines = [b"\n".join(json.dumps(e).encode() for e in json.loads(b)) for b in arrays]
    rows = []
    for label, bodies, media in [("JSON arrays", arrays, "application/json"),
                                 ("NDJSON", lines, "application/x-ndjson")]:
        for variant, native in [("C splitter (rqs._speedups)", domain_events.NATIVE),
                                ("Python (msgspec)", None)] * 2:
            best = float("inf")
            with patch.object(domain_events, "NATIVE", native):
                for _ in range(5):
                    t0 = time.perf_counter()
                    for body in bodies:
                        parse_batch(body, media, "bench", 100_000)
                    best = min(best, time.perf_counter() - t0)
            rows.append(f"| ingest parsing, {events:,} Responsys events in {label} of 1,000 | "
                        f"{variant} | {events / best:,.0f} events/s "
                        f"({best / events * 1e6:.2f} µs an event) |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", choices=["index", "pg-json", "parse"])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    rows: list[str] = []
    if args.only in (None, "index"):
        rows += index_rows(args.events)
    if args.only in (None, "pg-json"):
        rows += pg_json_rows(args.events)
    if args.only in (None, "parse"):
        rows += parse_rows(args.events)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    text = "\n".join([
        "## Design measurements (bench/micro.py)",
        "",
        f"Run `python -m bench.micro --events {args.events}` on {machine()}, load average at "
        f"the end {load}. Each alternative runs twice, interleaved, so drift shows.",
        "",
        "| what | variant | result |",
        "|---|---|---|",
        *rows,
    ])
    print(text)
    if not args.no_docs:
        write_section("micro", text)


if __name__ == "__main__":
    main()
