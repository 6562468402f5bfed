"""SQLite finds events by type through ``type_runs`` (one row per type per append).

The storage contract suite checks what every backend returns; these tests pin what is
particular to the SQLite layout: the run encoding, paging through many runs and lookups,
purging runs, and the migration that replaced the per-row type index.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rqs.domain import catalog
from rqs.domain.events import NewEvent
from rqs.domain.selectors import Selector
from rqs.settings import Settings
from rqs.storage.base import EventQuery
from rqs.storage.sqlite import connection, ingest, reads
from rqs.storage.sqlite.store import SqliteStorage


@pytest.mark.parametrize("types", [
    ["A"], ["A", "A", "A"], ["A", "B", "A"], ["B", "A", "A", "B", "C", "A"], ["A"] * 70_000,
])
def test_runs_cover_each_position_once(types: list[str]) -> None:
    runs = ingest.runs_of(types)
    assert sorted(t for t, *_ in runs) == sorted(set(types))
    for type_name, first, last, offsets in runs:
        want = [i for i, t in enumerate(types) if t == type_name]
        assert ingest.run_positions(first + 100, last + 100, offsets) == [p + 100 for p in want]
        assert (offsets is None) == (want == list(range(first, last + 1)))


def ev(type_name: str, ext_id: str | None = None) -> NewEvent:
    channel = catalog.channel_for(type_name, None).value
    return NewEvent(type=type_name, channel=channel, payload=b"{}", ext_id=ext_id)


async def _store(tmp_path: Path) -> SqliteStorage:
    store = SqliteStorage(Settings(data_dir=tmp_path))
    await store.open()
    return store


async def _indexes(store: SqliteStorage, query: EventQuery, chunk: int) -> list[int]:
    return [e.index for rows in [r async for r in store.scan("d", query, chunk)] for e in rows]


async def test_rare_types_page_through_many_runs_and_lookups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads, "RUNS_PER_QUERY", 3)
    monkeypatch.setattr(reads, "ROWS_PER_LOOKUP", 4)
    rng = random.Random(5)
    kinds = ["EMAIL_BOUNCED"] * 12 + ["SMS_FAILED", "PUSH_BOUNCED", "EMAIL_COMPLAINT"]
    store = await _store(tmp_path)
    try:
        stored: list[str] = []
        for _ in range(60):
            batch = [rng.choice(kinds) for _ in range(rng.randint(1, 9))]
            # Some batches carry sender ids (and a re-send): the writer-side path.
            with_ids = rng.random() < 0.3
            events = [ev(t, ext_id=f"x{len(stored) + i}" if with_ids else None)
                      for i, t in enumerate(batch)]
            if with_ids:
                events.append(events[0])
            await store.append("d", events)
            stored += batch
        rare = frozenset({"SMS_FAILED", "PUSH_BOUNCED"})
        plan = await store._read(reads.plan, "d", EventQuery(selector=Selector(types=rare)))
        assert plan is not None and plan.types is not None  # the runs path, not a scan
        expected = [i + 1 for i, t in enumerate(stored) if t in rare]
        for after, limit, chunk in [(0, 10_000, 5), (7, 10_000, 1), (40, 9, 2), (0, 3, 3)]:
            query = EventQuery(selector=Selector(types=rare), after=after, limit=limit)
            want = [i for i in expected if i > after][:limit]
            assert await _indexes(store, query, chunk) == want
        sms = EventQuery(selector=Selector(types=rare, channels=frozenset({"Sms"})))
        assert await _indexes(store, sms, 2) == [
            i + 1 for i, t in enumerate(stored) if t == "SMS_FAILED"]
    finally:
        await store.close()


async def test_purge_removes_the_runs_of_purged_events(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        for _ in range(5):
            await store.append("d", [ev("EMAIL_BOUNCED"), ev("SMS_FAILED"), ev("EMAIL_BOUNCED")])
        assert await store.purge_step(cutoff=2**62, max_rows=6) == 6
        runs = await store._read(lambda c: list(c.execute(
            "SELECT type, first_pos & 1099511627775 FROM type_runs ORDER BY 2")))
        assert runs and min(first for _, first in runs) > 6
        query = EventQuery(selector=Selector(types=frozenset({"SMS_FAILED"})))
        assert await _indexes(store, query, 10) == [8, 11, 14]
    finally:
        await store.close()


async def test_migration_turns_indexed_events_into_runs_of_one(tmp_path: Path) -> None:
    # A store written before 0200: events indexed by events_by_type, no type_runs.
    conn = connection.connect(tmp_path / "rqs.db")
    older = [(n, sql) for n, sql in connection.available_migrations() if n < "0200"]
    connection.applied_migrations(conn)  # creates the bookkeeping table
    for name, sql in older:
        conn.execute(sql)
        conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)",
                     (name,))
    conn.execute("INSERT INTO domains (name, next_index) VALUES ('d', 5)")
    base = 1 << 40
    for i, t in enumerate(["SMS_FAILED", "EMAIL_BOUNCED", "SMS_FAILED", "PUSH_BOUNCED"]):
        conn.execute("INSERT INTO events (pos, type, channel, received_at, payload) "
                     "VALUES (?, ?, 'Email', 1, x'7b7d')", (base + i + 1, t))
    assert "0200_type_runs" in connection.pending(conn)
    connection.upgrade(conn)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "events_by_type" not in indexes
    conn.close()
    store = await _store(tmp_path)
    try:
        query = EventQuery(selector=Selector(types=frozenset({"SMS_FAILED"})))
        plan = await store._read(reads.plan, "d", query)  # no type_counts rows: not "dense"
        assert plan is not None and plan.types is not None
        assert await _indexes(store, query, 1) == [1, 3]
    finally:
        await store.close()

