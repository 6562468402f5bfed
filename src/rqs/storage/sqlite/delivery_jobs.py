"""The SQLite delivery store's writer jobs and their helpers.

Module-level functions, because the writer is another process: a job travels there as a
reference to its function plus plain arguments (see ``rqs.storage.sqlite.writer``).
"""

from __future__ import annotations

from typing import Any

import apsw

from rqs.domain.delivery import (
    Callback,
    CallbackStatus,
    Delivery,
    DeliveryState,
)
from rqs.errors import Conflict, NotFound
from rqs.storage import delivery_rows as rows
from rqs.storage.delivery_base import LIVE, Lane, LaneKey, LaneStopped, LeaseLost, NewDelivery
from rqs.storage.sqlite import delivery_sql as q


def execute_job(c: apsw.Connection, sql: str, params: tuple[Any, ...]) -> None:
    c.execute(sql, params)


def create_callback(c: apsw.Connection, row: tuple[Any, ...]) -> None:
    try:
        c.execute(q.INSERT_CALLBACK, row)
    except apsw.ConstraintError:
        raise Conflict(f"callback {row[1]!r} exists") from None


def delete_callback(c: apsw.Connection, domain: str, name: str) -> bool:
    if c.execute(q.CALLBACK_IN_USE, (domain, name)).fetchone():
        raise Conflict(f"callback {name!r} has subscriptions; delete them first")
    c.execute(q.DELETE_CALLBACK, (domain, name))
    return c.changes() > 0


def create_subscription(c: apsw.Connection, values: tuple[Any, ...]) -> int:
    try:
        return inserted_id(c, q.INSERT_SUBSCRIPTION, values)
    except apsw.ConstraintError:
        raise Conflict(f"subscription {values[1]!r} exists") from None


def update_subscription(c: apsw.Connection, params: tuple[Any, ...]) -> None:
    c.execute(q.UPDATE_SUBSCRIPTION, params)
    if c.changes() == 0:
        raise NotFound(f"no subscription {params[-1]!r}")


def delete_subscription(c: apsw.Connection, domain: str, name: str) -> bool:
    found = c.execute(q.SUBSCRIPTION_ID, (domain, name)).fetchone()
    if found is None:
        return False
    for sql in q.DELETE_SUBSCRIPTION_ALL:
        c.execute(sql, (found[0],))
    return True


def open_delivery(c: apsw.Connection, lane: LaneKey, owner: str, new: NewDelivery) -> Delivery:
    state = _lane_state(c, lane)
    if state is None or state[2] != owner:
        raise LeaseLost(f"lane {lane} is no longer held by {owner}")
    if not state[3]:
        raise LaneStopped(f"lane {lane} is paused, disabled or finished")
    try:
        return _insert_delivery(c, new)
    except apsw.ConstraintError:
        raise Conflict(f"lane {lane} has a pending batch already") from None


def advance_job(c: apsw.Connection, lane: LaneKey, owner: str, position: int,
             lease_until: int | None, now: int) -> bool:
    if not _owns(c, lane, owner):
        return False
    _move_lane(c, lane, position, None, lease_until, 0, now)
    return True


def cancel_replay(c: apsw.Connection, domain: str, replay_id: int, now: int) -> bool:
    c.execute(q.CANCEL_REPLAY, (now, domain, replay_id))
    if c.changes() == 0:
        return False
    c.execute(q.DROP_REPLAY_PENDING, (now, replay_id))
    return True


def purge_log(c: apsw.Connection, cutoff: int, max_rows: int) -> int:
    removed = 0
    for sql in q.PURGE_LOG:
        c.execute(sql, (cutoff, max_rows))
        removed += c.changes()
    return removed


def inserted_id(c: apsw.Connection, sql: str, params: tuple[Any, ...]) -> int:
    # Not RETURNING: SQLite runs it as a trigger, which gives the INSERT a statement
    # journal, a copy of every 16 KiB page it touches. For the batch a lane opens per
    # callback request, that copy was most of the insert's cost (py-spy, bench.delivery).
    c.execute(sql, params)
    return c.last_insert_rowid()


def update_callback(c: apsw.Connection, cb: Callback) -> None:
    before = c.execute(q.CALLBACK_STATUS, (cb.domain, cb.name)).fetchone()
    if before is None:
        raise NotFound(f"no callback {cb.name!r}")
    c.execute(q.UPDATE_CALLBACK, (*rows.callback_row(cb)[2:], cb.domain, cb.name))
    if before[0] != CallbackStatus.ACTIVE and cb.status is CallbackStatus.ACTIVE:
        # Re-enabled: pending batches start their schedule over, lanes may run at once.
        for sql in q.REENABLE:
            c.execute(sql, (cb.domain, cb.name))


def _lane_state(c: apsw.Connection, lane: LaneKey) -> tuple[Any, ...] | None:
    """(domain, callback, lease owner, active) of a lane, or None if it is gone."""
    found: tuple[Any, ...] | None = c.execute(q.LANE_STATE, (lane.subscription_id,)).fetchone()
    if found is not None and lane.replay_id:
        replay = c.execute(q.REPLAY_STATE, (lane.replay_id,)).fetchone()
        found = None if replay is None else (found[0], found[1], replay[0],
                                             found[3] and replay[1])
    return found


def _owns(c: apsw.Connection, lane: LaneKey, owner: str) -> bool:
    if lane.replay_id:
        found = c.execute(q.REPLAY_OWNER, (lane.replay_id,)).fetchone()
    else:
        found = c.execute(q.SUBSCRIPTION_OWNER, (lane.subscription_id,)).fetchone()
    return found is not None and found[0] == owner


def _insert_delivery(c: apsw.Connection, n: NewDelivery) -> Delivery:
    return rows.opened_delivery(*_insert_flat(c, rows.new_delivery_values(n)), n)


def _move_lane(c: apsw.Connection, lane: LaneKey, position: int | None, retry_at: int | None,
               lease_until: int | None, delivered: int, now: int) -> None:
    owner_clear = lease_until is None
    if lane.replay_id:
        c.execute(q.MOVE_REPLAY, (position, retry_at, lease_until, owner_clear, delivered,
                                  lane.replay_id, now))
    else:
        c.execute(q.MOVE_SUBSCRIPTION, (position, retry_at, lease_until, owner_clear,
                                        lane.subscription_id))


def _insert_flat(c: apsw.Connection, flat: tuple[Any, ...]) -> tuple[int, str]:
    """Open a batch: the lane's head (pending) if it has none, else queued behind it."""
    has_head = c.execute(q.HAS_PENDING, (flat[2], flat[3])).fetchone() is not None
    state = DeliveryState.QUEUED.value if has_head else DeliveryState.PENDING.value
    return inserted_id(c, q.INSERT_DELIVERY, (*flat, state)), state


def record_job(c: apsw.Connection, flat: tuple[Any, ...]) -> tuple[tuple[int, str] | None, bool]:
    """Writer job for ``record``. Plain tuples in and out: pickling dataclasses to and from
    the writer process cost more than the SQL, at thousands of records a second."""
    (sub_id, replay_id, owner, dl, at, body, position, retry_at, failing, disable, lease_until,
     nxt) = flat
    c.execute(q.INSERT_ATTEMPT, at)
    lane = _lane_state(c, LaneKey(sub_id, replay_id))
    if lane is None or lane[2] != owner:
        # Deleted meanwhile, or another worker took the lane over: the attempt is logged,
        # and nothing else changes (the new holder decides about the batch).
        return None, False
    domain, callback, _, active = lane
    delivery_id, state, attempts, next_at, status, error, updated, count = dl
    c.execute(q.UPDATE_DELIVERY, (state, attempts, next_at, status, error, updated, state, body,
                                  delivery_id))
    if not c.changes():  # not the lane's head: the lane stops (see delivery_base)
        return None, False
    if failing == "start":
        c.execute(q.CALLBACK_FAILING, (updated, domain, callback))
    elif failing == "clear":
        c.execute(q.CALLBACK_RECOVERED, (domain, callback))
    if disable is not None:
        c.execute(q.DISABLE_CALLBACK, (disable, updated, domain, callback))
        active = False
    done = state != DeliveryState.PENDING.value
    if done:  # the next opened batch becomes the head
        c.execute(q.PROMOTE_QUEUED, (sub_id, replay_id))
    _move_lane(c, LaneKey(sub_id, replay_id), position, retry_at, lease_until,
               count if done else 0, updated)
    if not active:
        return None, False
    return (_insert_flat(c, nxt) if nxt is not None else None), True


def claim_job(c: apsw.Connection, owner: str, now: int, lease_until: int,
           newest: dict[str, int], limit: int) -> list[Lane]:
    lanes: list[Lane] = []
    n_sub, n_rep = rows.SUBSCRIPTION_WIDTH, rows.REPLAY_WIDTH
    for r in c.execute(q.CLAIMABLE_LIVE, (now, now)).fetchall():
        if len(lanes) >= limit:
            break
        sub, cb = rows.subscription_of(r[:n_sub]), rows.callback_of(r[n_sub:])
        opened = _open_batches(c, sub.id, LIVE)
        if not opened and sub.position >= newest.get(sub.domain, 0):
            continue
        c.execute(q.LEASE_SUBSCRIPTION, (owner, lease_until, sub.id))
        lanes.append(rows.lane_of(sub, cb, None, opened, lease_until))
    if len(lanes) >= limit:  # replays would only be skipped
        return lanes
    for r in c.execute(q.CLAIMABLE_REPLAYS, (now, now)).fetchall():
        if len(lanes) >= limit:
            break
        rep = rows.replay_of(r[:n_rep])
        sub = rows.subscription_of(r[n_rep:n_rep + n_sub])
        cb = rows.callback_of(r[n_rep + n_sub:])
        opened = _open_batches(c, sub.id, rep.id)
        if not opened and rep.position >= rep.through_index:
            c.execute(q.FINISH_REPLAY, (now, rep.id))
            continue
        c.execute(q.LEASE_REPLAY, (owner, lease_until, rep.id))
        lanes.append(rows.lane_of(sub, cb, rep, opened, lease_until))
    return lanes


def _open_batches(c: apsw.Connection, subscription_id: int, replay_id: int) -> list[Delivery]:
    return [rows.delivery_of(r) for r in c.execute(q.OPEN_DELIVERIES,
                                                   (subscription_id, replay_id))]
