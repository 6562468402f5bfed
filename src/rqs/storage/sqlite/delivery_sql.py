"""The SQLite delivery store's queries, by name (numbered parameters: ?1, ?2, ...)."""

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

_marks = ", ".join("?" * len(CALLBACK_COLUMNS.split(",")))
INSERT_CALLBACK = f"INSERT INTO callbacks ({CALLBACK_COLUMNS}) VALUES ({_marks})"
GET_CALLBACK = f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE domain = ? AND name = ?"
LIST_CALLBACKS = f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE domain = ? ORDER BY name"
CALLBACK_STATUS = "SELECT status FROM callbacks WHERE domain = ? AND name = ?"
UPDATE_CALLBACK = """
UPDATE callbacks SET url = ?, batch_size = ?, auth_user = ?, auth_password = ?, backup_url = ?,
    secrets = ?, status = ?, status_reason = ?, failing_since = ?, verified_at = ?,
    created_at = ?, updated_at = ?
WHERE domain = ? AND name = ?
"""
CALLBACK_IN_USE = "SELECT 1 FROM subscriptions WHERE domain = ? AND callback = ? LIMIT 1"
DELETE_CALLBACK = "DELETE FROM callbacks WHERE domain = ? AND name = ?"
REENABLE = (
    """UPDATE deliveries SET attempts = 0, next_attempt_at = NULL WHERE state = 'pending'
       AND subscription_id IN (SELECT id FROM subscriptions WHERE domain = ?1 AND callback = ?2)""",
    "UPDATE subscriptions SET retry_at = NULL WHERE domain = ?1 AND callback = ?2",
    """UPDATE replays SET retry_at = NULL WHERE subscription_id IN
       (SELECT id FROM subscriptions WHERE domain = ?1 AND callback = ?2)""",
)
CALLBACK_FAILING = """
UPDATE callbacks SET failing_since = coalesce(failing_since, ?1) WHERE domain = ?2 AND name = ?3
"""
CALLBACK_RECOVERED = """
UPDATE callbacks SET failing_since = NULL
WHERE domain = ?1 AND name = ?2 AND failing_since IS NOT NULL
"""
DISABLE_CALLBACK = """
UPDATE callbacks SET status = 'DISABLED', status_reason = ?1, updated_at = ?2
WHERE domain = ?3 AND name = ?4
"""

_sub_values = ", ".join("?" * (len(SUBSCRIPTION_COLUMNS.split(",")) - 1))
INSERT_SUBSCRIPTION = (f"INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS.split(', ', 1)[1]}) "
                       f"VALUES ({_sub_values})")
GET_SUBSCRIPTION = f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE domain = ? AND name = ?"
LIST_SUBSCRIPTIONS = (f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE domain = ? "
                      "ORDER BY name")
LIST_SUBSCRIPTIONS_OF = (f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions "
                         "WHERE domain = ? AND callback = ? ORDER BY name")
SUBSCRIPTION_ID = "SELECT id FROM subscriptions WHERE domain = ? AND name = ?"
UPDATE_SUBSCRIPTION = """
UPDATE subscriptions SET callback = ?, event_types = ?, filters = ?, status = ?, status_reason = ?,
    updated_at = ?
WHERE domain = ? AND name = ?
"""
DELETE_SUBSCRIPTION_ALL = (
    """DELETE FROM delivery_attempts
       WHERE delivery_id IN (SELECT id FROM deliveries WHERE subscription_id = ?1)""",
    "DELETE FROM deliveries WHERE subscription_id = ?1",
    "DELETE FROM replays WHERE subscription_id = ?1",
    "DELETE FROM subscriptions WHERE id = ?1",
)
LANE_STATE = f"""
SELECT s.domain, s.callback, s.lease_owner, s.status = 'ACTIVE' AND c.status = 'ACTIVE'
FROM subscriptions s {JOIN_CALLBACK} WHERE s.id = ?
"""
REPLAY_STATE = "SELECT lease_owner, state = 'running' FROM replays WHERE id = ?"
SUBSCRIPTION_OWNER = "SELECT lease_owner FROM subscriptions WHERE id = ?"
REPLAY_OWNER = "SELECT lease_owner FROM replays WHERE id = ?"

ACTIVE_DOMAINS = f"""
SELECT DISTINCT s.domain FROM subscriptions s {JOIN_CALLBACK}
WHERE s.status = 'ACTIVE' AND c.status = 'ACTIVE'
"""
# In the order lanes came due, as the PostgreSQL store claims them (see its CLAIM).
CLAIMABLE_LIVE = f"""
SELECT {prefixed('s', SUBSCRIPTION_COLUMNS)}, {prefixed('c', CALLBACK_COLUMNS)}
FROM subscriptions s {JOIN_CALLBACK}
WHERE s.status = 'ACTIVE' AND c.status = 'ACTIVE'
  AND (s.lease_until IS NULL OR s.lease_until <= ?1) AND (s.retry_at IS NULL OR s.retry_at <= ?2)
ORDER BY max(coalesce(s.retry_at, 0), coalesce(s.lease_until, 0)), s.id
"""
CLAIMABLE_REPLAYS = f"""
SELECT {prefixed('r', REPLAY_COLUMNS)}, {prefixed('s', SUBSCRIPTION_COLUMNS)},
       {prefixed('c', CALLBACK_COLUMNS)}
FROM replays r JOIN subscriptions s ON s.id = r.subscription_id {JOIN_CALLBACK}
WHERE r.state = 'running' AND s.status = 'ACTIVE' AND c.status = 'ACTIVE'
  AND (r.lease_until IS NULL OR r.lease_until <= ?1) AND (r.retry_at IS NULL OR r.retry_at <= ?2)
ORDER BY max(coalesce(r.retry_at, 0), coalesce(r.lease_until, 0)), r.id
"""
LEASE_SUBSCRIPTION = "UPDATE subscriptions SET lease_owner = ?, lease_until = ? WHERE id = ?"
LEASE_REPLAY = "UPDATE replays SET lease_owner = ?, lease_until = ? WHERE id = ?"
RELEASE = ("UPDATE {table} SET lease_owner = NULL, lease_until = NULL "
           "WHERE id = ? AND lease_owner = ?")
MOVE_SUBSCRIPTION = """
UPDATE subscriptions SET position = max(position, coalesce(?1, position)), retry_at = ?2,
    lease_until = ?3, lease_owner = CASE WHEN ?4 THEN NULL ELSE lease_owner END
WHERE id = ?5
"""
MOVE_REPLAY = """
UPDATE replays SET position = max(position, coalesce(?1, position)), retry_at = ?2,
    lease_until = ?3, lease_owner = CASE WHEN ?4 THEN NULL ELSE lease_owner END,
    delivered = delivered + ?5, updated_at = ?7,
    state = CASE WHEN state = 'running' AND max(position, coalesce(?1, position)) >= through_index
                 THEN 'done' ELSE state END
WHERE id = ?6
"""
NEXT_DUE = """
SELECT min(t) FROM (
    SELECT min(retry_at) AS t FROM subscriptions WHERE status = 'ACTIVE'
    UNION ALL SELECT min(retry_at) FROM replays WHERE state = 'running')
"""

INSERT_DELIVERY = """
INSERT INTO deliveries (msg_id, domain, subscription_id, replay_id, after_index, first_index,
                        last_index, advance_to, count, created_at, updated_at, state)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
HAS_PENDING = ("SELECT 1 FROM deliveries "
               "WHERE subscription_id = ? AND replay_id = ? AND state = 'pending'")
OPEN_DELIVERIES = (f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscription_id = ? "
                   "AND replay_id = ? AND state IN ('pending', 'queued') ORDER BY id")
PROMOTE_QUEUED = """
UPDATE deliveries SET state = 'pending' WHERE id = (
    SELECT min(id) FROM deliveries
    WHERE subscription_id = ? AND replay_id = ? AND state = 'queued')
"""
UPDATE_DELIVERY = """
UPDATE deliveries SET state = ?1, attempts = ?2, next_attempt_at = ?3, last_status = ?4,
    last_error = ?5, updated_at = ?6,
    body = CASE WHEN ?7 = 'succeeded' THEN NULL ELSE coalesce(?8, body) END
WHERE id = ?9 AND state = 'pending'
"""
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE domain = ? AND id = ?"
DELIVERY_BODY = "SELECT body FROM deliveries WHERE id = ?"
INSERT_ATTEMPT = """
INSERT INTO delivery_attempts (delivery_id, at, url, status_code, latency_ms, error, outcome)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
LIST_ATTEMPTS = f"""
SELECT {prefixed('a', ATTEMPT_COLUMNS)} FROM delivery_attempts a
JOIN deliveries d ON d.id = a.delivery_id
WHERE d.domain = ? AND a.delivery_id = ? ORDER BY a.id
"""

INSERT_REPLAY = """
INSERT INTO replays (domain, subscription_id, after_index, through_index, since, until, position,
                     state, delivered, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
GET_REPLAY = f"SELECT {REPLAY_COLUMNS} FROM replays WHERE domain = ? AND id = ?"
LIST_REPLAYS = (f"SELECT {REPLAY_COLUMNS} FROM replays WHERE domain = ? AND subscription_id = ? "
                "ORDER BY id DESC")
CANCEL_REPLAY = """
UPDATE replays SET state = 'cancelled', updated_at = ?1, lease_owner = NULL, lease_until = NULL
WHERE domain = ?2 AND id = ?3 AND state = 'running'
"""
DROP_REPLAY_PENDING = """
UPDATE deliveries SET state = 'dead', last_error = 'replay cancelled', updated_at = ?1
WHERE replay_id = ?2 AND state IN ('pending', 'queued')
"""
FINISH_REPLAY = "UPDATE replays SET state = 'done', updated_at = ?1 WHERE id = ?2"

PURGE_LOG = (
    """DELETE FROM delivery_attempts
       WHERE id IN (SELECT id FROM delivery_attempts WHERE at < ?1 LIMIT ?2)""",
    """DELETE FROM deliveries WHERE id IN (
       SELECT id FROM deliveries WHERE state NOT IN ('pending', 'queued') AND updated_at < ?1
       LIMIT ?2)""",
    """DELETE FROM replays WHERE id IN (
       SELECT id FROM replays WHERE state <> 'running' AND updated_at < ?1 LIMIT ?2)""",
)
