"""Append: gapless, commit-ordered per-domain indexes with many concurrent writers.

Why a row lock and not a sequence: a sequence hands out numbers at once, but the
transactions holding them commit in any order. A reader polling ``idx > N`` could see
N+2 committed before N+1 and move past N+1 for good. Instead each append locks its
domain's row (``SELECT ... FOR UPDATE``), takes ``next_index`` from it, inserts, advances
it and commits. The lock serializes index assignment per domain across every process,
and because it is held until COMMIT, commits happen in index order: every snapshot sees
a gapless prefix of each domain. Domains do not wait for each other.

The locked section is kept short: the rows are built (and within-batch duplicates
resolved) before the lock is taken; under it come one id lookup, one COPY, and one
pipelined round trip for the bookkeeping.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from rqs.domain.events import NewEvent
from rqs.storage.base import AppendResult
from rqs.storage.postgres import schema
from rqs.storage.postgres import sql as q
from rqs.storage.postgres.connection import Conn

Row = tuple[Any, ...]


def now_us() -> int:
    return int(time.time() * 1_000_000)


class MissingPartition(Exception):
    """The day of the received_at has no partition yet."""

    def __init__(self, received_at: int) -> None:
        super().__init__(f"no events partition for received_at {received_at}")
        self.received_at = received_at


@dataclass(slots=True)
class Batch:
    """An append prepared outside the lock."""

    tails: list[Row]  # every column after (domain_id, idx, received_at), per event
    ext_ids: list[str | None]  # per event
    first_of: list[int]  # per event: position of the first event with its ext_id
    distinct_ids: list[str]  # ext_ids, each once, to look up

    @classmethod
    def of(cls, events: Sequence[NewEvent], sanitize: bool = False) -> Batch:
        tails: list[Row] = []
        ext_ids: list[str | None] = []
        first_of: list[int] = []
        seen: dict[str, int] = {}
        text = _clean if sanitize else _same
        for pos, e in enumerate(events):
            ext_id = text(e.ext_id)
            tails.append((text(e.type), text(e.channel), e.occurred_at, ext_id,
                          text(e.campaign_id), text(e.campaign_name), text(e.riid),
                          text(e.customer_id), text(e.recipient), text(e.message), e.payload))
            ext_ids.append(ext_id)
            if ext_id is None:
                first_of.append(pos)
            else:
                first_of.append(seen.setdefault(ext_id, pos))
        return cls(tails, ext_ids, first_of, list(seen))


def _same(value: Any) -> Any:
    return value


def _clean(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL, which JSON "\u0000" decodes to. Only searchable
    # attributes are affected; the payload is bytea and kept exactly.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


async def append(conn: Conn, domain: str, batch: Batch, clock: int) -> AppendResult:
    """One transaction; raises MissingPartition (rolled back) when the day has none."""
    async with conn.transaction():
        cur = conn.cursor()
        row = await (await cur.execute(q.LOCK_DOMAIN, (domain,))).fetchone()
        if row is None:
            await cur.execute(q.ENSURE_DOMAIN, (domain,))
            row = await (await cur.execute(q.LOCK_DOMAIN, (domain,))).fetchone()
            assert row is not None
        domain_id, next_index, last_received, purged = row
        received_at = max(clock, last_received)
        known: dict[str, int] = {}
        if batch.distinct_ids:
            await cur.execute(q.KNOWN_IDS, (domain_id, batch.distinct_ids, purged))
            known = {ext_id: idx for ext_id, idx in await cur.fetchall()}
        indexes, rows, new_ids = _assign(batch, known, domain_id, next_index, received_at)
        if not rows:
            return AppendResult(indexes=indexes, stored=0, received_at=received_at)
        try:
            async with cur.copy(q.COPY_EVENTS) as copy:
                copy.set_types(q.EVENT_TYPES_IN)
                for r in rows:
                    await copy.write_row(r)
        except psycopg.errors.CheckViolation as exc:
            if "no partition" in str(exc):
                raise MissingPartition(received_at) from exc
            raise
        counts = Counter((r[3], r[4]) for r in rows)
        keys = sorted(counts)  # a fixed order for the row locks the upserts take
        types, channels, ns = [k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys]
        last = next_index + len(rows) - 1
        async with conn.pipeline():
            if new_ids:
                await cur.execute(q.INSERT_EVENT_IDS,
                                  (domain_id, [i[0] for i in new_ids], [i[1] for i in new_ids]))
            await cur.execute(q.ADVANCE_DOMAIN, (last + 1, received_at, domain_id))
            await cur.execute(q.INSERT_COMMIT, (domain_id, next_index, last, received_at))
            await cur.execute(q.BUMP_TYPE_COUNTS, (domain_id, types, channels, ns))
            await cur.execute(q.BUMP_DAY_COUNTS, (schema.as_date(schema.day_of(received_at)),
                                                  domain_id, types, channels, ns))
    return AppendResult(indexes=indexes, stored=len(rows), received_at=received_at)


def _assign(
    batch: Batch, known: dict[str, int], domain_id: int, next_index: int, received_at: int
) -> tuple[list[int], list[Row], list[tuple[str, int]]]:
    """Indexes for every item, the COPY rows of the new ones, and their (ext_id, index)."""
    indexes: list[int] = []
    rows: list[Row] = []
    new_ids: list[tuple[str, int]] = []
    idx = next_index
    for pos, tail in enumerate(batch.tails):
        ext_id = batch.ext_ids[pos]
        if ext_id is not None:
            first = batch.first_of[pos]
            if first != pos:  # repeated within the batch: the first occurrence's index
                indexes.append(indexes[first])
                continue
            stored = known.get(ext_id)
            if stored is not None:
                indexes.append(stored)
                continue
            new_ids.append((ext_id, idx))
        rows.append((domain_id, idx, received_at, *tail))
        indexes.append(idx)
        idx += 1
    return indexes, rows, new_ids
