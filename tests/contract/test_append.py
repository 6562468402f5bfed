"""Contract: append assigns gapless per-domain indexes, idempotently, all or nothing."""

from __future__ import annotations

import asyncio
import functools

import pytest
from contract_support import Model, ev, scan_all, scan_indexes

from rqs.domain.events import NewEvent
from rqs.domain.selectors import Selector
from rqs.storage.base import Bounds, EventQuery, Storage


async def test_first_append_gets_indexes_from_one_in_order(storage: Storage) -> None:
    result = await storage.append("acme", [ev(), ev("EMAIL_CLICKED"), ev("SMS_FAILED")])
    assert result.indexes == [1, 2, 3]
    assert result.stored == 3
    assert result.duplicates == 0
    events = await scan_all(storage, "acme", EventQuery())
    assert [(e.index, e.type) for e in events] == [
        (1, "EMAIL_BOUNCED"),
        (2, "EMAIL_CLICKED"),
        (3, "SMS_FAILED"),
    ]
    assert all(e.domain == "acme" for e in events)
    assert all(e.received_at == result.received_at for e in events)


async def test_indexes_continue_gapless_across_appends(storage: Storage) -> None:
    seen: list[int] = []
    for size in (1, 4, 2, 7, 1):
        result = await storage.append("acme", [ev() for _ in range(size)])
        seen.extend(result.indexes)
    assert seen == list(range(1, 16))
    assert await scan_indexes(storage, "acme", EventQuery()) == seen
    assert await storage.bounds("acme") == Bounds(oldest=1, newest=15, purged_through=0)


async def test_domains_are_isolated(storage: Storage) -> None:
    a = await storage.append("a", [ev("EMAIL_BOUNCED"), ev("EMAIL_BOUNCED")])
    b = await storage.append("b", [ev("SMS_FAILED")])
    a2 = await storage.append("a", [ev("EMAIL_OPENED")])
    assert (a.indexes, b.indexes, a2.indexes) == ([1, 2], [1], [3])
    assert [e.type for e in await scan_all(storage, "b", EventQuery())] == ["SMS_FAILED"]
    assert await scan_indexes(storage, "a", EventQuery()) == [1, 2, 3]
    assert (await storage.get_event("b", 2)) is None
    assert (await storage.bounds("b")).newest == 1
    assert await storage.domains() == ["a", "b"]
    # the same ext_id in two domains is two different events
    x = await storage.append("a", [ev(ext_id="same")])
    y = await storage.append("b", [ev(ext_id="same")])
    assert (x.stored, y.stored) == (1, 1)


async def test_received_at_never_decreases(storage: Storage) -> None:
    stamps = [(await storage.append("acme", [ev()])).received_at for _ in range(20)]
    assert stamps == sorted(stamps)
    events = await scan_all(storage, "acme", EventQuery())
    assert [e.received_at for e in events] == stamps


async def test_resend_with_ext_id_reports_original_index_and_stores_nothing(
    storage: Storage,
) -> None:
    first = await storage.append("acme", [ev(ext_id="a"), ev(), ev(ext_id="b")])
    assert first.indexes == [1, 2, 3]
    again = await storage.append("acme", [ev(ext_id="b"), ev(ext_id="c"), ev(ext_id="a")])
    assert again.indexes == [3, 4, 1]
    assert again.stored == 1
    assert again.duplicates == 2
    assert await scan_indexes(storage, "acme", EventQuery()) == [1, 2, 3, 4]
    assert (await storage.bounds("acme")).newest == 4
    counts = {(c.type, c.channel): c for c in await storage.counts("acme")}
    assert counts[("EMAIL_BOUNCED", "Email")].ingested == 4


async def test_resend_of_only_duplicates_stores_nothing(storage: Storage) -> None:
    await storage.append("acme", [ev(ext_id="a"), ev(ext_id="b")])
    again = await storage.append("acme", [ev(ext_id="b"), ev(ext_id="a")])
    assert (again.indexes, again.stored) == ([2, 1], 0)
    assert (await storage.bounds("acme")).newest == 2
    nxt = await storage.append("acme", [ev()])
    assert nxt.indexes == [3]


async def test_duplicates_within_one_batch_resolve_to_the_first(storage: Storage) -> None:
    result = await storage.append(
        "acme",
        [
            ev(ext_id="x", payload=b'{"n":1}'),
            ev(ext_id="y"),
            ev(ext_id="x", payload=b'{"n":2}'),
            ev(),
            ev(ext_id="y"),
        ],
    )
    assert result.indexes == [1, 2, 1, 3, 2]
    assert result.stored == 3
    stored = await storage.get_event("acme", 1)
    assert stored is not None
    assert stored.payload == b'{"n":1}'
    assert stored.ext_id == "x"
    assert stored.id == "x"


async def test_event_without_ext_id_has_a_derived_id(storage: Storage) -> None:
    await storage.append("acme", [ev()])
    stored = await storage.get_event("acme", 1)
    assert stored is not None
    assert stored.ext_id is None
    assert stored.id == "rqs-acme-1"


async def test_append_is_all_or_nothing(storage: Storage) -> None:
    await storage.append("acme", [ev(ext_id="before")])
    # The database refuses the last item (payload is NOT NULL): nothing of the batch stays.
    broken = NewEvent(type="EMAIL_BOUNCED", channel="Email", payload=None)  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its driver's error
        await storage.append("acme", [ev(ext_id="new"), ev(), broken])
    assert await scan_indexes(storage, "acme", EventQuery()) == [1]
    assert await storage.bounds("acme") == Bounds(oldest=1, newest=1, purged_through=0)
    counts = await storage.counts("acme")
    assert [(c.retained, c.ingested) for c in counts] == [(1, 1)]
    # the failed batch's ext_id was not recorded, and the index did not move on
    after = await storage.append("acme", [ev(ext_id="new")])
    assert (after.indexes, after.stored) == ([2], 1)


async def test_payload_bytes_round_trip_exactly(storage: Storage) -> None:
    payloads = [
        b'{"a": 1,   "b": [1,2,3]}',
        b'  {"spaces":"kept"}\t',
        '{"text":"ümlaut ✓ 😀"}'.encode(),
        b'{"nul":"\\u0000","raw":"\x00\x01\xff"}',
        b"{}",
        b'{"big":"' + b"x" * 300_000 + b'"}',
    ]
    result = await storage.append("acme", [ev(payload=p) for p in payloads])
    events = await scan_all(storage, "acme", EventQuery())
    assert [e.payload for e in events] == payloads
    for index, payload in zip(result.indexes, payloads, strict=True):
        one = await storage.get_event("acme", index)
        assert one is not None
        assert one.payload == payload
        assert isinstance(one.payload, bytes)


async def test_attributes_round_trip(storage: Storage) -> None:
    event = NewEvent(
        type="SMS_INBOUND",
        channel="Sms",
        payload=b'{"text":"STOP"}',
        ext_id="id-1",
        occurred_at=1_700_000_000_123_456,
        campaign_id="c1",
        campaign_name="Spring ✓",
        riid="r1",
        customer_id="cust",
        recipient="+4912345",
        message="STOP",
    )
    await storage.append("acme", [event])
    stored = await storage.get_event("acme", 1)
    assert stored is not None
    assert (stored.type, stored.channel, stored.ext_id, stored.occurred_at) == (
        "SMS_INBOUND",
        "Sms",
        "id-1",
        1_700_000_000_123_456,
    )


async def test_text_attributes_may_hold_nul(storage: Storage) -> None:
    # JSON "\u0000" decodes to NUL; a sender may put it in any searchable field.
    weird = ev(campaign_name="a\x00b", payload=b'{"campaignName":"a\\u0000b"}')
    weird.recipient = "x\x00"
    result = await storage.append("acme", [weird])
    assert result.stored == 1
    stored = await storage.get_event("acme", 1)
    assert stored is not None
    assert stored.payload == b'{"campaignName":"a\\u0000b"}'


async def test_empty_append_stores_nothing(storage: Storage) -> None:
    result = await storage.append("acme", [])
    assert (result.indexes, result.stored) == ([], 0)
    assert (await storage.bounds("acme")).newest == 0


async def test_many_events_in_one_append(storage: Storage) -> None:
    model = Model("acme")
    events = [ev("EMAIL_BOUNCED" if i % 3 else "EMAIL_CLICKED", ext_id=f"e{i}")
              for i in range(5_000)]
    result = await model.append(storage, events)
    assert result.indexes == list(range(1, 5_001))
    assert await scan_indexes(storage, "acme", EventQuery(limit=10_000), chunk=1_000) == list(
        range(1, 5_001)
    )
    again = await model.append(storage, events[::2])
    assert again.stored == 0
    assert again.indexes == list(range(1, 5_001, 2))


async def test_append_takes_a_function_producing_the_events(storage: Storage) -> None:
    # The backend calls it where it writes (for SQLite in another process: picklable).
    produce = functools.partial(list, [ev(ext_id="f1"), ev(), ev(ext_id="f1")])
    result = await storage.append("acme", produce)
    assert (result.indexes, result.stored) == ([1, 2, 1], 2)
    assert await scan_indexes(storage, "acme", EventQuery()) == [1, 2]


async def test_concurrent_appends_to_one_domain(storage: Storage) -> None:
    # Some share ext_ids: exactly one of them stores it, all report its index.
    batches = [[ev(ext_id=f"b{k}-{i}") for i in range(k % 4 + 1)] + [ev(ext_id="shared")]
               for k in range(30)]
    results = await asyncio.gather(*(storage.append("acme", b) for b in batches))
    shared = {r.indexes[-1] for r in results}
    assert len(shared) == 1
    assert sum(r.stored for r in results) == sum(len(b) - 1 for b in batches) + 1
    fresh: list[int] = []
    for b, r in zip(batches, results, strict=True):
        mine = r.indexes if r.stored == len(b) else r.indexes[:-1]  # the last is "shared"
        assert mine == list(range(mine[0], mine[0] + r.stored))  # one append: consecutive
        fresh.extend(mine)
    assert sorted(fresh) == list(range(1, len(fresh) + 1))
    events = await scan_all(storage, "acme", EventQuery())
    assert [e.index for e in events] == sorted(fresh)
    by_id = {e.ext_id: e.index for e in events}
    for b, r in zip(batches, results, strict=True):
        assert [by_id[e.ext_id] for e in b] == r.indexes


async def test_a_batch_larger_than_any_buffer_alongside_small_ones(storage: Storage) -> None:
    # ~12 MB in one append (more than the SQLite writer's socket buffers hold), without
    # ids, while single-event appends keep arriving: all commit, gapless, bytes intact.
    big = [ev("EMAIL_CLICKED" if i % 4 else "SMS_FAILED", payload=b'{"n":%d,"pad":"%s"}'
              % (i, b"x" * 600)) for i in range(20_000)]
    small = [[ev("PUSH_BOUNCED", payload=b'{"small":%d}' % k)] for k in range(20)]
    results = await asyncio.gather(storage.append("acme", big),
                                   *(storage.append("acme", s) for s in small))
    assert results[0].indexes == list(range(results[0].indexes[0],
                                            results[0].indexes[0] + 20_000))
    indexes = sorted(i for r in results for i in r.indexes)
    assert indexes == list(range(1, 20_021))
    events = await scan_all(storage, "acme", EventQuery(limit=100_000))
    stored = {e.index: e.payload for e in events}
    first = results[0].indexes[0]
    assert [stored[first + i] for i in (0, 1, 19_999)] == [big[0].payload, big[1].payload,
                                                           big[19_999].payload]
    rare = await scan_all(storage, "acme", EventQuery(
        selector=Selector(types=frozenset({"SMS_FAILED"})), limit=100_000))
    assert [e.index for e in rare] == [first + i for i in range(0, 20_000, 4)]
