"""Contract: bounds, per-type counts, and retention (purge_step)."""

from __future__ import annotations

from collections import Counter

from contract_support import Model, ev, scan_indexes

from rqs.domain import selectors
from rqs.storage.base import Bounds, EventQuery, Storage


async def test_bounds_of_unknown_and_new_domains(storage: Storage) -> None:
    assert await storage.bounds("nobody") == Bounds(oldest=None, newest=0, purged_through=0)
    assert await storage.counts("nobody") == []
    assert await storage.domains() == []
    await storage.append("acme", [ev(), ev()])
    assert await storage.bounds("acme") == Bounds(oldest=1, newest=2, purged_through=0)
    assert await storage.domains() == ["acme"]


async def test_counts_per_type_and_channel(storage: Storage) -> None:
    await storage.append("acme", [ev("EMAIL_BOUNCED"), ev("EMAIL_BOUNCED"), ev("SMS_FAILED")])
    await storage.append("acme", [ev("EMAIL_BOUNCED"), ev("CUSTOM_THING", channel="Push")])
    await storage.append("acme", [ev("CUSTOM_THING", channel="Email")])
    await storage.append("other", [ev("EMAIL_BOUNCED")])
    got = [(c.type, c.channel, c.retained, c.ingested) for c in await storage.counts("acme")]
    assert got == [
        ("CUSTOM_THING", "Email", 1, 1),
        ("CUSTOM_THING", "Push", 1, 1),
        ("EMAIL_BOUNCED", "Email", 3, 3),
        ("SMS_FAILED", "Sms", 1, 1),
    ]


async def _three_appends(storage: Storage, m: Model) -> tuple[int, list[int]]:
    """Appends 4 + 3 + 3 events; returns a cutoff between the second and third."""
    await m.append(storage, [ev("EMAIL_BOUNCED", ext_id="a1"), ev("SMS_FAILED"),
                             ev("EMAIL_BOUNCED"), ev("EMAIL_CLICKED", ext_id="a4")])
    await m.append(storage, [ev("EMAIL_BOUNCED"), ev("SMS_FAILED", ext_id="b2"),
                             ev("EMAIL_BOUNCED")])
    third = await m.append(storage, [ev("EMAIL_BOUNCED"), ev("SMS_FAILED"), ev("EMAIL_OPENED")])
    cutoff = third.received_at
    removable = [r.index for r in m.rows if r.received_at < cutoff]
    assert removable == list(range(1, len(removable) + 1))
    assert removable, "the clock did not move between appends"
    return cutoff, removable


async def test_purge_removes_oldest_first_in_bounded_steps(storage: Storage) -> None:
    m = Model("acme")
    cutoff, removable = await _three_appends(storage, m)
    total = 0
    purged_through = 0
    while True:
        removed = await storage.purge_step(cutoff, 3)
        assert 0 <= removed <= 3
        if removed == 0:
            break
        total += removed
        bounds = await storage.bounds("acme")
        assert bounds.purged_through == purged_through + removed
        purged_through = bounds.purged_through
        assert bounds.oldest == purged_through + 1
        assert bounds.newest == 10
        # oldest first: exactly the indexes up to purged_through are gone
        assert await scan_indexes(storage, "acme", EventQuery()) == list(
            range(purged_through + 1, 11)
        )
    assert total == len(removable)
    assert purged_through == removable[-1]  # never beyond the cutoff
    assert await storage.get_event("acme", removable[-1]) is None
    assert await storage.get_event("acme", removable[-1] + 1) is not None


async def test_purge_never_goes_beyond_cutoff(storage: Storage) -> None:
    m = Model("acme")
    first = await m.append(storage, [ev(), ev()])
    await m.append(storage, [ev()])
    assert await storage.purge_step(first.received_at, 100) == 0
    assert await storage.bounds("acme") == Bounds(oldest=1, newest=3, purged_through=0)
    assert await storage.purge_step(0, 100) == 0


async def test_purge_updates_counts_and_keeps_ingested(storage: Storage) -> None:
    m = Model("acme")
    cutoff, removable = await _three_appends(storage, m)
    while await storage.purge_step(cutoff, 2):
        pass
    left = Counter((r.event.type, r.event.channel) for r in m.rows if r.index > removable[-1])
    ingested = Counter((r.event.type, r.event.channel) for r in m.rows)
    got = {(c.type, c.channel): (c.retained, c.ingested) for c in await storage.counts("acme")}
    assert got == {key: (left[key], n) for key, n in ingested.items()}


async def test_scan_after_purge(storage: Storage) -> None:
    m = Model("acme")
    cutoff, removable = await _three_appends(storage, m)
    while await storage.purge_step(cutoff, 100):
        pass
    bounds = await storage.bounds("acme")
    assert bounds.purged_through == removable[-1]
    everything = EventQuery()
    assert await scan_indexes(storage, "acme", everything) == m.expected(
        everything, bounds.purged_through
    )
    mta = selectors.for_poll_type("mtaResponse")
    assert mta is not None
    for chunk in (1, 2, 100):
        q = EventQuery(selector=mta)
        assert await scan_indexes(storage, "acme", q, chunk) == m.expected(
            q, bounds.purged_through
        )
    q = EventQuery(after=1, since=0)
    assert await scan_indexes(storage, "acme", q) == m.expected(q, bounds.purged_through)
    # appends carry on after the purge
    more = await m.append(storage, [ev()])
    assert more.indexes == [11]


async def test_resending_a_purged_ext_id_stores_it_again(storage: Storage) -> None:
    m = Model("acme")
    cutoff, _ = await _three_appends(storage, m)
    while await storage.purge_step(cutoff, 100):
        pass
    again = await storage.append("acme", [ev(ext_id="a1"), ev(ext_id="b2")])
    assert again.stored == 2
    assert again.indexes == [11, 12]


async def test_purge_bounds_work_across_domains(storage: Storage) -> None:
    a, b = Model("a"), Model("b")
    await a.append(storage, [ev() for _ in range(5)])
    await b.append(storage, [ev() for _ in range(5)])
    cutoff = (await storage.append("c", [ev()])).received_at
    removed = [await storage.purge_step(cutoff, 4) for _ in range(4)]
    assert removed[0] == 4
    assert sum(removed) == 10
    assert removed[-1] == 0
    assert (await storage.bounds("a")).purged_through == 5
    assert (await storage.bounds("b")).purged_through == 5
    assert await storage.bounds("a") == Bounds(oldest=None, newest=5, purged_through=5)
    assert await storage.bounds("c") == Bounds(oldest=1, newest=1, purged_through=0)
    assert await scan_indexes(storage, "a", EventQuery()) == []
