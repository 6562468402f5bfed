-- Push delivery: callbacks, subscriptions, their batches (deliveries), attempts, replays.
--
-- A "lane" is a subscription's live feed (replay_id 0) or one replay of it. Each lane
-- has a position, a lease (lease_owner, lease_until) and, while its head batch waits to
-- be retried, retry_at. Times are Unix microseconds.

CREATE TABLE callbacks (
    domain        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    url           TEXT    NOT NULL,
    batch_size    INTEGER NOT NULL,
    auth_user     TEXT,
    auth_password TEXT,
    backup_url    TEXT,
    secrets       TEXT    NOT NULL,               -- JSON [[whsec_..., expires_at|null], ...]
    status        TEXT    NOT NULL DEFAULT 'ACTIVE',
    status_reason TEXT,
    failing_since INTEGER,
    verified_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (domain, name)
) WITHOUT ROWID;

-- AUTOINCREMENT: ids are never reused, so a re-created name starts clean.
CREATE TABLE subscriptions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    domain        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    callback      TEXT    NOT NULL,
    event_types   TEXT    NOT NULL,               -- JSON array
    filters       TEXT    NOT NULL,               -- JSON [[types], [campaign names]]
    status        TEXT    NOT NULL DEFAULT 'ACTIVE',
    status_reason TEXT,
    position      INTEGER NOT NULL DEFAULT 0,
    retry_at      INTEGER,
    lease_owner   TEXT,
    lease_until   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (domain, name)
);
CREATE INDEX subscriptions_by_callback ON subscriptions (domain, callback);

CREATE TABLE replays (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain          TEXT    NOT NULL,
    subscription_id INTEGER NOT NULL,
    after_index     INTEGER NOT NULL,
    through_index   INTEGER NOT NULL,
    since           INTEGER,
    until           INTEGER,
    position        INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'running',
    delivered       INTEGER NOT NULL DEFAULT 0,
    retry_at        INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX replays_by_subscription ON replays (subscription_id, id);
CREATE INDEX replays_running ON replays (state) WHERE state = 'running';

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id          TEXT    NOT NULL,             -- webhook-id, the same for every retry
    domain          TEXT    NOT NULL,
    subscription_id INTEGER NOT NULL,
    replay_id       INTEGER NOT NULL DEFAULT 0,
    after_index     INTEGER NOT NULL,
    first_index     INTEGER NOT NULL,
    last_index      INTEGER NOT NULL,
    advance_to      INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',  -- pending|queued|succeeded|dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    body            BLOB,                         -- kept only once a first attempt failed
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- One pending batch per lane: this is the ordering guarantee, enforced by the schema.
CREATE UNIQUE INDEX deliveries_pending ON deliveries (subscription_id, replay_id)
    WHERE state = 'pending';
CREATE INDEX deliveries_queued ON deliveries (subscription_id, replay_id, id)
    WHERE state = 'queued';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);
CREATE INDEX deliveries_by_state ON deliveries (domain, state, id);
CREATE INDEX deliveries_by_age ON deliveries (updated_at)
    WHERE state NOT IN ('pending', 'queued');

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    url         TEXT    NOT NULL,
    status_code INTEGER,
    latency_ms  REAL    NOT NULL,
    error       TEXT,
    outcome     TEXT    NOT NULL
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);
CREATE INDEX delivery_attempts_by_time ON delivery_attempts (at);
