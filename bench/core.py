"""Core benchmark: HTTP ingest and 100,000-event retrievals on the embedded SQLite store.

    python bench/core.py                 # defaults: 400,000 events, batches of 1,000 and 10,000
    python bench/core.py --events 1000000 --clients 4

Prints events/s, per-request p50/p99 and the server's memory, next to the raw SQLite insert
rate of the same rows in the same run, and writes them to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import msgspec

from bench import workload
from bench.common import descendants, machine, percentile, start_server, tree_kb, write_section
from rqs.domain.events import parse_batch
from rqs.storage.sqlite import connection, ingest

POLL_ALL = "/api/rest/v19/async/pollByType?type=allMessages&limit=100000"


async def post_all(
    url: str, auth: str, bodies: list[bytes], clients: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(reversed(bodies))
    headers = {"authorization": auth, "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                t0 = time.perf_counter()
                async with session.post(url + "/v1/events", data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"ingest answered {r.status}: {await r.text()}")
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - t0, latencies


def raw_rows(bodies: list[bytes]) -> list[list[tuple[object, ...]]]:
    """Rows exactly as the store writes them (storage.sqlite.ingest): pos, received_at,
    fields; one list per request body."""
    batches = []
    idx = 1
    base = 1 << 40
    for body in bodies:
        events = parse_batch(body, "application/json", "d", 100_000)
        batches.append([(base + idx + i, 1, *msgspec.structs.astuple(e))
                        for i, e in enumerate(events)])
        idx += len(events)
    return batches


def raw_sqlite_rate(batches: list[list[tuple[object, ...]]], path: Path,
                    synchronous: str) -> float:
    """The same rows inserted straight through apsw: same schema, pragmas, one txn a batch."""
    conn = connection.connect(path, synchronous)
    connection.upgrade(conn)
    sql = ingest.insert_sql(1)
    t0 = time.perf_counter()
    for rows in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return sum(map(len, batches)) / elapsed


async def fresh_reader(url: str, auth: str) -> str:
    """A new read key: pollByType moves a per-key cursor, so each timing needs its own."""
    body = {"name": "bench-reader", "scope": "read"}
    async with aiohttp.ClientSession() as session, session.post(
        url + "/v1/keys", json=body, headers={"authorization": auth}
    ) as r:
        key = await r.json()
    return "Basic " + base64.b64encode(f"{key['id']}:{key['secret']}".encode()).decode()


async def pollable_on_return(url: str, auth: str, body: bytes, checks: int) -> int:
    """Ingest, then read the last index at once: how often is it already there?"""
    ok = 0
    headers = {"authorization": auth, "content-type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for _ in range(checks):
            async with session.post(url + "/v1/events", data=body, headers=headers) as r:
                last = (await r.json())["last_index"]
            async with session.get(f"{url}/v1/events/{last}", headers=headers) as r:
                ok += r.status == 200
    return ok


async def timed_get(url: str, auth: str, path: str, accept: str) -> tuple[float, int, int]:
    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        async with session.get(url + path, headers={"authorization": auth, "accept": accept}) as r:
            size = 0
            async for part in r.content.iter_chunked(1 << 20):
                size += len(part)
            return time.perf_counter() - t0, r.status, size


def ingest_rows(args: argparse.Namespace, url: str, auth: str, tmp: Path) -> list[str]:
    """Table rows for HTTP ingest: each batch size with each client count."""
    rows: list[str] = []
    sizes = [int(s) for s in args.batch.split(",")]
    client_counts = [int(c) for c in args.clients.split(",")]
    for size in sizes:
        bodies = workload.batches(args.events, size, seed=size)
        if args.postgres:
            from bench.pg_raw import raw_copy_rate, scratch_database

            def raw_rate(k: int, bodies: list[bytes] = bodies, size: int = size
                         ) -> float:
                with scratch_database(f"raw{size}_{k}") as raw_url:
                    return raw_copy_rate(bodies, raw_url)

            raw_label = "raw binary COPY of the same rows"
        else:
            prepared = raw_rows(bodies)

            def raw_rate(k: int, prepared: list[list[tuple[object, ...]]] = prepared,
                         size: int = size) -> float:
                return raw_sqlite_rate(prepared, tmp / f"raw-{size}-{k}.db",
                                       "FULL")

            raw_label = "raw SQLite insert of the same rows"
        # The machine's speed drifts within seconds (other tenants): each HTTP run
        # is bracketed by raw runs, and compared with their mean.
        before = raw_rate(0)
        for k, clients in enumerate(client_counts, start=1):
            elapsed, lat = asyncio.run(post_all(url, auth, bodies, clients))
            after = raw_rate(k)
            raw = (before + after) / 2
            rate = args.events / elapsed
            rows.append(f"| HTTP ingest, batches of {size:,} ({clients} clients) | "
                        f"{rate:,.0f} events/s | p50 {percentile(lat, 50) * 1e3:.1f} "
                        f"ms, p99 {percentile(lat, 99) * 1e3:.1f} ms per request | "
                        f"{raw_label}, just before and after: {before:,.0f} and "
                        f"{after:,.0f} rows/s; ratio to their mean "
                        f"{rate / raw:.2f} |")
            before = after
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=400_000, help="events per batch size")
    ap.add_argument("--batch", default="1000,10000", help="batch sizes, comma-separated")
    ap.add_argument("--clients", default="4,8",
                    help="concurrent ingest clients, comma-separated: a run for each")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--postgres", action="store_true",
                    help="run rqs on PostgreSQL (a scratch database; RQS_BENCH_PG admin URL)")
    ap.add_argument("--workers", type=int, default=2, help="server processes with --postgres")
    args = ap.parse_args()
    rows: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rqs-bench-") as tmp, ExitStack() as stack:
        data = Path(tmp) / "data"
        extra: list[str] = []
        if args.postgres:
            from bench.pg_raw import scratch_database

            url = stack.enter_context(scratch_database("core"))
            extra = [f"--database-url={url}", "--workers", str(args.workers)]
        server = start_server(data, *extra)
        auth = "Basic " + base64.b64encode(f"{server.key_id}:{server.secret}".encode()).decode()
        try:
            rows.extend(ingest_rows(args, server.url, auth, Path(tmp)))
            rss_before = tree_kb(server.pid, "VmRSS")
            whole_run_peak = tree_kb(server.pid)
            try:  # reset the peaks, so the growth below is the retrievals' own
                for pid in [server.pid, *descendants(server.pid)]:
                    Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                notes.append("could not reset VmHWM; retrieval growth includes ingest's peak")
            for label, path, accept in [
                ("GET /v1/events?limit=100000 (JSON)", "/v1/events?limit=100000",
                 "application/json"),
                ("GET /v1/events?limit=100000 (NDJSON)", "/v1/events?limit=100000",
                 "application/x-ndjson"),
                ("GET /v1/events?type=EMAIL_CLICKED&limit=100000 (JSON, one type)",
                 "/v1/events?type=EMAIL_CLICKED&limit=100000", "application/json"),
                ("pollByType allMessages, limit 100000 (JSON)", POLL_ALL, "application/json"),
                ("pollByType allMessages, limit 100000 (XML)", POLL_ALL, "application/xml"),
                ("pollByType linkClick, limit 100000 (JSON)",
                 "/api/rest/v19/async/pollByType?type=linkClick&limit=100000", "application/json"),
            ]:
                times = []
                for _ in range(3):
                    who = auth
                    if "pollByType" in path:
                        who = asyncio.run(fresh_reader(server.url, auth))
                    t, status, size = asyncio.run(timed_get(server.url, who, path, accept))
                    if status != 200:
                        notes.append(f"{label}: HTTP {status}")
                        break
                    times.append(t)
                if times:
                    rows.append(f"| {label} | {min(times):.3f} s best of {len(times)} "
                                f"(median {percentile(times, 50):.3f} s) | "
                                f"{size / 1e6:.1f} MB body | |")
            checks = 200
            ok = asyncio.run(pollable_on_return(server.url, auth, workload.batches(100, 100)[0],
                                                checks))
            notes.append(f"pollable on return: {ok} of {checks} ingest calls had their last "
                         f"event readable by the very next request")
            peak = tree_kb(server.pid)
            notes.append(f"server RSS (all its processes) before the retrievals "
                         f"{rss_before / 1024:.0f} MiB, peak during them {peak / 1024:.0f} MiB: "
                         f"growth {(peak - rss_before) / 1024:.0f} MiB")
            notes.append(f"peak RSS during ingest, summed over the server's processes: "
                         f"{whole_run_peak / 1024:.0f} MiB")
        finally:
            server.stop()
    table = "\n".join(["| what | result | latency | note |", "|---|---|---|---|", *rows])
    backend = (f"PostgreSQL, `--workers {args.workers}`" if args.postgres
               else "SQLite, `synchronous=FULL`")
    flags = f" --postgres --workers {args.workers}" if args.postgres else ""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = (f"## Core: ingest and retrieval ({backend})\n\n"
            f"Run `python -m bench.core --events {args.events} --batch {args.batch} "
            f"--clients {args.clients}{flags}` on {machine()}, load average at the end {load}; "
            f"every 2xx is durable (committed and synced). "
            f"Events are Responsys-shaped, ~500 bytes (bench/workload.py). Server and load "
            f"generator share the machine.\n\n{table}\n\n" + "\n".join(f"- {n}" for n in notes))
    print(text)
    if not args.no_docs:
        write_section("core-postgres" if args.postgres else "core", text)


if __name__ == "__main__":
    main()
