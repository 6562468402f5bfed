"""Contract: scan filters and pages events in index order; get_event finds one."""

from __future__ import annotations

import hashlib
import itertools
import threading

import pytest
from contract_support import Model, ev, scan_chunks, scan_indexes

from rqs.domain import catalog, selectors
from rqs.domain.events import StoredEvent
from rqs.domain.selectors import Selector
from rqs.storage.base import EventQuery, Storage

# An irregular interleaving of types and channels, so multi-type merges have to switch
# between streams at uneven places.
PATTERN = [
    ("EMAIL_BOUNCED", "c1"),
    ("EMAIL_BOUNCED", None),
    ("EMAIL_CLICKED", "c2"),
    ("SMS_FAILED", "c1"),
    ("EMAIL_FAILED", None),
    ("EMAIL_SENT_TO_MTA", "c1"),
    ("EMAIL_BOUNCED", "c2"),
    ("PUSH_BOUNCED", None),
    ("EMAIL_COMPLAINT", "c1"),
    ("EMAIL_BOUNCED", None),
    ("EMAIL_BOUNCED", None),
    ("EMAIL_BOUNCED", None),
    ("SMS_SENT_TO_MTA", "c2"),
    ("EMAIL_FAILED", "c2"),
    ("EMAIL_OPENED", None),
]


@pytest.fixture
async def model(storage: Storage) -> Model:
    """About 120 events in several appends, three campaigns, many types."""
    m = Model("acme")
    events = []
    for i in range(120):
        type_name, campaign = PATTERN[(i * 7 if i % 5 else i) % len(PATTERN)]
        events.append(ev(type_name, campaign_id=campaign,
                         campaign_name=f"Name of {campaign}" if campaign else None))
    sizes = itertools.cycle([1, 4, 11, 2, 7, 3, 9])
    while events:
        size = next(sizes)
        await m.append(storage, events[:size])
        events = events[size:]
    await Model("other").append(storage, [ev(t) for t, _ in PATTERN])
    return m


async def check(storage: Storage, model: Model, query: EventQuery, chunk: int = 5_000) -> None:
    expected = model.expected(query)
    chunks = await scan_chunks(storage, model.domain, query, chunk)
    got = [e.index for rows in chunks for e in rows]
    assert got == expected
    assert all(0 < len(rows) <= chunk for rows in chunks)
    assert sum(len(rows) for rows in chunks) <= query.limit


MTA = selectors.for_poll_type("mtaResponse")
ALL = selectors.for_poll_type("allMessages")
SELECTORS = {
    "everything": Selector(),
    "one type": Selector(types=frozenset({"EMAIL_BOUNCED"})),
    "rare type": Selector(types=frozenset({"PUSH_BOUNCED"})),
    "group": MTA,
    "two types": Selector(types=frozenset({"EMAIL_CLICKED", "SMS_FAILED"})),
    # More ranges than PostgreSQL merges in one query (storage/postgres/scan.py).
    "many types": Selector(types=frozenset(
        {t.name for t in catalog.CATALOG if t.name != "EMAIL_OPENED"} | {"NOT_A_TYPE"})),
    "allMessages": ALL,
    "channels": Selector(channels=frozenset({"Sms", "Push"})),
    "types and channel": Selector(types=frozenset({"EMAIL_BOUNCED", "SMS_FAILED"}),
                                  channels=frozenset({"Sms"})),
    "unknown type": Selector(types=frozenset({"NOT_A_TYPE"})),
    "no types": Selector(types=frozenset()),
}


@pytest.mark.parametrize("name", list(SELECTORS))
async def test_selector(storage: Storage, model: Model, name: str) -> None:
    assert MTA is not None and ALL is not None
    await check(storage, model, EventQuery(selector=SELECTORS[name]))


async def test_group_is_merged_in_index_order(storage: Storage, model: Model) -> None:
    assert MTA is not None
    events = [e for rows in await scan_chunks(storage, "acme", EventQuery(selector=MTA), 4)
              for e in rows]
    assert len({e.type for e in events}) >= 3
    assert [e.index for e in events] == sorted({e.index for e in events})
    assert all(e.type in catalog.GROUP_TYPES[catalog.PollGroup.MTA_RESPONSE] for e in events)


async def test_all_messages_excludes_sent_to_mta(storage: Storage, model: Model) -> None:
    assert ALL is not None
    events = [e for rows in await scan_chunks(storage, "acme", EventQuery(selector=ALL))
              for e in rows]
    assert events
    assert not {e.type for e in events} & {"EMAIL_SENT_TO_MTA", "SMS_SENT_TO_MTA"}


@pytest.mark.parametrize("campaign", ["c1", "Name of c2", "nope"])
async def test_campaign_by_id_or_name(storage: Storage, model: Model, campaign: str) -> None:
    await check(storage, model, EventQuery(campaign=campaign))
    assert MTA is not None
    await check(storage, model, EventQuery(campaign=campaign, selector=MTA), chunk=3)


async def test_after_and_through(storage: Storage, model: Model) -> None:
    assert MTA is not None
    for after, through in [(0, None), (10, None), (10, 40), (0, 1), (119, None), (120, None),
                           (500, None), (30, 30), (30, 29), (0, 0), (-5, 3), (0, -1)]:
        await check(storage, model, EventQuery(after=after, through=through))
        await check(storage, model, EventQuery(after=after, through=through, selector=MTA), 2)


async def test_limit(storage: Storage, model: Model) -> None:
    assert MTA is not None
    for limit in [0, 1, 2, 7, 50, 119, 120, 1000]:
        await check(storage, model, EventQuery(limit=limit))
        await check(storage, model, EventQuery(limit=limit, selector=MTA))
        await check(storage, model, EventQuery(limit=limit, selector=MTA), chunk=3)


@pytest.mark.parametrize("name", ["everything", "one type", "group", "two types",
                                  "many types", "allMessages", "types and channel"])
async def test_chunks_cover_everything_once(storage: Storage, model: Model, name: str) -> None:
    # Chunk boundaries fall everywhere, in particular inside multi-type merges.
    for chunk in [1, 2, 3, 5, 8, 13]:
        for limit, after in [(1000, 0), (17, 0), (chunk, 5), (chunk * 3 + 1, 33)]:
            await check(storage, model, EventQuery(selector=SELECTORS[name], limit=limit,
                                                   after=after), chunk)


async def test_chunks_have_the_chunk_size(storage: Storage, model: Model) -> None:
    chunks = await scan_chunks(storage, "acme", EventQuery(limit=100), chunk=30)
    assert [len(c) for c in chunks] == [30, 30, 30, 10]


async def test_since_until(storage: Storage, model: Model) -> None:
    stamps = sorted({r.received_at for r in model.rows})
    assert len(stamps) >= 3
    probes = [stamps[0], stamps[1], stamps[len(stamps) // 2], stamps[-1], stamps[-1] + 1,
              stamps[0] - 1, stamps[len(stamps) // 2] + 1]
    assert MTA is not None
    for since, until in itertools.product([None, *probes], repeat=2):
        await check(storage, model, EventQuery(since=since, until=until))
        await check(storage, model, EventQuery(since=since, until=until, selector=MTA,
                                               after=20, limit=30), chunk=4)


async def test_since_is_a_time_not_an_index(storage: Storage) -> None:
    m = Model("acme")
    first = await m.append(storage, [ev(), ev()])
    second = await m.append(storage, [ev(), ev(), ev()])
    third = await m.append(storage, [ev()])
    got = await scan_indexes(storage, "acme", EventQuery(since=second.received_at))
    assert got == [r.index for r in m.rows if r.received_at >= second.received_at]
    assert set(second.indexes) | set(third.indexes) <= set(got)
    got = await scan_indexes(storage, "acme", EventQuery(until=third.received_at))
    assert set(first.indexes) <= set(got) <= set(first.indexes) | set(second.indexes)


async def test_unknown_domain(storage: Storage, model: Model) -> None:
    assert await scan_chunks(storage, "nobody", EventQuery()) == []
    assert await storage.get_event("nobody", 1) is None


async def test_get_event(storage: Storage, model: Model) -> None:
    for r in model.rows[::9]:
        got = await storage.get_event("acme", r.index)
        assert got is not None
        assert (got.domain, got.index, got.type, got.channel, got.received_at, got.payload) == (
            "acme", r.index, r.event.type, r.event.channel, r.received_at, r.event.payload)
    for index in (0, -1, 121, 10**12, 2**62):
        assert await storage.get_event("acme", index) is None


async def test_scan_sees_appends_between_chunks_only_within_its_bounds(storage: Storage) -> None:
    m = Model("acme")
    await m.append(storage, [ev() for _ in range(10)])
    seen: list[int] = []
    async for rows in storage.scan("acme", EventQuery(), chunk=3):
        seen.extend(e.index for e in rows)
        await m.append(storage, [ev()])
    # Whatever the backend decides about events appended mid-scan, it stays gapless.
    assert seen[:10] == list(range(1, 11))
    assert seen == list(range(1, len(seen) + 1))


async def test_scan_map_applies_the_function_to_each_chunk(storage: Storage,
                                                           model: Model) -> None:
    assert MTA is not None
    query = EventQuery(selector=MTA, after=3, limit=50)
    chunks = await scan_chunks(storage, "acme", query, 7)
    mapped = [r async for r in storage.scan_map("acme", query, lambda rows: [e.index for e in rows],
                                                7)]
    assert mapped == [[e.index for e in rows] for rows in chunks]
    assert [i for m in mapped for i in m] == model.expected(query)
    assert [r async for r in storage.scan_map("nobody", query, len)] == []


_WORK = bytes(1 << 20)


@pytest.mark.parametrize("heavy", [False, True])
async def test_scan_map_calls_the_function_one_page_at_a_time_in_order(
        storage: Storage, model: Model, heavy: bool) -> None:
    # Encoders keep state across pages (a response's framing, caches), so a store that
    # reads ahead or encodes on other threads must still call them in order, never two at
    # once. Every call is recorded under a lock: an overlap would show as two active.
    lock = threading.Lock()
    active, most, firsts = 0, 0, []

    def encode(rows: list[StoredEvent]) -> int:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
            firsts.append(rows[0].index)
        hashlib.sha256(_WORK)  # work without the GIL (as rqs._speedups does): room to overlap
        with lock:
            active -= 1
        return rows[0].index

    got = [r async for r in storage.scan_map("acme", EventQuery(), encode, 4, heavy=heavy)]
    assert most == 1
    assert got == firsts == sorted(firsts)
    assert got == model.expected(EventQuery())[::4]


async def test_stopping_a_scan_early(storage: Storage, model: Model) -> None:
    seen = []
    async for rows in storage.scan("acme", EventQuery(), chunk=5):
        seen.extend(e.index for e in rows)
        if len(seen) >= 10:
            break
    assert seen == list(range(1, 11))
    # the storage is still usable afterwards
    assert await scan_indexes(storage, "acme", EventQuery(limit=3)) == [1, 2, 3]
