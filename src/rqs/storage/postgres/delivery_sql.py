"""The PostgreSQL delivery store's queries, by name (psycopg placeholders)."""

from __future__ import annotations

from rqs.storage.delivery_rows import (
    ATTEMPT_COLUMNS,
    CALLBACK_COLUMNS,
    DELIVERY_COLUMNS,
    JOIN_CALLBACK,
    REPLAY_COLUMNS,
    REPLAY_WIDTH,
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
# Claiming. A lane is claimed only with something to send: open batches, or events past
# its position (a due replay with neither is finished instead). Live lanes go first and
# replays get what they leave of the limit; each kind in the order it became due (never
# waiting counts as due all along), so a lane whose retry or lost lease came due long ago
# is not passed over. Only the rows leased are locked, and held ones are skipped:
# concurrent claimers neither wait for each other nor take the same lane. The lease and
# due conditions stay on the locked table itself, where PostgreSQL checks them again on
# a row that another claimer leased after this statement's snapshot was taken.
_NO_REPLAY = ", ".join(["NULL"] * REPLAY_WIDTH)  # a live lane's replay columns
_LIVE_HAS_WORK = """(s.position < coalesce(n.newest, 0) OR EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.subscription_id = s.id AND d.replay_id = 0 AND d.state IN ('pending', 'queued')))"""
_REPLAY_HAS_WORK = """(r.position < r.through_index OR EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.subscription_id = r.subscription_id AND d.replay_id = r.id
          AND d.state IN ('pending', 'queued')))"""
_DUE_REPLAYS = f"""replays r JOIN subscriptions s ON s.id = r.subscription_id {JOIN_CALLBACK}
    WHERE r.state = 'running' AND s.status = 'ACTIVE' AND c.status = 'ACTIVE'
      AND (r.lease_until IS NULL OR r.lease_until <= %(now)s)
      AND (r.retry_at IS NULL OR r.retry_at <= %(now)s)"""
CLAIM = f"""
WITH newest (domain, newest) AS (
    SELECT * FROM unnest(%(domains)s::text[], %(newest)s::bigint[])
), live AS (
    SELECT {prefixed('s', SUBSCRIPTION_COLUMNS)},
           greatest(coalesce(s.retry_at, 0), coalesce(s.lease_until, 0)) AS due_at
    FROM subscriptions s {JOIN_CALLBACK}
    LEFT JOIN newest n ON n.domain = s.domain
    WHERE s.status = 'ACTIVE' AND c.status = 'ACTIVE'
      AND (s.lease_until IS NULL OR s.lease_until <= %(now)s)
      AND (s.retry_at IS NULL OR s.retry_at <= %(now)s)
      AND {_LIVE_HAS_WORK}
    ORDER BY due_at, s.id
    LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED
), replay AS (
    SELECT {prefixed('r', REPLAY_COLUMNS)},
           greatest(coalesce(r.retry_at, 0), coalesce(r.lease_until, 0)) AS due_at
    FROM {_DUE_REPLAYS}
      AND {_REPLAY_HAS_WORK}
    ORDER BY due_at, r.id
    LIMIT %(limit)s - (SELECT count(*) FROM live)
    FOR UPDATE OF r SKIP LOCKED
), finished AS (
    UPDATE replays SET state = 'done', updated_at = %(now)s WHERE id IN (
        SELECT r.id FROM {_DUE_REPLAYS}
          AND NOT {_REPLAY_HAS_WORK}
        FOR UPDATE OF r SKIP LOCKED)
), leased_live AS (
    UPDATE subscriptions SET lease_owner = %(owner)s, lease_until = %(lease_until)s
    WHERE id IN (SELECT id FROM live)
), leased_replays AS (
    UPDATE replays SET lease_owner = %(owner)s, lease_until = %(lease_until)s
    WHERE id IN (SELECT id FROM replay)
)
SELECT {_NO_REPLAY},
       {prefixed('l', SUBSCRIPTION_COLUMNS)}, {prefixed('c', CALLBACK_COLUMNS)},
       0 AS lane_kind, l.due_at AS lane_due, l.id AS lane_id
FROM live l JOIN callbacks c ON c.domain = l.domain AND c.name = l.callback
UNION ALL
SELECT {prefixed('r', REPLAY_COLUMNS)}, {prefixed('s', SUBSCRIPTION_COLUMNS)},
       {prefixed('c', CALLBACK_COLUMNS)}, 1, r.due_at, r.id
FROM replay r JOIN subscriptions s ON s.id = r.subscription_id {JOIN_CALLBACK}
ORDER BY lane_kind, lane_due, lane_id
"""
# The claimed lanes' open batches, read by a statement after the claim: its snapshot
# holds whatever a lane's previous holder committed before the claim locked the lane.
OPEN_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM deliveries
WHERE (subscription_id, replay_id) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))
  AND state IN ('pending', 'queued')
ORDER BY id
"""
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

# A new batch is its lane's head if the lane has none, else it is queued behind the head.
INSERT_DELIVERY = """
INSERT INTO deliveries (msg_id, domain, subscription_id, replay_id, after_index, first_index,
                        last_index, advance_to, count, created_at, updated_at, state)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
        CASE WHEN EXISTS (SELECT 1 FROM deliveries
                          WHERE subscription_id = %s AND replay_id = %s AND state = 'pending')
             THEN 'queued' ELSE 'pending' END)
RETURNING id, state
"""
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
DELIVERY_STATE = "SELECT state FROM deliveries WHERE id = %s"
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

PURGE_LOG = (
    """DELETE FROM delivery_attempts
       WHERE id IN (SELECT id FROM delivery_attempts WHERE at < %s LIMIT %s)""",
    """DELETE FROM deliveries WHERE id IN (
       SELECT id FROM deliveries WHERE state NOT IN ('pending', 'queued') AND updated_at < %s
       LIMIT %s)""",
    """DELETE FROM replays WHERE id IN (
       SELECT id FROM replays WHERE state <> 'running' AND updated_at < %s LIMIT %s)""",
)
