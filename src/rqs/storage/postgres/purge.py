"""Retention: drop expired day partitions whole, delete the straddling rest in batches.

One step, in order:

1. Every partition whose day ended before the cutoff expires whole. Its accounting is
   done first, in one short transaction (``purged_through`` of every domain, retained
   counts from ``day_counts``); then it is detached CONCURRENTLY and dropped, which
   neither deletes rows nor blocks ingest or polls. Between the two, reads already
   treat it as gone (they start after ``purged_through``), and an interrupted detach
   or drop is finished by the next step. The accounting is idempotent: the day's
   ``day_counts`` are deleted as they are subtracted.
2. Only when no expired partition is left: events of the partition that straddles
   the cutoff are deleted oldest first, at most ``max_rows`` per step, like SQLite, so
   retention is as exact as there. Without this a day-sized partition would keep up
   to a day of events past their retention.
3. Ids and commits of purged events are tidied in bounded batches. They are harmless
   until then: lookups ignore anything at or below ``purged_through``.

Only one process purges at a time (a try-lock; the others' steps return 0).
"""

from __future__ import annotations

import logging
from collections import Counter

import psycopg

from rqs.storage.postgres import schema
from rqs.storage.postgres import sql as q
from rqs.storage.postgres.connection import PURGE_LOCK, Conn

log = logging.getLogger("rqs.storage.postgres")

DETACH_LOCK_TIMEOUT_MS = 10_000


async def purge_step(conn: Conn, cutoff: int, max_rows: int, now: int) -> int:
    """Remove events received before ``cutoff``; returns how many went.

    A dropped partition counts whole, so the result may exceed ``max_rows``; rows
    deleted one by one never do.
    """
    # Nothing can be received before now any more; a later cutoff would let a partition
    # that still takes appends count as expired.
    cutoff = min(cutoff, now)
    locked = await (await conn.execute(q.TRY_ADVISORY_LOCK, (PURGE_LOCK,))).fetchone()
    if not locked or not locked[0]:
        return 0
    try:
        await ensure_ahead(conn, now)
        removed, blocked = await _expire_partitions(conn, cutoff)
        if not blocked:
            removed += await _delete_before(conn, cutoff, max_rows)
        await _tidy(conn, max_rows)
        return removed
    finally:
        await conn.execute(q.ADVISORY_UNLOCK, (PURGE_LOCK,))


async def ensure_ahead(conn: Conn, now: int) -> set[int] | None:
    """Create today's and the next days' partitions; None if the DDL had to give up."""
    try:
        return await schema.ensure_partitions(conn, schema.days_ahead(now))
    except psycopg.errors.LockNotAvailable as exc:
        log.warning("creating partitions ahead timed out, will retry: %s", exc)
        return None


async def _expire_partitions(conn: Conn, cutoff: int) -> tuple[int, bool]:
    """Drop every partition older than the cutoff; (events removed, whether one is left)."""
    for name in await schema.orphans(conn):
        await schema.drop_table(conn, name)
    removed = 0
    attached = await schema.partitions(conn)
    for day in sorted(attached):
        if (day + 1) * q.DAY_US > cutoff:
            break
        removed += await _account_expired_day(conn, day)
        await conn.execute(q.SET_SESSION_LOCK_TIMEOUT.format(ms=DETACH_LOCK_TIMEOUT_MS).encode())
        try:
            await schema.detach_and_drop(conn, day, attached[day])
        except psycopg.errors.LockNotAvailable as exc:
            log.warning("dropping %s timed out, will retry: %s", schema.partition_name(day), exc)
            return removed, True
        finally:
            await conn.execute(q.RESET_LOCK_TIMEOUT)
    return removed, False


async def _account_expired_day(conn: Conn, day: int) -> int:
    async with conn.transaction():
        await conn.execute(q.LOCK_ALL_DOMAINS)
        await conn.execute(q.EXPIRE_DOMAINS, ((day + 1) * q.DAY_US,))
        cur = await conn.execute(q.EXPIRE_DAY_COUNTS, (schema.as_date(day),))
        return sum(row[0] for row in await cur.fetchall())


async def _delete_before(conn: Conn, cutoff: int, budget: int) -> int:
    removed = 0
    horizons = await (await conn.execute(q.HORIZONS, (cutoff,))).fetchall()
    for domain_id, horizon in horizons:
        if removed >= budget:
            break
        async with conn.transaction():
            row = await (await conn.execute(q.LOCK_DOMAIN_BY_ID, (domain_id,))).fetchone()
            assert row is not None
            purged = row[0]
            upto = min(horizon, purged + budget - removed)
            if upto <= purged:
                continue
            params = {"domain_id": domain_id, "lo": purged, "hi": upto, "cutoff": cutoff}
            gone = await (await conn.execute(q.DELETE_EVENTS, params)).fetchall()
            by_type: Counter[tuple[str, str]] = Counter()
            cur = conn.cursor()
            for type_name, channel, _day, n in gone:
                by_type[(type_name, channel)] += n
            await cur.executemany(q.DROP_TYPE_COUNT, [
                (n, domain_id, t, c) for (t, c), n in sorted(by_type.items())])
            await cur.executemany(q.DROP_DAY_COUNT, [
                (n, schema.as_date(day), domain_id, t, c) for t, c, day, n in gone])
            await conn.execute(q.SET_PURGED, (upto, domain_id))
            removed += sum(by_type.values())
    return removed


async def _tidy(conn: Conn, budget: int) -> None:
    """Delete ids and commits of purged events, at most ``budget`` rows of each."""
    for domain_id, tidied, purged in await (await conn.execute(q.UNTIDY_DOMAINS)).fetchall():
        if budget <= 0:
            return
        params = {"domain_id": domain_id, "lo": tidied, "hi": purged, "n": budget}
        # Autocommit statements, not one transaction: these rows are no one else's
        # business, and the domain row is touched last, holding nothing else.
        ids = [r[0] for r in await (await conn.execute(q.TIDY_EVENT_IDS, params)).fetchall()]
        commits = [r[0] for r in await (await conn.execute(q.TIDY_COMMITS, params)).fetchall()]
        ids_done = purged if len(ids) < budget else max(ids)
        commits_done = purged if len(commits) < budget else max(commits)
        await conn.execute(q.SET_TIDIED, (min(ids_done, commits_done), domain_id))
        budget -= max(len(ids), len(commits))
