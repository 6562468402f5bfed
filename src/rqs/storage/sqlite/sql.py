"""The SQLite dialect's queries, by name."""

from __future__ import annotations

INDEX_BITS = 40  # pos = (domain id << 40) + index

ENSURE_DOMAIN = "INSERT INTO domains (name) VALUES (?) ON CONFLICT (name) DO NOTHING"
DOMAIN_STATE = "SELECT id, next_index, last_received_at, purged_through FROM domains WHERE name = ?"
DOMAIN_ID = "SELECT id FROM domains WHERE name = ?"
ALL_DOMAINS = "SELECT id, name, next_index, purged_through FROM domains ORDER BY name"

# Columns after pos and received_at follow rqs.domain.events.NewEvent's field order; the
# VALUES rows are generated (rqs.storage.sqlite.ingest.insert_sql).
INSERT_EVENTS_HEAD = """
INSERT INTO events (pos, received_at, type, channel, payload, ext_id, occurred_at, campaign_id,
                    campaign_name, riid, customer_id, recipient, message)
VALUES
"""
INSERT_RUN = "INSERT INTO type_runs (type, first_pos, last_pos, offsets) VALUES (?, ?, ?, ?)"
# A type's runs of one domain: first_pos from the domain's base (index 0) on.
RUN_AT = """
SELECT first_pos FROM type_runs WHERE type = ? AND first_pos >= ? AND first_pos <= ?
ORDER BY first_pos DESC LIMIT 1
"""
RUNS_AFTER = """
SELECT first_pos, last_pos, offsets FROM type_runs
WHERE type = ? AND first_pos > ? AND first_pos <= ? ORDER BY first_pos LIMIT ?
"""
INSERT_EVENT_ID = "INSERT INTO event_ids (domain_id, ext_id, idx) VALUES (?, ?, ?)"
ADVANCE_DOMAIN = "UPDATE domains SET next_index = ?, last_received_at = ? WHERE id = ?"
INSERT_COMMIT = (
    "INSERT INTO commits (domain_id, first_index, last_index, received_at) VALUES (?, ?, ?, ?)"
)
BUMP_COUNT = """
INSERT INTO type_counts (domain_id, type, channel, retained, ingested) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (domain_id, type, channel)
DO UPDATE SET retained = retained + excluded.retained, ingested = ingested + excluded.ingested
"""

EVENT_COLUMNS = "pos, type, channel, received_at, payload, ext_id, occurred_at"
GET_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE pos = ?"

# Time to index: received_at never decreases with the index, so these are exact.
FIRST_INDEX_AT_OR_AFTER = """
SELECT first_index FROM commits WHERE domain_id = ? AND received_at >= ?
ORDER BY received_at, first_index LIMIT 1
"""

COUNTS = """
SELECT type, channel, retained, ingested FROM type_counts
WHERE domain_id = ? ORDER BY type, channel
"""

PURGE_HORIZON = """
SELECT max(last_index) FROM commits WHERE domain_id = ? AND received_at < ?
"""
PURGE_COUNTS = """
SELECT type, channel, count(*) FROM events WHERE pos > ? AND pos <= ? GROUP BY type, channel
"""
PURGE_EVENTS = "DELETE FROM events WHERE pos > ? AND pos <= ?"
# Runs wholly inside the purged range; one that straddles its end goes with a later step.
PURGE_RUNS = """
DELETE FROM type_runs WHERE type = ? AND first_pos > ? AND first_pos <= ? AND last_pos <= ?
"""
PURGE_EVENT_IDS = "DELETE FROM event_ids WHERE domain_id = ? AND idx > ? AND idx <= ?"
PURGE_COMMITS = "DELETE FROM commits WHERE domain_id = ? AND last_index <= ?"
DROP_COUNT = """
UPDATE type_counts SET retained = retained - ? WHERE domain_id = ? AND type = ? AND channel = ?
"""
SET_PURGED = "UPDATE domains SET purged_through = ? WHERE id = ?"

INSERT_KEY = """
INSERT INTO api_keys (id, name, scope, domain, secret_hash, created_at, revoked_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
KEY_COLUMNS = "id, name, scope, domain, secret_hash, created_at, revoked_at"
GET_KEY = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"
LIST_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
REVOKE_KEY = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"

INSERT_TOPIC = """
INSERT INTO topics (domain, name, types, channels, created_at) VALUES (?, ?, ?, ?, ?)
"""
TOPIC_COLUMNS = "domain, name, types, channels, created_at"
GET_TOPIC = f"SELECT {TOPIC_COLUMNS} FROM topics WHERE domain = ? AND name = ?"
LIST_TOPICS = f"SELECT {TOPIC_COLUMNS} FROM topics WHERE domain = ? ORDER BY name"
DELETE_TOPIC = "DELETE FROM topics WHERE domain = ? AND name = ?"

GET_CURSOR = """
SELECT position, polled, skipped FROM cursors WHERE key_id = ? AND domain = ? AND name = ?
"""
LIST_CURSORS = """
SELECT c.key_id, c.name, c.position, c.polled, c.skipped, c.updated_at
FROM cursors c JOIN api_keys k ON k.id = c.key_id
WHERE c.domain = ? AND k.revoked_at IS NULL
ORDER BY c.key_id, c.name
"""
PUT_CURSOR = """
INSERT INTO cursors (key_id, domain, name, position, polled, skipped, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key_id, domain, name) DO UPDATE SET
    position = excluded.position,
    polled = cursors.polled + excluded.polled,
    skipped = cursors.skipped + excluded.skipped,
    updated_at = excluded.updated_at
"""
