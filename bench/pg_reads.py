"""rqs on PostgreSQL: the reads that follow a bulk ingest, page by page, with the buffer
traffic of the first one.

    python -m bench.pg_reads [--events 1000000] [--no-docs]

One rqs server on a scratch database takes the peers workload (bench/workload.py: the 26
Responsys types in their mix, batches of 1,000 from 4 clients), then reads, each over
HTTP in requests of 10,000 events:

* ``type``: 100,000 EMAIL_CLICKED from the start, right after the ingest (the first read
  of those pages), with the shared-buffer allocations and the writes of dirty buffers by
  backends during it (``pg_stat_bgwriter``);
* ``type again``: the same read once more;
* ``group``: Mapp ``pollByType?type=linkClick`` (a poll group of three types) through a
  server-managed cursor, 100,000 events;
* ``range``: 150,000 events of every type from the middle of the store;
* ``tail``: every event after the middle.

Each line gives events/s, the time of the first request and the median of the others:
the first request of a read after an ingest is the one that meets cold buffers.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import machine, psql, start_server, write_section
from bench.peers import build_plan, run
from bench.peers_stores import TYPE, Op, Rqs, timed_get
from bench.pg_raw import scratch_database

PAGE = 10_000


@dataclass
class Read:
    name: str
    op: Op
    note: str = ""

    def line(self) -> str:
        lat, n = self.op.lat, self.op.events
        rest = f"{statistics.median(lat[1:]) * 1000:.1f} ms" if len(lat) > 1 else "-"
        return (f"| {self.name} | {n:,} | {n / sum(lat):,.0f} | {lat[0] * 1000:.1f} ms | "
                f"{rest} | {self.note} |")


async def mapp_group(rqs: Rqs, want: int) -> Op:
    """Mapp pollByType of linkClick through a server cursor, until ``want`` or none left."""
    op = Op()
    async with aiohttp.ClientSession() as session:
        async with session.post(rqs.url + "/v1/keys", json={"name": "reads", "scope": "read"},
                                headers=rqs.headers) as r:
            key = await r.json()
        secret = base64.b64encode(f"{key['id']}:{key['secret']}".encode()).decode()
        auth = {"authorization": "Basic " + secret}
        url = rqs.url + f"/api/rest/v19/async/pollByType?type=linkClick&limit={PAGE}"
        while op.events < want:
            got = (await timed_get(session, op, url, auth)).count(b'{"queueId":')
            if not got:
                op.lat.pop()  # the empty poll that tells the end
                break
            op.events += got
    return op


def buffers() -> tuple[int, int]:
    """Shared buffers allocated, and dirty buffers written by backends, so far."""
    alloc, backend = psql("SELECT buffers_alloc, buffers_backend FROM pg_stat_bgwriter"
                          ).split("|")
    return int(alloc), int(backend)


async def reads(rqs: Rqs, n: int, type_read: int) -> list[Read]:
    alloc0, written0 = buffers()
    first = Read("type (first read)", await rqs.pages({"type": TYPE}, 0, type_read, PAGE))
    alloc1, written1 = buffers()
    first.note = (f"{alloc1 - alloc0:,} buffers allocated, {written1 - written0:,} dirty "
                  f"ones written by backends")
    return [first,
            Read("type again", await rqs.pages({"type": TYPE}, 0, type_read, PAGE)),
            Read("group (pollByType linkClick)", await mapp_group(rqs, type_read)),
            Read("range (150,000 from the middle)",
                 await rqs.pages({}, n * 425 // 1000, 150_000, PAGE)),
            Read("tail (after the middle)", await rqs.pages({}, n // 2, None, PAGE))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    plan = build_plan(args.events, 1000, 4, PAGE, 100_000)
    with tempfile.TemporaryDirectory(prefix="rqs-pg-reads-") as tmp, \
            scratch_database("reads") as url:
        server = start_server(Path(tmp) / "data", f"--database-url={url}")
        try:
            rqs = Rqs(server.url, server.token)
            ingested = run(rqs.ingest(plan)).op
            results: list[Read] = run(reads(rqs, plan.n, plan.type_read))
        finally:
            server.stop()
    table = "\n".join([
        "| read | events | events/s | first request | median of the others | note |",
        "|---|---:|---:|---:|---:|---|",
        *(r.line() for r in results)])
    settings = psql("SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM "
                    "pg_settings WHERE name IN ('shared_buffers', 'bgwriter_lru_maxpages', "
                    "'autovacuum', 'server_version')")
    md = (f"## PostgreSQL reads after a bulk ingest (bench/pg_reads.py)\n\n"
          f"Run `python -m bench.pg_reads --events {args.events}` on {machine()}: "
          f"{args.events:,} events ingested at {ingested.rate:,.0f} events/s, then read in "
          f"requests of {PAGE:,} (shared_buffers in 8 kB pages; {settings}).\n\n{table}\n")
    print(md)
    if not args.no_docs:
        write_section("pg-reads", md)


if __name__ == "__main__":
    main()
