"""The DeliveryStore contract, run against every backend (the ``storage`` fixture)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from rqs.domain import delivery as d
from rqs.errors import Conflict, NotFound
from rqs.storage.base import Storage
from rqs.storage.delivery_base import (
    AttemptRecord,
    DeliveryStore,
    LaneKey,
    LaneStopped,
    LeaseLost,
    NewDelivery,
    delivery_store_for,
)
from tests.contract.contract_support import ev

S = 1_000_000  # one second in µs
T0 = 1_700_000_000 * S


@pytest.fixture
def store(storage: Storage) -> DeliveryStore:
    return delivery_store_for(storage)


def callback(name: str = "cb", **kw: Any) -> d.Callback:
    return replace(d.Callback("dom", name, "https://example.com/hook", 10,
                              secrets=(d.Secret(d.generate_secret()),), created_at=T0,
                              updated_at=T0), **kw)


async def setup(store: DeliveryStore, storage: Storage, n_events: int = 5) -> d.Subscription:
    await store.create_callback(callback())
    sub = await store.create_subscription(d.Subscription("dom", "sub", "cb", ("EMAIL_BOUNCED",),
                                                         created_at=T0, updated_at=T0))
    if n_events:
        await storage.append("dom", [ev() for _ in range(n_events)])
    return sub


async def head_and_queued(store: DeliveryStore, storage: Storage
                          ) -> tuple[d.Subscription, LaneKey, d.Delivery, d.Delivery]:
    """A claimed lane with two open batches: its head (events 1-2) and one queued (3)."""
    sub = await setup(store, storage)
    key = LaneKey(sub.id)
    await store.claim("a", T0, T0 + 60 * S, {"dom": 5}, 10)
    head = await store.open_delivery(key, "a", new(sub, 0, 2))
    queued = await store.open_delivery(key, "a", new(sub, 2, 3))
    return sub, key, head, queued


def new(sub: d.Subscription, after: int, last: int, replay_id: int = 0) -> NewDelivery:
    return NewDelivery(d.new_msg_id(), "dom", sub.id, replay_id, after, after + 1, last, last,
                       last - after, T0)


def done(x: d.Delivery, state: d.DeliveryState, **kw: object) -> AttemptRecord:
    attempt = d.Attempt(x.id, T0, "https://example.com/hook", 200, 1.5, None, "succeeded")
    fields = {"position": x.advance_to} if state is not d.DeliveryState.PENDING else {}
    return AttemptRecord(delivery=replace(x, state=state, attempts=x.attempts + 1),
                         attempt=attempt, **(fields | kw))  # type: ignore[arg-type]


async def test_callbacks_crud(store: DeliveryStore) -> None:
    cb = callback()
    await store.create_callback(cb)
    with pytest.raises(Conflict):
        await store.create_callback(cb)
    assert await store.get_callback("dom", "cb") == cb
    assert await store.get_callback("other", "cb") is None
    changed = replace(cb, url="https://example.org/", batch_size=200, backup_url="https://b/",
                      auth_user="u", auth_password="p", status=d.CallbackStatus.DISABLED,
                      status_reason="why", failing_since=T0, verified_at=T0, updated_at=T0 + 1)
    await store.update_callback(changed)
    assert await store.list_callbacks("dom") == [changed]
    with pytest.raises(NotFound):
        await store.update_callback(callback("missing"))
    assert await store.delete_callback("dom", "cb")
    assert not await store.delete_callback("dom", "cb")


async def test_subscriptions_crud_and_callback_in_use(store: DeliveryStore,
                                                      storage: Storage) -> None:
    sub = await setup(store, storage, 0)
    assert sub.id > 0
    with pytest.raises(Conflict):
        await store.create_subscription(replace(sub, id=0))
    with pytest.raises(Conflict):
        await store.delete_callback("dom", "cb")
    filters = (d.CampaignFilter(("EMAIL_BOUNCED",), ("A", "B")),)
    await store.update_subscription(replace(sub, event_types=("EMAIL_CLICKED",),
                                            filters=filters,
                                            status=d.SubscriptionStatus.PAUSED,
                                            status_reason="r"))
    got = await store.get_subscription("dom", "sub")
    assert got is not None and got.filters == filters and got.status_reason == "r"
    assert [s.name for s in await store.list_subscriptions("dom", "cb")] == ["sub"]
    assert await store.list_subscriptions("dom", "other") == []
    assert await store.delete_subscription("dom", "sub")
    again = await store.create_subscription(replace(sub, id=0))
    assert again.id != sub.id  # ids are never reused
    assert await store.delete_subscription("dom", "sub")
    assert await store.delete_callback("dom", "cb")


async def test_claim_is_exclusive_until_the_lease_ends(store: DeliveryStore,
                                                       storage: Storage) -> None:
    sub = await setup(store, storage)
    assert await store.active_domains() == ["dom"]
    assert await store.claim("a", T0, T0 + 60 * S, {"dom": 0}, 10) == []  # nothing new
    lanes = await store.claim("a", T0, T0 + 60 * S, {"dom": 5}, 10)
    assert [lane.key for lane in lanes] == [LaneKey(sub.id)]
    assert lanes[0].pending is None and lanes[0].callback.name == "cb"
    assert await store.claim("b", T0 + 59 * S, T0 + 120 * S, {"dom": 5}, 10) == []
    taken = await store.claim("b", T0 + 60 * S, T0 + 120 * S, {"dom": 5}, 10)
    assert len(taken) == 1
    with pytest.raises(LeaseLost):  # "a" lost its lease: it may not open a batch
        await store.open_delivery(LaneKey(sub.id), "a", new(sub, 0, 2))


async def test_one_pending_batch_per_lane_and_records(store: DeliveryStore,
                                                      storage: Storage) -> None:
    sub, key, first, second = await head_and_queued(store, storage)
    assert first.state is d.DeliveryState.PENDING and first.msg_id.startswith("msg_")
    assert second.state is d.DeliveryState.QUEUED  # waits behind the head
    # A failed attempt: kept pending, body stored, lane waits, callback marked failing.
    rec = done(first, d.DeliveryState.PENDING, body=b"[1,2]", retry_at=T0 + 5 * S,
               failing="start")
    assert (await store.record(key, "a", rec)).lane_active
    assert await store.delivery_body(first.id) == b"[1,2]"
    cb = await store.get_callback("dom", "cb")
    assert cb is not None and cb.failing_since == T0
    assert await store.next_due() == T0 + 5 * S
    assert await store.claim("a", T0 + S, T0 + 60 * S, {"dom": 5}, 10) == []
    lanes = await store.claim("b", T0 + 5 * S, T0 + 60 * S, {"dom": 5}, 10)
    assert lanes[0].pending is not None and lanes[0].pending.id == first.id
    assert lanes[0].pending.attempts == 1
    assert [x.id for x in lanes[0].queued] == [second.id]
    # Success: the lane moves, the queued batch becomes the head, one more opens behind it
    # in the same write, and the callback is no longer failing.
    ok = await store.record(key, "b", done(lanes[0].pending, d.DeliveryState.SUCCEEDED,
                                           failing="clear", lease_until=T0 + 60 * S,
                                           next=new(sub, 3, 5)))
    third = ok.next
    assert third is not None and third.first_index == 4
    assert third.state is d.DeliveryState.QUEUED
    head = await store.get_delivery("dom", second.id)
    assert head is not None and head.state is d.DeliveryState.PENDING
    assert await store.delivery_body(first.id) is None  # not kept once delivered
    got = await store.get_subscription("dom", "sub")
    assert got is not None and got.position == 2
    ok = await store.record(key, "b", done(head, d.DeliveryState.SUCCEEDED,
                                           lease_until=T0 + 60 * S))
    assert ok.lane_active and ok.next is None
    cb = await store.get_callback("dom", "cb")
    assert cb is not None and cb.failing_since is None
    # A writer that lost the lane changes nothing of it.
    stale = await store.record(key, "a", done(third, d.DeliveryState.SUCCEEDED))
    assert not stale.lane_active
    got = await store.get_subscription("dom", "sub")
    assert got is not None and got.position == 3
    still = await store.get_delivery("dom", third.id)
    assert still is not None and still.state is d.DeliveryState.PENDING
    listed = await store.list_deliveries("dom", subscription_id=sub.id)
    assert [x.id for x in listed] == [third.id, second.id, first.id]
    attempts = await store.list_attempts("dom", first.id)
    assert [a.status_code for a in attempts] == [200, 200] and attempts[0].latency_ms == 1.5
    assert len(await store.list_attempts("dom", third.id)) == 1  # the stale one, logged
    dead = await store.list_deliveries("dom", state=d.DeliveryState.DEAD)
    assert dead == []


async def test_disable_and_reenable(store: DeliveryStore, storage: Storage) -> None:
    sub = await setup(store, storage)
    key = LaneKey(sub.id)
    await store.claim("a", T0, T0 + 60 * S, {"dom": 5}, 10)
    x = await store.open_delivery(key, "a", new(sub, 0, 5))
    rec = done(x, d.DeliveryState.PENDING, disable_reason="410 Gone", retry_at=None)
    assert not (await store.record(key, "a", rec)).lane_active
    cb = await store.get_callback("dom", "cb")
    assert cb is not None and cb.status is d.CallbackStatus.DISABLED
    assert cb.status_reason == "410 Gone"
    assert await store.active_domains() == []
    assert await store.claim("a", T0 + 600 * S, T0 + 700 * S, {"dom": 5}, 10) == []
    await store.update_callback(replace(cb, status=d.CallbackStatus.ACTIVE, status_reason=None))
    lanes = await store.claim("a", T0 + 600 * S, T0 + 700 * S, {"dom": 5}, 10)
    assert lanes[0].pending is not None and lanes[0].pending.id == x.id
    assert lanes[0].pending.attempts == 0  # the schedule starts over


async def test_paused_lanes_are_not_claimed(store: DeliveryStore, storage: Storage) -> None:
    sub = await setup(store, storage)
    await store.claim("a", T0, T0 + S, {"dom": 5}, 10)
    await store.update_subscription(replace(sub, status=d.SubscriptionStatus.PAUSED))
    with pytest.raises(LaneStopped):  # a held lane opens nothing once paused
        await store.open_delivery(LaneKey(sub.id), "a", new(sub, 0, 2))
    await store.release(LaneKey(sub.id), "a")
    assert await store.claim("a", T0, T0 + S, {"dom": 5}, 10) == []
    await store.update_subscription(replace(sub, status=d.SubscriptionStatus.ACTIVE))
    assert len(await store.claim("a", T0, T0 + S, {"dom": 5}, 10)) == 1


async def test_replay_lanes(store: DeliveryStore, storage: Storage) -> None:
    sub = await setup(store, storage)
    await store.advance(LaneKey(sub.id), "nobody", 5, None, T0)  # not held: no effect
    replay = await store.create_replay(d.Replay(0, "dom", sub.id, 1, 4, position=1,
                                                created_at=T0, updated_at=T0))
    assert replay.id > 0 and replay.state is d.ReplayState.RUNNING
    lanes = await store.claim("a", T0, T0 + S, {"dom": 0}, 10)
    assert [lane.key for lane in lanes] == [LaneKey(sub.id, replay.id)]
    key = lanes[0].key
    x = await store.open_delivery(key, "a", new(sub, 1, 4, replay.id))
    assert x.replay_id == replay.id
    await store.record(key, "a", done(x, d.DeliveryState.SUCCEEDED))
    got = await store.get_replay("dom", replay.id)
    assert got is not None and got.state is d.ReplayState.DONE and got.delivered == 3
    assert [r.id for r in await store.list_replays("dom", sub.id)] == [replay.id]
    other = await store.create_replay(replace(replay, id=0, state=d.ReplayState.RUNNING))
    assert await store.cancel_replay("dom", other.id, T0)
    assert not await store.cancel_replay("dom", other.id, T0)
    assert await store.claim("a", T0, T0 + S, {"dom": 0}, 10) == []


async def test_advance_moves_an_idle_lane(store: DeliveryStore, storage: Storage) -> None:
    sub = await setup(store, storage)
    await store.claim("a", T0, T0 + 60 * S, {"dom": 5}, 10)
    assert await store.advance(LaneKey(sub.id), "a", 5, None, T0)
    got = await store.get_subscription("dom", "sub")
    assert got is not None and got.position == 5
    assert await store.claim("b", T0, T0 + S, {"dom": 5}, 10) == []  # released, up to date


async def test_purge_removes_old_attempts_and_finished_batches(store: DeliveryStore,
                                                               storage: Storage) -> None:
    sub = await setup(store, storage)
    key = LaneKey(sub.id)
    await store.claim("a", T0, T0 + 60 * S, {"dom": 5}, 10)
    x = await store.open_delivery(key, "a", new(sub, 0, 5))
    await store.record(key, "a", done(x, d.DeliveryState.SUCCEEDED))
    assert await store.purge_delivery_log(T0, 100) == 0
    assert await store.purge_delivery_log(T0 + 1, 100) == 2
    assert await store.get_delivery("dom", x.id) is None


async def test_records_of_one_lane_apply_in_call_order(store: DeliveryStore,
                                                       storage: Storage) -> None:
    # A worker writes outcomes behind: the next record may start before the last is in.
    sub = await setup(store, storage, 8)
    key = LaneKey(sub.id)
    await store.claim("a", T0, T0 + 60 * S, {"dom": 8}, 10)
    batches = [await store.open_delivery(key, "a", new(sub, i, i + 1)) for i in range(4)]
    assert [b.state for b in batches] == [d.DeliveryState.PENDING] + [d.DeliveryState.QUEUED] * 3
    lease = T0 + 60 * S
    done_all = await asyncio.gather(*(
        store.record(key, "a", done(b, d.DeliveryState.SUCCEEDED, lease_until=lease,
                                    next=new(sub, 4 + i, 5 + i)))
        for i, b in enumerate(batches)))
    assert all(r.lane_active and r.next is not None for r in done_all)
    got = await store.get_subscription("dom", "sub")
    assert got is not None and got.position == 4
    states = [x.state for x in await store.list_deliveries("dom", subscription_id=sub.id)]
    assert states == [d.DeliveryState.QUEUED] * 3 + [d.DeliveryState.PENDING] + [
        d.DeliveryState.SUCCEEDED] * 4


async def test_claim_takes_at_most_limit_lanes_and_leaves_the_rest(store: DeliveryStore,
                                                                  storage: Storage) -> None:
    await store.create_callback(callback())
    subs = [await store.create_subscription(d.Subscription(
        "dom", f"sub{i}", "cb", ("EMAIL_BOUNCED",), created_at=T0, updated_at=T0))
        for i in range(4)]
    # Up to date: nothing to send, so it must not take up a place in the limit.
    await store.create_subscription(d.Subscription("dom", "current", "cb", ("EMAIL_BOUNCED",),
                                                   position=5, created_at=T0, updated_at=T0))
    await storage.append("dom", [ev() for _ in range(5)])
    replay = await store.create_replay(d.Replay(0, "dom", subs[0].id, 0, 5, created_at=T0,
                                                updated_at=T0))
    due = {LaneKey(s.id) for s in subs} | {LaneKey(subs[0].id, replay.id)}
    lease = T0 + 60 * S
    first = await store.claim("a", T0, lease, {"dom": 5}, 2)
    assert len(first) == 2
    assert all(lane.replay is None for lane in first)  # live lanes before replays
    rest = await store.claim("b", T0, lease, {"dom": 5}, 10)
    assert len(rest) == 3
    assert {lane.key for lane in first} | {lane.key for lane in rest} == due
    assert await store.claim("c", T0, lease, {"dom": 5}, 10) == []  # every due lane is held


async def test_claim_serves_first_the_lane_due_longest(store: DeliveryStore,
                                                       storage: Storage) -> None:
    await store.create_callback(callback())
    old, waiting = [await store.create_subscription(d.Subscription(
        "dom", name, "cb", ("EMAIL_BOUNCED",), created_at=T0, updated_at=T0))
        for name in ("old", "waiting")]
    await storage.append("dom", [ev() for _ in range(5)])
    assert len(await store.claim("x", T0, T0 + 60 * S, {"dom": 5}, 10)) == 2
    # "waiting" failed an attempt and may retry from 30 s on; "x" never comes back for
    # "old", whose lease lapses at 60 s.
    batch = await store.open_delivery(LaneKey(waiting.id), "x", new(waiting, 0, 5))
    await store.record(LaneKey(waiting.id), "x",
                       done(batch, d.DeliveryState.PENDING, retry_at=T0 + 30 * S))
    now, lease = T0 + 100 * S, T0 + 160 * S
    assert [lane.key for lane in await store.claim("y", now, lease, {"dom": 5}, 1)] == [
        LaneKey(waiting.id)]
    assert [lane.key for lane in await store.claim("y", now, lease, {"dom": 5}, 1)] == [
        LaneKey(old.id)]


async def test_a_batch_that_is_not_the_head_is_not_recorded(store: DeliveryStore,
                                                            storage: Storage) -> None:
    # Outcomes are written behind: if the write for the head failed (a database error),
    # the write for the batch after it must not move the lane past the head.
    sub, key, head, behind = await head_and_queued(store, storage)
    out = await store.record(key, "a", done(behind, d.DeliveryState.SUCCEEDED,
                                            lease_until=T0 + 60 * S))
    assert not out.lane_active and out.next is None  # the lane stops
    got = await store.get_subscription("dom", "sub")
    assert got is not None and got.position == 0
    states = {x.id: x.state for x in await store.list_deliveries("dom", subscription_id=sub.id)}
    assert states == {head.id: d.DeliveryState.PENDING, behind.id: d.DeliveryState.QUEUED}
    assert len(await store.list_attempts("dom", behind.id)) == 1  # the attempt is logged
