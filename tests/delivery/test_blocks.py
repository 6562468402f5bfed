"""Blocks of events shared by a worker's lanes: read once, sliced by each lane."""

from __future__ import annotations

import asyncio

from rqs.domain import catalog
from rqs.service.blocks import Blocks
from rqs.storage.base import Storage
from tests.contract.contract_support import ev
from tests.delivery.conftest import Env

TYPES = ["EMAIL_BOUNCED", "EMAIL_CLICKED", "SMS_FAILED", "EMAIL_OPENED", "PUSH_BOUNCED"]


async def test_a_range_is_every_event_in_it_across_blocks_and_the_tail(
        storage: Storage) -> None:
    await storage.append("acme", [ev(TYPES[i % 5]) for i in range(23)])
    blocks = Blocks(storage, block=4)
    for after, through in [(0, 23), (0, 4), (3, 9), (4, 8), (5, 6), (7, 23), (22, 23), (8, 8)]:
        got = await blocks.between("acme", after, through)
        assert [e.index for e in got] == list(range(after + 1, through + 1)), (after, through)


async def test_complete_blocks_are_read_once_and_the_tail_every_time(
        storage: Storage) -> None:
    await storage.append("acme", [ev("EMAIL_BOUNCED") for _ in range(10)])
    blocks = Blocks(storage, block=4)
    await blocks.between("acme", 0, 10)  # blocks (0,4] and (4,8], then the tail (8,10]
    assert blocks.reads == 3
    await blocks.between("acme", 2, 10)  # both blocks kept: only the tail again
    assert blocks.reads == 4
    # The tail is never kept: events committed since are there on the next look.
    await storage.append("acme", [ev("EMAIL_CLICKED") for _ in range(3)])
    got = await blocks.between("acme", 6, 13)
    assert [e.index for e in got] == list(range(7, 14))
    assert [e.type for e in got][-3:] == ["EMAIL_CLICKED"] * 3


async def test_lanes_asking_at_once_share_one_read_and_old_blocks_are_dropped(
        storage: Storage) -> None:
    await storage.append("acme", [ev("EMAIL_BOUNCED") for _ in range(16)])
    blocks = Blocks(storage, keep=2, block=4)
    found = await asyncio.gather(*(blocks.between("acme", 0, 8) for _ in range(5)))
    assert all([e.index for e in f] == list(range(1, 9)) for f in found)
    assert blocks.reads == 2
    await blocks.between("acme", 8, 16)  # two more blocks push the first two out
    await blocks.between("acme", 0, 4)
    assert blocks.reads == 5


async def test_subscriptions_wanting_the_same_events_share_the_reads(env: Env) -> None:
    for name in ("crm", "warehouse", "dashboard"):  # every type: lanes read whole ranges
        env.callback(name, batch_size=10)
        env.subscribe(name, name, [t.name for t in catalog.CATALOG])
    for t in TYPES:
        env.ingest(20, t)
    worker = env.worker()
    worker.blocks = Blocks(env.storage, block=32)
    stats = await env.deliver(worker)
    assert stats.events == 3 * 100
    for name in ("crm", "warehouse", "dashboard"):
        got = b"".join(h.body for h in env.receiver.ok(name))
        assert got.count(b'"riid"') == 100
    # 100 events: 3 complete blocks of 32, read once for all 3 lanes, and the tail (96,100]
    # once per lane. Unshared, that would be 12 reads.
    assert worker.blocks.reads == 3 + 3
