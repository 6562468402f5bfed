-- rqs SQLite schema, version 1.
--
-- An event's per-domain index is folded into the rowid: pos = (domain id << 40) + index.
-- The table is then clustered by (domain, index), every append lands at the right edge
-- of its domain's range, and "events of a domain after index N" is one rowid range.

CREATE TABLE domains (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    next_index       INTEGER NOT NULL DEFAULT 1,
    last_received_at INTEGER NOT NULL DEFAULT 0,  -- Unix µs; received_at never goes back
    purged_through   INTEGER NOT NULL DEFAULT 0   -- retention removed every index <= this
);

CREATE TABLE events (
    pos           INTEGER PRIMARY KEY,            -- (domain id << 40) + index
    type          TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,               -- Unix µs, commit time
    occurred_at   INTEGER,                        -- Unix µs, when the sender says so
    ext_id        TEXT,                           -- the sender's id, if it gave one
    campaign_id   TEXT,
    campaign_name TEXT,
    riid          TEXT,
    customer_id   TEXT,
    recipient     TEXT,
    message       TEXT,                           -- inbound SMS text
    payload       BLOB    NOT NULL                -- the item exactly as received
);

-- Entries are (type, pos): "events of type T after index N" is one index range.
CREATE INDEX events_by_type ON events (type);

-- Only events that came with an id have a row here (idempotent re-sends).
CREATE TABLE event_ids (
    domain_id INTEGER NOT NULL,
    ext_id    TEXT    NOT NULL,
    idx       INTEGER NOT NULL,
    PRIMARY KEY (domain_id, ext_id)
) WITHOUT ROWID;
CREATE INDEX event_ids_by_index ON event_ids (domain_id, idx);

-- One row per committed ingest request: maps insertion time to index ranges.
CREATE TABLE commits (
    domain_id   INTEGER NOT NULL,
    first_index INTEGER NOT NULL,
    last_index  INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (domain_id, first_index)
) WITHOUT ROWID;
CREATE INDEX commits_by_time ON commits (domain_id, received_at);

CREATE TABLE type_counts (
    domain_id INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    channel   TEXT    NOT NULL,
    retained  INTEGER NOT NULL DEFAULT 0,
    ingested  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain_id, type, channel)
) WITHOUT ROWID;

CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    scope       TEXT    NOT NULL CHECK (scope IN ('ingest', 'read', 'admin')),
    domain      TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE topics (
    domain     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    types      TEXT    NOT NULL,                  -- JSON array
    channels   TEXT    NOT NULL,                  -- JSON array
    created_at INTEGER NOT NULL,
    PRIMARY KEY (domain, name)
) WITHOUT ROWID;

CREATE TABLE cursors (
    key_id     TEXT    NOT NULL,
    domain     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    polled     INTEGER NOT NULL DEFAULT 0,
    skipped    INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, domain, name)
) WITHOUT ROWID;
