"""Column lists and row mappers shared by the SQL delivery stores (SQLite, PostgreSQL).

Both backends select the same columns in the same order, so one mapper per model serves
both; only the SQL around them differs.
"""

from __future__ import annotations

import json
from typing import Any

from rqs.domain.delivery import (
    Attempt,
    Callback,
    CallbackStatus,
    CampaignFilter,
    Delivery,
    DeliveryState,
    Replay,
    ReplayState,
    Secret,
    Subscription,
    SubscriptionStatus,
)
from rqs.storage.delivery_base import (
    Lane,
    NewDelivery,
)

Row = tuple[Any, ...]


def encode_secrets(secrets: tuple[Secret, ...]) -> str:
    return json.dumps([[s.value, s.expires_at] for s in secrets])


def decode_secrets(text: str) -> tuple[Secret, ...]:
    return tuple(Secret(v, e) for v, e in json.loads(text))


def encode_filters(filters: tuple[CampaignFilter, ...]) -> str:
    return json.dumps([[list(f.event_types), list(f.campaign_names)] for f in filters])


def decode_filters(text: str) -> tuple[CampaignFilter, ...]:
    return tuple(CampaignFilter(tuple(t), tuple(n)) for t, n in json.loads(text))


def replay_id_of(value: Any) -> int | None:
    return None if not value else int(value)

CALLBACK_COLUMNS = ("domain, name, url, batch_size, auth_user, auth_password, backup_url, "
                    "secrets, status, status_reason, failing_since, verified_at, created_at, "
                    "updated_at")
SUBSCRIPTION_COLUMNS = ("id, domain, name, callback, event_types, filters, status, "
                        "status_reason, position, created_at, updated_at")
DELIVERY_COLUMNS = ("id, msg_id, domain, subscription_id, after_index, first_index, last_index, "
                    "advance_to, count, replay_id, state, attempts, next_attempt_at, "
                    "last_status, last_error, created_at, updated_at")
REPLAY_COLUMNS = ("id, domain, subscription_id, after_index, through_index, since, until, "
                  "position, state, delivered, created_at, updated_at")
ATTEMPT_COLUMNS = "delivery_id, at, url, status_code, latency_ms, error, outcome, id"
SUBSCRIPTION_WIDTH = len(SUBSCRIPTION_COLUMNS.split(","))
JOIN_CALLBACK = "JOIN callbacks c ON c.domain = s.domain AND c.name = s.callback"


def prefixed(alias: str, columns: str) -> str:
    """``columns`` qualified by a table alias: "a, b" -> "s.a, s.b"."""
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


REPLAY_WIDTH = len(REPLAY_COLUMNS.split(","))


def lane_of(sub: Subscription, cb: Callback, replay: Replay | None, opened: list[Delivery],
            lease_until: int) -> Lane:
    """A claimed lane: its open batches split into the head (pending) and those queued."""
    head = opened[0] if opened and opened[0].state is DeliveryState.PENDING else None
    queued = tuple(opened[1:] if head else opened)
    return Lane(sub, cb, replay, head, lease_until, queued)


def new_delivery_values(n: NewDelivery) -> Row:
    """INSERT_DELIVERY's values before the state (both dialects list the same columns)."""
    return (n.msg_id, n.domain, n.subscription_id, n.replay_id, n.after_index, n.first_index,
            n.last_index, n.advance_to, n.count, n.created_at, n.created_at)


def opened_delivery(new_id: int, state: str, n: NewDelivery) -> Delivery:
    return Delivery(new_id, n.msg_id, n.domain, n.subscription_id, n.after_index, n.first_index,
                    n.last_index, n.advance_to, n.count, n.replay_id or None,
                    DeliveryState(state), created_at=n.created_at, updated_at=n.created_at)


def callback_row(cb: Callback) -> Row:
    return (cb.domain, cb.name, cb.url, cb.batch_size, cb.auth_user, cb.auth_password,
            cb.backup_url, encode_secrets(cb.secrets), cb.status.value, cb.status_reason,
            cb.failing_since, cb.verified_at, cb.created_at, cb.updated_at)


def callback_of(r: Row) -> Callback:
    return Callback(r[0], r[1], r[2], r[3], r[4], r[5], r[6], decode_secrets(r[7]),
                    CallbackStatus(r[8]), r[9], r[10], r[11], r[12], r[13])


def subscription_values(s: Subscription) -> Row:
    """Columns 2.. of SUBSCRIPTION_COLUMNS (everything but the id)."""
    return (s.domain, s.name, s.callback, json.dumps(list(s.event_types)),
            encode_filters(s.filters), s.status.value, s.status_reason, s.position,
            s.created_at, s.updated_at)


def subscription_update_values(s: Subscription) -> Row:
    """The SET values of a subscription update, then its key (domain, name)."""
    return (s.callback, json.dumps(list(s.event_types)), encode_filters(s.filters),
            s.status.value, s.status_reason, s.updated_at, s.domain, s.name)


def subscription_of(r: Row) -> Subscription:
    return Subscription(r[1], r[2], r[3], tuple(json.loads(r[4])), decode_filters(r[5]),
                        SubscriptionStatus(r[6]), r[7], r[8], r[0], r[9], r[10])


def delivery_of(r: Row) -> Delivery:
    return Delivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], replay_id_of(r[9]),
                    DeliveryState(r[10]), r[11], r[12], r[13], r[14], r[15], r[16])


def replay_values(r: Replay) -> Row:
    """Columns 2.. of REPLAY_COLUMNS (everything but the id)."""
    return (r.domain, r.subscription_id, r.after_index, r.through_index, r.since, r.until,
            r.position, r.state.value, r.delivered, r.created_at, r.updated_at)


def replay_of(r: Row) -> Replay:
    return Replay(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], ReplayState(r[8]), r[9],
                  r[10], r[11])


def attempt_of(r: Row) -> Attempt:
    return Attempt(r[0], r[1], r[2], r[3], float(r[4]), r[5], r[6], r[7])


def list_deliveries_query(
    mark: str, domain: str, subscription_id: int | None, state: DeliveryState | None,
    before_id: int | None, limit: int,
) -> tuple[str, Row]:
    """A filtered, newest-first page of deliveries; ``mark`` is the driver's placeholder."""
    where = [f"domain = {mark}"]
    params: list[Any] = [domain]
    if subscription_id is not None:
        where.append(f"subscription_id = {mark}")
        params.append(subscription_id)
    if state is not None:
        where.append(f"state = {mark}")
        params.append(state.value)
    if before_id is not None:
        where.append(f"id < {mark}")
        params.append(before_id)
    sql = (f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {' AND '.join(where)} "
           f"ORDER BY id DESC LIMIT {mark}")
    return sql, (*params, limit)
