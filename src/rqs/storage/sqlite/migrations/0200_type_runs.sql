-- Types are found through runs instead of a per-row index on events.type.
--
-- Each append writes, for every type it holds, one row: the pos of that type's first and
-- last event in the append and, unless they are contiguous, the offsets of all of them
-- from the first (little-endian unsigned 32-bit integers). An append of 1,000 events of
-- 26 types writes 26 small rows instead of 1,000 index entries; the index cost ~40% of
-- the insert rate, mostly copying its pages into each request's savepoint journal.

CREATE TABLE type_runs (
    type      TEXT    NOT NULL,
    first_pos INTEGER NOT NULL,
    last_pos  INTEGER NOT NULL,
    offsets   BLOB,                                -- NULL: every pos from first to last
    PRIMARY KEY (type, first_pos)
) WITHOUT ROWID;

-- Existing events become runs of one.
INSERT INTO type_runs (type, first_pos, last_pos, offsets)
SELECT type, pos, pos, NULL FROM events;

DROP INDEX events_by_type;
