"""PostgreSQL helpers for benchmarks: throwaway databases and the raw COPY rate."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from rqs.domain.events import parse_batch
from rqs.settings import Settings
from rqs.storage.postgres import PostgresStorage, binary_copy
from rqs.storage.postgres import sql as q

ADMIN_URL = os.environ.get("RQS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(tag: str) -> Iterator[str]:
    """A new empty database for one run, dropped afterwards."""
    name = f"rqs_bench_{tag}_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def raw_copy_rate(bodies: list[bytes], url: str) -> float:
    """The same rows COPYed (binary) straight into rqs' schema, one transaction per batch."""

    async def migrate() -> None:
        store = PostgresStorage(Settings(database_url=url))
        await store.open()
        await store.close()

    asyncio.run(migrate())
    batches = []
    idx = 1
    now = int(time.time() * 1_000_000)
    for body in bodies:
        parts = [binary_copy.HEADER]
        for e in parse_batch(body, "application/json", "d", 100_000):
            parts.append(binary_copy.event_head(1, idx, now))
            parts.append(binary_copy.event_tail(e, None))
            idx += 1
        parts.append(binary_copy.TRAILER)
        batches.append(b"".join(parts))
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        for data in batches:
            with conn.cursor() as cur, cur.copy(q.COPY_EVENTS) as copy:
                copy.write(data)
            conn.commit()
        elapsed = time.perf_counter() - t0
    return (idx - 1) / elapsed
