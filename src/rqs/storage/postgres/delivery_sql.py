"""The PostgreSQL delivery store's queries, by name (psycopg placeholders)."""

from __future__ import annotations

from rqs.storage.delivery_rows import (
    ATTEMPT_COLUMNS,
    CALLBACK_COLUMNS,
    DELIVERY_COLUMNS,
    JOIN_CALLBACK,
    REPLAY_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    prefixed,
)


def _marks(columns: str) -> str:
    return ", ".join(["%s"] * len(columns.split(",")))


INSERT_CALLBACK = f"INSERT INTO callbacks ({CALLBACK_COLUMNS}) VALUES ({_marks(CALLBACK_COLUMNS)})"
GET_CALLBACK = f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE domain = %s AND name = %s"
LIST_CALLBACKS = f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE domain = %s ORDER BY name"
LOCK_CALLBACK = "SELECT status FROM callbacks WHERE domain = %s AND name = %s FOR UPDATE"
UPDATE_CALLBACK = """
UPDATE callbacks SET url = %s, batch_size = %s, auth_user = %s, auth_password = %s,
    backup_url = %s, secrets = %s, status = %s, status_reason = %s, failing_since = %s,
    verified_at = %s, created_at = %s, updated_at = %s
WHERE domain = %s AND name = %s
"""
CALLBACK_IN_USE = "SELECT 1 FROM subscriptions WHERE domain = %s AND callback = %s LIMIT 1"
DELETE_CALLBACK = "DELETE FROM callbacks WHERE domain = %s AND name = %s"
_OF_CALLBACK = "SELECT id FROM subscriptions WHERE domain = %(domain)s AND callback = %(name)s"
REENABLE = (
    f"""UPDATE deliveries SET attempts = 0, next_attempt_at = NULL
        WHERE state = 'pending' AND subscription_id IN ({_OF_CALLBACK})""",
    "UPDATE subscriptions SET retry_at = NULL WHERE domain = %(domain)s AND callback = %(name)s",
    f"UPDATE replays SET retry_at = NULL WHERE subscription_id IN ({_OF_CALLBACK})",
)
CALLBACK_FAILING = """
UPDATE callbacks SET failing_since = coalesce(failing_since, %s) WHERE domain = %s AND name = %s
"""
CALLBACK_RECOVERED = """
UPDATE callbacks SET failing_since = NULL
WHERE domain = %s AND name = %s AND failing_since IS NOT NULL
"""
DISABLE_CALLBACK = """
UPDATE callbacks SET status = 'DISABLED', status_reason = %s, updated_at = %s
WHERE domain = %s AND name = %s
"""

_SUB_INSERT = SUBSCRIPTION_COLUMNS.split(", ", 1)[1]
INSERT_SUBSCRIPTION = (f"INSERT INTO subscriptions ({_SUB_INSERT}) VALUES ({_marks(_SUB_INSERT)})"
                       " RETURNING id")
GET_SUBSCRIPTION = (f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions "
                    "WHERE domain = %s AND name = %s")
LIST_SUBSCRIPTIONS = (f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE domain = %s "
                      "ORDER BY name")
LIST_SUBSCRIPTIONS_OF = (f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions "
                         "WHERE domain = %s AND callback = %s ORDER BY name")
SUBSCRIPTION_ID = "SELECT id FROM subscriptions WHERE domain = %s AND name = %s FOR UPDATE"
UPDATE_SUBSCRIPTION = """
UPDATE subscriptions SET callback = %s, event_types = %s, filters = %s, status = %s,
    status_reason = %s, updated_at = %s
WHERE domain = %s AND name = %s
"""
DELETE_SUBSCRIPTION_ALL = (
    """DELETE FROM delivery_attempts
       WHERE delivery_id IN (SELECT id FROM deliveries WHERE subscription_id = %(id)s)""",
    "DELETE FROM deliveries WHERE subscription_id = %(id)s",
    "DELETE FROM replays WHERE subscription_id = %(id)s",
    "DELETE FROM subscriptions WHERE id = %(id)s",
)

# Row locks: a lane's writes lock its row, so a concurrent claim skips it (SKIP LOCKED).
LANE_STATE = f"""
SELECT s.domain, s.callback, s.lease_owner, s.status = 'ACTIVE' AND c.status = 'ACTIVE'
FROM subscriptions s {JOIN_CALLBACK} WHERE s.id = %s FOR UPDATE OF s
"""
REPLAY_STATE = "SELECT lease_owner, state = 'running' FROM replays WHERE id = %s FOR UPDATE"
SUBSCRIPTION_OWNER = "SELECT lease_owner FROM subscriptions WHERE id = %s FOR UPDATE"
REPLAY_OWNER = "SELECT lease_owner FROM replays WHERE id = %s FOR UPDATE"

ACTIVE_DOMAINS = f"""
SELECT DISTINCT s.domain FROM subscriptions s {JOIN_CALLBACK}
WHERE s.status = 'ACTIVE' AND c.status = 'ACTIVE' ORDER BY s.domain
"""
CLAIMABLE_LIVE = f"""
SELECT {prefixed('s', SUBSCRIPTION_COLUMNS)}, {prefixed('c', CALLBACK_COLUMNS)}
FROM subscriptions s {JOIN_CALLBACK}
WHERE s.status = 'ACTIVE' AND c.status = 'ACTIVE'
  AND (s.lease_until IS NULL OR s.lease_until <= %(now)s)
  AND (s.retry_at IS NULL OR s.retry_at <= %(now)s)
ORDER BY coalesce(s.retry_at, 0), s.id
FOR UPDATE OF s SKIP LOCKED
"""
CLAIMABLE_REPLAYS = f"""
SELECT {prefixed('r', REPLAY_COLUMNS)}, {prefixed('s', SUBSCRIPTION_COLUMNS)},
       {prefixed('c', CALLBACK_COLUMNS)}
FROM replays r JOIN subscriptions s ON s.id = r.subscription_id {JOIN_CALLBACK}
WHERE r.state = 'running' AND s.status = 'ACTIVE' AND c.status = 'ACTIVE'
  AND (r.lease_until IS NULL OR r.lease_until <= %(now)s)
  AND (r.retry_at IS NULL OR r.retry_at <= %(now)s)
ORDER BY r.id
FOR UPDATE OF r SKIP LOCKED
"""
LEASE_SUBSCRIPTION = "UPDATE subscriptions SET lease_owner = %s, lease_until = %s WHERE id = %s"
LEASE_REPLAY = "UPDATE replays SET lease_owner = %s, lease_until = %s WHERE id = %s"
RELEASE_SUBSCRIPTION = ("UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL "
                        "WHERE id = %s AND lease_owner = %s")
RELEASE_REPLAY = ("UPDATE replays SET lease_owner = NULL, lease_until = NULL "
                  "WHERE id = %s AND lease_owner = %s")
MOVE_SUBSCRIPTION = """
UPDATE subscriptions SET position = greatest(position, coalesce(%(position)s::bigint, position)),
    retry_at = %(retry_at)s::bigint, lease_until = %(lease_until)s::bigint,
    lease_owner = CASE WHEN %(clear)s THEN NULL ELSE lease_owner END
WHERE id = %(id)s
"""
MOVE_REPLAY = """
UPDATE replays SET position = greatest(position, coalesce(%(position)s::bigint, position)),
    retry_at = %(retry_at)s::bigint, lease_until = %(lease_until)s::bigint,
    lease_owner = CASE WHEN %(clear)s THEN NULL ELSE lease_owner END,
    delivered = delivered + %(delivered)s, updated_at = %(now)s,
    state = CASE WHEN state = 'running'
                  AND greatest(position, coalesce(%(position)s::bigint, position)) >= through_index
                 THEN 'done' ELSE state END
WHERE id = %(id)s
"""
NEXT_DUE = """
SELECT min(t) FROM (
    SELECT min(retry_at) AS t FROM subscriptions WHERE status = 'ACTIVE'
    UNION ALL SELECT min(retry_at) FROM replays WHERE state = 'running') due
"""

INSERT_DELIVERY = """
INSERT INTO deliveries (msg_id, domain, subscription_id, replay_id, after_index, first_index,
                        last_index, advance_to, count, created_at, updated_at, state)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
HAS_PENDING = ("SELECT 1 FROM deliveries "
               "WHERE subscription_id = %s AND replay_id = %s AND state = 'pending'")
OPEN_DELIVERIES = (f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscription_id = %s "
                   "AND replay_id = %s AND state IN ('pending', 'queued') ORDER BY id")
PROMOTE_QUEUED = """
UPDATE deliveries SET state = 'pending' WHERE id = (
    SELECT min(id) FROM deliveries
    WHERE subscription_id = %s AND replay_id = %s AND state = 'queued')
"""
UPDATE_DELIVERY = """
UPDATE deliveries SET state = %(state)s, attempts = %(attempts)s,
    next_attempt_at = %(next_at)s, last_status = %(status)s, last_error = %(error)s,
    updated_at = %(updated)s,
    body = CASE WHEN %(state)s = 'succeeded' THEN NULL ELSE coalesce(%(body)s::bytea, body) END
WHERE id = %(id)s
"""
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE domain = %s AND id = %s"
DELIVERY_BODY = "SELECT body FROM deliveries WHERE id = %s"
INSERT_ATTEMPT = """
INSERT INTO delivery_attempts (delivery_id, at, url, status_code, latency_ms, error, outcome)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
LIST_ATTEMPTS = f"""
SELECT {prefixed('a', ATTEMPT_COLUMNS)} FROM delivery_attempts a
JOIN deliveries d ON d.id = a.delivery_id
WHERE d.domain = %s AND a.delivery_id = %s ORDER BY a.id
"""

INSERT_REPLAY = """
INSERT INTO replays (domain, subscription_id, after_index, through_index, since, until, position,
                     state, delivered, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
GET_REPLAY = f"SELECT {REPLAY_COLUMNS} FROM replays WHERE domain = %s AND id = %s"
LIST_REPLAYS = (f"SELECT {REPLAY_COLUMNS} FROM replays WHERE domain = %s AND subscription_id = %s"
                " ORDER BY id DESC")
CANCEL_REPLAY = """
UPDATE replays SET state = 'cancelled', updated_at = %s, lease_owner = NULL, lease_until = NULL
WHERE domain = %s AND id = %s AND state = 'running'
"""
DROP_REPLAY_PENDING = """
UPDATE deliveries SET state = 'dead', last_error = 'replay cancelled', updated_at = %s
WHERE replay_id = %s AND state IN ('pending', 'queued')
"""
FINISH_REPLAY = "UPDATE replays SET state = 'done', updated_at = %s WHERE id = %s"

PURGE_LOG = (
    """DELETE FROM delivery_attempts
       WHERE id IN (SELECT id FROM delivery_attempts WHERE at < %s LIMIT %s)""",
    """DELETE FROM deliveries WHERE id IN (
       SELECT id FROM deliveries WHERE state NOT IN ('pending', 'queued') AND updated_at < %s
       LIMIT %s)""",
    """DELETE FROM replays WHERE id IN (
       SELECT id FROM replays WHERE state <> 'running' AND updated_at < %s LIMIT %s)""",
)
