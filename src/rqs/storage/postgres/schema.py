"""Migrations and the daily partitions of ``events``."""

from __future__ import annotations

import logging
import re
import time
from datetime import date, timedelta
from importlib import resources

import psycopg
from psycopg import sql as pgsql

from rqs.storage.postgres import sql as q
from rqs.storage.postgres.connection import MIGRATION_LOCK, PARTITION_LOCK, Conn

log = logging.getLogger("rqs.storage.postgres")

MIGRATIONS_PACKAGE = "rqs.storage.postgres"
DAYS_AHEAD = 2  # partitions exist for today and this many days after
DDL_LOCK_TIMEOUT_MS = 5_000  # never queue behind a long lock holder for longer
EPOCH = date(1970, 1, 1)
_NAME = re.compile(r"^events_p(\d{8})$")


# --- migrations ----------------------------------------------------------------------


def available_migrations() -> list[tuple[str, str]]:
    folder = resources.files(MIGRATIONS_PACKAGE).joinpath("migrations")
    return sorted(
        (entry.name.removesuffix(".sql"), entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


async def applied_migrations(conn: Conn) -> set[str]:
    exists = await (await conn.execute(q.MIGRATIONS_TABLE_EXISTS)).fetchone()
    if not exists or not exists[0]:
        return set()
    return {row[0] for row in await (await conn.execute(q.APPLIED_MIGRATIONS)).fetchall()}


async def pending(conn: Conn) -> list[str]:
    done = await applied_migrations(conn)
    return [name for name, _ in available_migrations() if name not in done]


async def upgrade(conn: Conn) -> list[str]:
    """Apply every pending migration, each in its own transaction.

    A session advisory lock makes processes that start together take turns: the first
    applies, the others then find nothing pending.
    """
    await conn.execute(q.ADVISORY_LOCK, (MIGRATION_LOCK,))
    try:
        await conn.execute(q.CREATE_MIGRATIONS_TABLE)
        done = await applied_migrations(conn)
        applied: list[str] = []
        for name, text in available_migrations():
            if name in done:
                continue
            async with conn.transaction():
                # No parameters: psycopg sends the file as one simple query, so it may
                # hold several statements.
                await conn.execute(text.encode())
                await conn.execute(q.RECORD_MIGRATION, (name, int(time.time() * 1_000_000)))
            log.info("applied migration %s", name)
            applied.append(name)
        return applied
    finally:
        await conn.execute(q.ADVISORY_UNLOCK, (MIGRATION_LOCK,))


# --- partitions ------------------------------------------------------------------------


def day_of(received_at: int) -> int:
    """Days since 1970-01-01 (UTC): the partition an event lands in."""
    return received_at // q.DAY_US


def as_date(day: int) -> date:
    return EPOCH + timedelta(days=day)


def partition_name(day: int) -> str:
    return f"events_p{as_date(day):%Y%m%d}"


def parse_partition(name: str) -> int | None:
    m = _NAME.match(name)
    if m is None:
        return None
    d = date(int(m[1][:4]), int(m[1][4:6]), int(m[1][6:]))
    return (d - EPOCH).days


def days_ahead(now: int) -> list[int]:
    today = day_of(now)
    return list(range(today, today + DAYS_AHEAD + 1))


async def partitions(conn: Conn) -> dict[int, bool]:
    """Attached partitions: day -> whether an interrupted detach left it pending."""
    found: dict[int, bool] = {}
    for name, pending_detach in await (await conn.execute(q.PARTITIONS)).fetchall():
        day = parse_partition(name)
        if day is not None:
            found[day] = bool(pending_detach)
    return found


async def orphans(conn: Conn) -> list[str]:
    return [row[0] for row in await (await conn.execute(q.ORPHAN_PARTITIONS)).fetchall()]


async def ensure_partitions(conn: Conn, days: list[int]) -> set[int]:
    """Create the missing partitions among ``days``; returns every attached day.

    Runs on an autocommit connection outside any other transaction. An advisory lock
    keeps two processes from creating the same partition at once.
    """
    existing = set(await partitions(conn))
    if all(d in existing for d in days):
        return existing
    async with conn.transaction():
        await conn.execute(q.SET_LOCK_TIMEOUT.format(ms=DDL_LOCK_TIMEOUT_MS).encode())
        await conn.execute(q.ADVISORY_XACT_LOCK, (PARTITION_LOCK,))
        existing = set(await partitions(conn))
        for day in days:
            if day in existing:
                continue
            name = pgsql.Identifier(partition_name(day))
            await conn.execute(pgsql.SQL(q.CREATE_PARTITION_TABLE).format(name=name))
            await conn.execute(
                pgsql.SQL(q.ATTACH_PARTITION).format(
                    name=name,
                    lo=pgsql.Literal(day * q.DAY_US),
                    hi=pgsql.Literal((day + 1) * q.DAY_US),
                )
            )
            log.info("created partition %s", partition_name(day))
            existing.add(day)
    return existing


async def detach_and_drop(conn: Conn, day: int, pending_detach: bool) -> None:
    """Remove one partition without blocking other sessions (autocommit connection).

    DETACH ... CONCURRENTLY waits for transactions using ``events`` to finish instead of
    locking them out; an interrupted one leaves the partition "pending", finished with
    FINALIZE.
    """
    name = pgsql.Identifier(partition_name(day))
    if pending_detach:
        await conn.execute(pgsql.SQL(q.FINALIZE_DETACH).format(name=name))
    else:
        try:
            await conn.execute(pgsql.SQL(q.DETACH_PARTITION).format(name=name))
        except psycopg.errors.ObjectNotInPrerequisiteState:
            # Another purger started detaching it meanwhile, or was interrupted.
            await conn.execute(pgsql.SQL(q.FINALIZE_DETACH).format(name=name))
    await drop_table(conn, partition_name(day))


async def drop_table(conn: Conn, name: str) -> None:
    await conn.execute(pgsql.SQL(q.DROP_TABLE).format(name=pgsql.Identifier(name)))
    log.info("dropped partition %s", name)
