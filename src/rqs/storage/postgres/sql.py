"""The PostgreSQL dialect's queries, by name.

Parameters are psycopg placeholders (``%(name)s`` / ``%s``); psycopg sends them as bind
parameters, so the server plans with the real values (partition pruning at plan time).
"""

from __future__ import annotations

import functools

DAY_US = 86_400_000_000  # one events partition per UTC day of received_at

# --- schema and partitions ---------------------------------------------------------

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text   PRIMARY KEY,
    applied_at bigint NOT NULL
)
"""
MIGRATIONS_TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
APPLIED_MIGRATIONS = "SELECT version FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)"
ADVISORY_LOCK = "SELECT pg_advisory_lock(%s)"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%s)"
ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock(%s)"

# Partitions are named by the application, events_pYYYYMMDD, so the name gives the day.
# A partition whose concurrent detach was interrupted is still listed, flagged pending.
PARTITIONS = """
SELECT c.relname, i.inhdetachpending
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass
"""
# Detached by an interrupted purge but not dropped yet.
ORPHAN_PARTITIONS = """
SELECT c.relname FROM pg_class c
WHERE c.relname ~ '^events_p[0-9]{8}$' AND c.relkind = 'r' AND NOT c.relispartition
  AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'events'::regclass)
"""
# CREATE TABLE ... PARTITION OF would lock the parent ACCESS EXCLUSIVE (stalling every
# reader and writer); creating the table alone and attaching it needs only SHARE UPDATE
# EXCLUSIVE on the parent, which ingest and polls do not conflict with.
CREATE_PARTITION_TABLE = "CREATE TABLE {name} (LIKE events INCLUDING ALL)"
ATTACH_PARTITION = "ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"
# Likewise DROP TABLE of an attached partition locks the parent ACCESS EXCLUSIVE;
# detaching concurrently first does not block other sessions.
DETACH_PARTITION = "ALTER TABLE events DETACH PARTITION {name} CONCURRENTLY"
FINALIZE_DETACH = "ALTER TABLE events DETACH PARTITION {name} FINALIZE"
DROP_TABLE = "DROP TABLE IF EXISTS {name}"
SET_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '{ms}ms'"

# --- append --------------------------------------------------------------------------

ENSURE_DOMAIN = "INSERT INTO domains (name) VALUES (%s) ON CONFLICT (name) DO NOTHING"
LOCK_DOMAIN = """
SELECT next_index, last_received_at, purged_through FROM domains WHERE id = %s FOR UPDATE
"""
# Text arrays go in binary (%b): no quoting of every element.
KNOWN_IDS = "SELECT ext_id, idx FROM event_ids WHERE domain_id = %s AND ext_id = ANY(%b::text[])"
KNOWN_IDS_SINCE = """
SELECT ext_id, idx FROM event_ids
WHERE domain_id = %s AND idx >= %s AND ext_id = ANY(%b::text[])
"""
DELETE_IDS = "DELETE FROM event_ids WHERE domain_id = %s AND ext_id = ANY(%b::text[])"
EVENT_COLUMNS_IN = (
    "domain_id, idx, received_at, type, channel, occurred_at, ext_id, campaign_id,"
    " campaign_name, riid, customer_id, recipient, message, payload"
)
COPY_EVENTS = f"COPY events ({EVENT_COLUMNS_IN}) FROM STDIN (FORMAT BINARY)"
COPY_EVENT_IDS = "COPY event_ids (domain_id, ext_id, idx) FROM STDIN (FORMAT BINARY)"
ADVANCE_DOMAIN = "UPDATE domains SET next_index = %s, last_received_at = %s WHERE id = %s"
INSERT_COMMIT = """
INSERT INTO commits (domain_id, first_index, last_index, received_at) VALUES (%s, %s, %s, %s)
"""
BUMP_TYPE_COUNTS = """
INSERT INTO type_counts AS t (domain_id, type, channel, retained, ingested)
SELECT %s, u.type, u.channel, u.n, u.n
FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(type, channel, n)
ON CONFLICT (domain_id, type, channel) DO UPDATE
SET retained = t.retained + EXCLUDED.retained, ingested = t.ingested + EXCLUDED.ingested
"""
BUMP_DAY_COUNTS = """
INSERT INTO day_counts AS t (day, domain_id, type, channel, events)
SELECT %s, %s, u.type, u.channel, u.n
FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(type, channel, n)
ON CONFLICT (day, domain_id, type, channel) DO UPDATE SET events = t.events + EXCLUDED.events
"""

# --- reads ---------------------------------------------------------------------------

DOMAIN_STATE = "SELECT id, next_index, purged_through FROM domains WHERE name = %s"
ALL_DOMAINS = "SELECT name FROM domains ORDER BY name"
COUNTS = """
SELECT t.type, t.channel, t.retained, t.ingested
FROM type_counts t JOIN domains d ON d.id = t.domain_id
WHERE d.name = %s ORDER BY t.type, t.channel
"""

EVENT_COLUMNS = "e.idx, e.type, e.channel, e.received_at, e.payload, e.ext_id, e.occurred_at"

# The commit holding an index gives that event's received_at exactly. Both lookups are
# uncorrelated subqueries (run once, before the scan), so the executor prunes every
# partition but the event's own.
GET_EVENT = f"""
SELECT {EVENT_COLUMNS} FROM events e
WHERE e.domain_id = (SELECT id FROM domains WHERE name = %(domain)s
                     AND purged_through < %(index)s)
  AND e.idx = %(index)s
  AND e.received_at = (
      SELECT c.received_at FROM commits c
      WHERE c.domain_id = (SELECT id FROM domains WHERE name = %(domain)s)
        AND c.last_index >= %(index)s
      ORDER BY c.last_index LIMIT 1)
"""

# Everything a scan needs before reading events, in one round trip: the domain, the
# index bounds that since/until translate to, and the receive times of the first and
# last candidate events (received_at never decreases with the index), which bound the
# partitions the event queries touch.
SCAN_PLAN = """
SELECT d.id, d.next_index, d.purged_through,
    (SELECT c.first_index FROM commits c
     WHERE c.domain_id = d.id AND c.received_at >= %(since)s
     ORDER BY c.received_at, c.last_index LIMIT 1) AS since_index,
    (SELECT c.first_index FROM commits c
     WHERE c.domain_id = d.id AND c.received_at >= %(until)s
     ORDER BY c.received_at, c.last_index LIMIT 1) AS until_index,
    (SELECT c.received_at FROM commits c
     WHERE c.domain_id = d.id AND c.last_index > greatest(%(after)s, d.purged_through)
     ORDER BY c.last_index LIMIT 1) AS first_time,
    (SELECT c.received_at FROM commits c
     WHERE c.domain_id = d.id AND c.last_index >= least(%(through)s, d.next_index - 1)
     ORDER BY c.last_index LIMIT 1) AS last_time
FROM domains d WHERE d.name = %(domain)s
"""

# One page of a scan in index order (keyset: idx > after). {filters} is a sequence of
# the SCAN_* fragments below.
SCAN_RANGE = f"""
SELECT {EVENT_COLUMNS} FROM events e
WHERE e.domain_id = %(domain_id)s AND e.idx > %(after)s AND e.idx <= %(hi)s
  AND e.received_at >= %(t0)s AND e.received_at <= %(t1)s{{filters}}
ORDER BY e.idx LIMIT %(n)s
"""
SCAN_ONE_TYPE = f"""
SELECT {EVENT_COLUMNS} FROM events e
WHERE e.domain_id = %(domain_id)s AND e.type = %(type)s AND e.idx > %(after)s
  AND e.idx <= %(hi)s AND e.received_at >= %(t0)s AND e.received_at <= %(t1)s{{filters}}
ORDER BY e.idx LIMIT %(n)s
"""


@functools.cache
def scan_types_merged(count: int) -> str:
    """A few types as one ordered stream: each type's range as ``SCAN_ONE_TYPE`` reads it
    (parameters ``type0`` ...), merged by PostgreSQL. The ORDER BY and LIMIT inside each
    branch are what make it a Merge Append that reads each branch only as far as the merge
    gets (without them PostgreSQL 15 appended and sorted every candidate)."""
    branches = [SCAN_ONE_TYPE.replace("%(type)s", f"%(type{i})s").strip()
                for i in range(count)]
    return "(" + ")\nUNION ALL (".join(branches) + ")\nORDER BY idx LIMIT %(n)s\n"


# Many types: one ordered (domain_id, type, idx) range per type, each from its own
# position, merged by the caller.
SCAN_TYPES = f"""
SELECT {EVENT_COLUMNS}
FROM unnest(%(types)s::text[], %(positions)s::bigint[]) AS s(type, pos)
CROSS JOIN LATERAL (
    SELECT {EVENT_COLUMNS} FROM events e
    WHERE e.domain_id = %(domain_id)s AND e.type = s.type AND e.idx > s.pos
      AND e.idx <= %(hi)s AND e.received_at >= %(t0)s AND e.received_at <= %(t1)s{{filters}}
    ORDER BY e.idx LIMIT %(n)s
) e
"""
SCAN_EXCLUDE_TYPES = " AND e.type <> ALL(%(exclude)s::text[])"
SCAN_CHANNELS = " AND e.channel = ANY(%(channels)s::text[])"
SCAN_CAMPAIGN = " AND (e.campaign_id = %(campaign)s OR e.campaign_name = %(campaign)s)"

# --- retention -------------------------------------------------------------------------

TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock(%s)"
SET_SESSION_LOCK_TIMEOUT = "SET lock_timeout = '{ms}ms'"
RESET_LOCK_TIMEOUT = "RESET lock_timeout"
# Purging a partition's worth of events touches the counts of every domain: lock them
# all, in id order, so appends (which lock their one domain first) cannot deadlock.
LOCK_ALL_DOMAINS = "SELECT id FROM domains ORDER BY id FOR UPDATE"
LOCK_DOMAIN_BY_ID = "SELECT purged_through FROM domains WHERE id = %s FOR UPDATE"
# Per domain, the last index received before a time: purging up to it never goes past
# the cutoff. Only domains with something to purge are listed.
HORIZONS = """
SELECT d.id, h.last_index FROM domains d
CROSS JOIN LATERAL (
    SELECT c.last_index FROM commits c WHERE c.domain_id = d.id AND c.received_at < %s
    ORDER BY c.received_at DESC, c.last_index DESC LIMIT 1
) h
WHERE h.last_index > d.purged_through
ORDER BY d.name
"""
# Everything received before the end of an expired day is gone with its partition.
EXPIRE_DOMAINS = """
UPDATE domains d SET purged_through = h.last_index
FROM domains src CROSS JOIN LATERAL (
    SELECT c.last_index FROM commits c WHERE c.domain_id = src.id AND c.received_at < %s
    ORDER BY c.received_at DESC, c.last_index DESC LIMIT 1
) h
WHERE d.id = src.id AND h.last_index > d.purged_through
"""
# A whole day expires: what its partition held leaves the retained counts.
EXPIRE_DAY_COUNTS = """
WITH gone AS (DELETE FROM day_counts WHERE day = %s RETURNING domain_id, type, channel, events)
UPDATE type_counts t SET retained = t.retained - g.events
FROM gone g
WHERE t.domain_id = g.domain_id AND t.type = g.type AND t.channel = g.channel
RETURNING g.events
"""
# Rows of the partition that straddles the cutoff go in bounded batches.
DELETE_EVENTS = """
WITH gone AS (
    DELETE FROM events
    WHERE domain_id = %(domain_id)s AND idx > %(lo)s AND idx <= %(hi)s
      AND received_at < %(cutoff)s
    RETURNING type, channel, received_at
)
SELECT type, channel, received_at / 86400000000 AS day, count(*) FROM gone
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
DROP_TYPE_COUNT = """
UPDATE type_counts SET retained = retained - %s WHERE domain_id = %s AND type = %s AND channel = %s
"""
DROP_DAY_COUNT = """
UPDATE day_counts SET events = events - %s
WHERE day = %s AND domain_id = %s AND type = %s AND channel = %s
"""
SET_PURGED = "UPDATE domains SET purged_through = %s WHERE id = %s"

# Bookkeeping of purged events (ids, commits) is removed behind purged_through, in
# bounded batches; it is harmless meanwhile (lookups ignore it).
UNTIDY_DOMAINS = """
SELECT id, tidied_through, purged_through FROM domains
WHERE tidied_through < purged_through ORDER BY id
"""
TIDY_EVENT_IDS = """
DELETE FROM event_ids WHERE (domain_id, ext_id) IN (
    SELECT domain_id, ext_id FROM event_ids
    WHERE domain_id = %(domain_id)s AND idx > %(lo)s AND idx <= %(hi)s
    ORDER BY idx LIMIT %(n)s
) RETURNING idx
"""
TIDY_COMMITS = """
DELETE FROM commits WHERE (domain_id, last_index) IN (
    SELECT domain_id, last_index FROM commits
    WHERE domain_id = %(domain_id)s AND last_index > %(lo)s AND last_index <= %(hi)s
    ORDER BY last_index LIMIT %(n)s
) RETURNING last_index
"""
SET_TIDIED = "UPDATE domains SET tidied_through = greatest(tidied_through, %s) WHERE id = %s"

# --- keys, topics, cursors -------------------------------------------------------------

INSERT_KEY = """
INSERT INTO api_keys (id, name, scope, domain, secret_hash, created_at, revoked_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
KEY_COLUMNS = "id, name, scope, domain, secret_hash, created_at, revoked_at"
GET_KEY = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = %s"
LIST_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
REVOKE_KEY = "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL"

INSERT_TOPIC = """
INSERT INTO topics (domain, name, types, channels, created_at) VALUES (%s, %s, %s, %s, %s)
"""
TOPIC_COLUMNS = "domain, name, types, channels, created_at"
GET_TOPIC = f"SELECT {TOPIC_COLUMNS} FROM topics WHERE domain = %s AND name = %s"
LIST_TOPICS = f"SELECT {TOPIC_COLUMNS} FROM topics WHERE domain = %s ORDER BY name"
DELETE_TOPIC = "DELETE FROM topics WHERE domain = %s AND name = %s"

CURSOR_KEY = "key_id = %s AND domain = %s AND name = %s"
GET_CURSOR = f"SELECT position, polled, skipped FROM cursors WHERE {CURSOR_KEY}"
LIST_CURSORS = """
SELECT c.key_id, c.name, c.position, c.polled, c.skipped, c.updated_at
FROM cursors c JOIN api_keys k ON k.id = c.key_id
WHERE c.domain = %s AND k.revoked_at IS NULL
ORDER BY c.key_id, c.name
"""
# The lease inserts a missing row inside its transaction, so a concurrent lease waits
# on it too, and a lease that never commits leaves nothing behind.
ENSURE_CURSOR = """
INSERT INTO cursors (key_id, domain, name, position, polled, skipped, updated_at)
VALUES (%s, %s, %s, 0, 0, 0, %s) ON CONFLICT (key_id, domain, name) DO NOTHING
"""
LOCK_CURSOR = f"{GET_CURSOR} FOR UPDATE"
UPDATE_CURSOR = f"""
UPDATE cursors SET position = %s, polled = polled + %s, skipped = skipped + %s, updated_at = %s
WHERE {CURSOR_KEY}
"""
