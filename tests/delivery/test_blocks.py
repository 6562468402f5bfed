"""Blocks of events shared by a worker's lanes: read once, sliced by each lane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from rqs.domain import catalog
from rqs.domain import delivery as d
from rqs.errors import StorageUnavailable
from rqs.service.batcher import Batcher
from rqs.service.blocks import Blocks
from rqs.storage.base import Storage
from rqs.storage.delivery_rows import lane_of
from tests.contract.contract_support import ev
from tests.delivery.conftest import Env

TYPES = ["EMAIL_BOUNCED", "EMAIL_CLICKED", "SMS_FAILED", "EMAIL_OPENED", "PUSH_BOUNCED"]


async def test_a_range_is_every_event_in_it_across_blocks_and_the_tail(
        storage: Storage) -> None:
    await storage.append("acme", [ev(TYPES[i % 5]) for i in range(23)])
    blocks = Blocks(storage, block=4)
    for after, through in [(0, 23), (0, 4), (3, 9), (4, 8), (5, 6), (7, 23), (22, 23), (8, 8)]:
        got = await blocks.between("acme", after, through, 23)
        assert [e.index for e in got] == list(range(after + 1, through + 1)), (after, through)


async def test_complete_blocks_are_read_once_and_the_tail_every_time(
        storage: Storage) -> None:
    await storage.append("acme", [ev("EMAIL_BOUNCED") for _ in range(10)])
    blocks = Blocks(storage, block=4)
    await blocks.between("acme", 0, 10, 10)  # blocks (0,4] and (4,8], then the tail (8,10]
    assert blocks.reads == 3
    await blocks.between("acme", 2, 10, 10)  # both blocks kept: only the tail again
    assert blocks.reads == 4
    # The tail is never kept: events committed since are there on the next look.
    await storage.append("acme", [ev("EMAIL_CLICKED") for _ in range(3)])
    got = await blocks.between("acme", 6, 13, 13)
    assert [e.index for e in got] == list(range(7, 14))
    assert [e.type for e in got][-3:] == ["EMAIL_CLICKED"] * 3


async def test_lanes_asking_at_once_share_one_read_and_old_blocks_are_dropped(
        storage: Storage) -> None:
    await storage.append("acme", [ev("EMAIL_BOUNCED") for _ in range(16)])
    blocks = Blocks(storage, keep=2, block=4)
    found = await asyncio.gather(*(blocks.between("acme", 0, 8, 16) for _ in range(5)))
    assert all([e.index for e in f] == list(range(1, 9)) for f in found)
    assert blocks.reads == 2
    await blocks.between("acme", 8, 16, 16)  # two more blocks push the first two out
    await blocks.between("acme", 0, 4, 16)
    assert blocks.reads == 5


async def test_a_range_ending_inside_a_committed_block_still_keeps_the_block(
        storage: Storage) -> None:
    # Lanes read `prefetch` events at a time, rarely a whole number of blocks: the block
    # under the range's end is complete (committed), so it is read whole and kept.
    await storage.append("acme", [ev("EMAIL_BOUNCED") for _ in range(10)])
    blocks = Blocks(storage, block=4)
    first = await blocks.between("acme", 0, 5, 10)
    assert [e.index for e in first] == [1, 2, 3, 4, 5]
    assert blocks.reads == 2  # (0,4] and (4,8]
    rest = await blocks.between("acme", 5, 10, 10)
    assert [e.index for e in rest] == [6, 7, 8, 9, 10]
    assert blocks.reads == 3  # (4,8] was kept; only the tail (8,10] is new


class FailingOnce:
    """The store, but its first scan fails once ``release`` is set: a database blip that
    comes while nobody waits for the read any more."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.release = asyncio.Event()
        self.first = True

    def scan(self, domain: str, query: Any, chunk: int | None = None) -> Any:
        if self.first:
            self.first = False
            return self._fail()
        return self.storage.scan(domain, query, chunk)

    async def _fail(self) -> AsyncIterator[list[Any]]:
        await self.release.wait()
        raise StorageUnavailable("blip")
        yield []  # an async generator, as scan is


async def turns(n: int = 5) -> None:
    """Let the loop run callbacks already scheduled (no time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_read_that_fails_after_its_lane_gave_up_is_not_kept(storage: Storage) -> None:
    await storage.append("acme", [ev("EMAIL_BOUNCED") for _ in range(8)])
    flaky = FailingOnce(storage)
    blocks = Blocks(flaky, block=4)  # type: ignore[arg-type]
    lane = asyncio.ensure_future(blocks.between("acme", 0, 4, 8))
    await turns()  # the lane started the block's read and waits for it
    lane.cancel()  # ...then goes away (its lease ended, the worker stops)
    await asyncio.wait([lane])
    flaky.release.set()  # now the read fails, with no one waiting
    await turns()
    got = await blocks.between("acme", 0, 4, 8)  # read again, not the old failure
    assert [e.index for e in got] == [1, 2, 3, 4]


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


async def test_a_lane_behind_retention_jumps_the_gap_in_one_scan(storage: Storage) -> None:
    old = await storage.append("acme", [ev("EMAIL_BOUNCED") for _ in range(600)])
    new = await storage.append("acme", [ev("EMAIL_CLICKED") for _ in range(50)])
    assert new.received_at > old.received_at
    removed = 0
    while step := await storage.purge_step(new.received_at, 10_000):
        removed += step
    assert removed == 600
    sub = d.Subscription("acme", "s", "cb", tuple(t.name for t in catalog.CATALOG))
    cb = d.Callback("acme", "cb", "https://example.com/hook", batch_size=1)
    blocks = Blocks(storage, block=64)
    batcher = Batcher(storage, lane_of(sub, cb, None, [], 0), 650, 8, blocks)
    got: list[int] = []
    while (batch := await batcher.take()) is not None:
        got += [e.index for e in batch.events]
    assert got == list(range(601, 651))
    # The first read-ahead (512 indexes, 8 blocks) found nothing; one scan then jumped the
    # rest of the gap, instead of reading block after block through it.
    assert blocks.reads == 8
