"""The delivery storage contract: callbacks, subscriptions, batches, attempts, replays.

Kept apart from ``Storage`` so the event store stays small; every backend exposes one
through ``delivery_store_for(storage)``. ``tests/delivery/test_store_contract.py`` holds
the behaviour tests each implementation must pass.

Invariants every backend keeps:

* A *lane* is a subscription's live feed, or one replay of it. At most one batch of a
  lane is pending (its head; a unique index says so); batches opened after it wait as
  ``queued`` and the oldest becomes pending when the head is done. A lane is held by at most one
  worker at a time: ``claim`` leases it until ``lease_until`` and every later write of
  that worker names itself as ``owner``; writes from a worker whose lease was taken over
  change nothing of the lane.
* A lane's position only moves forward, and only when its pending batch succeeded or
  was dead-lettered, or when a scan found nothing for the lane up to some index.
* ``record`` applies only to the lane's head. A batch that is not (the record of the one
  before it failed, so it was never promoted) changes nothing and stops the lane: applying
  it would move the lane past a batch still pending; its next holder sends both again, in
  order.
* Re-enabling a disabled callback (``update_callback`` with status ACTIVE) restarts the
  retry schedule of its pending batches and lets its lanes be claimed at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Protocol

from rqs.domain.delivery import (
    Attempt,
    Callback,
    Delivery,
    DeliveryState,
    Replay,
    Subscription,
)
from rqs.errors import Conflict
from rqs.storage.base import Storage

LIVE = 0  # replay id of a subscription's live lane


@dataclass(frozen=True, slots=True)
class LaneKey:
    subscription_id: int
    replay_id: int = LIVE


@dataclass(frozen=True, slots=True)
class Lane:
    """A claimed lane, with what the worker needs to send its next batch."""

    subscription: Subscription
    callback: Callback
    replay: Replay | None
    pending: Delivery | None  # the batch at the head of the lane, if one is recorded
    lease_until: int
    queued: tuple[Delivery, ...] = ()  # opened after the head, in order

    @property
    def open_batches(self) -> tuple[Delivery, ...]:
        return ((self.pending,) if self.pending else ()) + self.queued

    @property
    def key(self) -> LaneKey:
        return LaneKey(self.subscription.id, self.replay.id if self.replay else LIVE)

    @property
    def position(self) -> int:
        return self.replay.position if self.replay else self.subscription.position


@dataclass(frozen=True, slots=True)
class NewDelivery:
    msg_id: str
    domain: str
    subscription_id: int
    replay_id: int
    after_index: int
    first_index: int
    last_index: int
    advance_to: int
    count: int
    created_at: int


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """Everything one attempt changes, written in one transaction."""

    delivery: Delivery  # its new state, attempts, next_attempt_at, last status and error
    attempt: Attempt
    body: bytes | None = None  # stored for retries once the first attempt failed
    position: int | None = None  # the lane's new position (batch done or dead)
    retry_at: int | None = None  # the lane waits until then
    failing: str | None = None  # "start": mark the callback failing; "clear": it recovered
    disable_reason: str | None = None  # disable the callback with this reason
    lease_until: int | None = None  # keep the lane until then; None releases it
    next: NewDelivery | None = None  # open one more batch in the same transaction


@dataclass(frozen=True, slots=True)
class Recorded:
    next: Delivery | None  # the batch opened with the record, if asked and still allowed
    lane_active: bool  # False: paused, disabled, cancelled, deleted or lease lost


class DeliveryStore(Protocol):
    # callbacks
    async def create_callback(self, callback: Callback) -> None: ...  # Conflict if it exists
    async def get_callback(self, domain: str, name: str) -> Callback | None: ...
    async def list_callbacks(self, domain: str) -> list[Callback]: ...
    async def update_callback(self, callback: Callback) -> None: ...  # NotFound
    async def delete_callback(self, domain: str, name: str) -> bool: ...  # Conflict if used

    # subscriptions
    async def create_subscription(self, sub: Subscription) -> Subscription: ...  # gets its id
    async def get_subscription(self, domain: str, name: str) -> Subscription | None: ...
    async def list_subscriptions(
        self, domain: str, callback: str | None = None
    ) -> list[Subscription]: ...
    async def update_subscription(self, sub: Subscription) -> None: ...  # not the position
    async def delete_subscription(self, domain: str, name: str) -> bool: ...

    # the worker's side
    async def active_domains(self) -> list[str]: ...
    async def claim(
        self, owner: str, now: int, lease_until: int, newest: Mapping[str, int], limit: int
    ) -> list[Lane]: ...
    async def open_delivery(
        self, lane: LaneKey, owner: str, new: NewDelivery
    ) -> Delivery: ...  # pending if no head, else queued; LeaseLost, LaneStopped
    # Records of one lane apply in call order, even when concurrent. Not a coroutine
    # function: a store may start the write at once and hand back a future, which the
    # worker keeps instead of wrapping each request's record in a task.
    def record(
        self, lane: LaneKey, owner: str, rec: AttemptRecord
    ) -> Awaitable[Recorded]: ...
    async def advance(
        self, lane: LaneKey, owner: str, position: int, lease_until: int | None, now: int
    ) -> bool: ...
    async def release(self, lane: LaneKey, owner: str) -> None: ...
    async def next_due(self) -> int | None: ...  # earliest retry time of a waiting lane

    # reading back
    async def get_delivery(self, domain: str, delivery_id: int) -> Delivery | None: ...
    async def delivery_body(self, delivery_id: int) -> bytes | None: ...
    async def list_deliveries(
        self,
        domain: str,
        *,
        subscription_id: int | None = None,
        state: DeliveryState | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Delivery]: ...
    async def list_attempts(self, domain: str, delivery_id: int) -> list[Attempt]: ...

    # replays
    async def create_replay(self, replay: Replay) -> Replay: ...  # gets its id
    async def get_replay(self, domain: str, replay_id: int) -> Replay | None: ...
    async def list_replays(self, domain: str, subscription_id: int) -> list[Replay]: ...
    async def cancel_replay(self, domain: str, replay_id: int, now: int) -> bool: ...

    # retention
    async def purge_delivery_log(self, cutoff: int, max_rows: int) -> int: ...


def delivery_store_for(storage: Storage) -> DeliveryStore:
    """The delivery store sharing ``storage``'s connections (writer, pools)."""
    factory = getattr(storage, "delivery_store", None)
    if factory is not None:
        store: DeliveryStore = factory()
        return store
    raise TypeError(f"the {storage.backend} backend has no delivery store")


class LeaseLost(Conflict):
    """Another worker holds the lane now (this worker's lease expired)."""

    code = "lease_lost"


class LaneStopped(Conflict):
    """The lane was paused, disabled, cancelled or deleted: open no more batches on it."""

    code = "lane_stopped"
