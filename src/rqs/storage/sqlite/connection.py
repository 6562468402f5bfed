"""Opening SQLite connections with rqs' embedded defaults, and applying migrations."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import apsw

BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_PAGES = 4_000  # WAL pages (16 KiB) that make a checkpoint due: ~64 MiB
MIGRATIONS_PACKAGE = "rqs.storage.sqlite"


def connect(path: Path, synchronous: str = "FULL", *, readonly: bool = False) -> apsw.Connection:
    """A connection in WAL mode. ``synchronous=FULL`` makes every commit durable on return."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    conn = apsw.Connection(str(path), flags=flags)
    conn.setbusytimeout(BUSY_TIMEOUT_MS)
    # Plans must not depend on bound values. Otherwise SQLite (apsw builds it with STAT4)
    # marks a statement whose WHERE it compared with a partial index, or with constants,
    # for re-preparation at every new binding: profiled, re-parsing two of push
    # delivery's statements was a quarter of the writer's time (the lane lookup 9.6 ->
    # 3.8 µs, promoting the next batch 12.7 -> 4.5 µs). Every partial index's condition
    # is a literal in the SQL, so none is lost.
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_QPSG, 1)
    # Only takes effect on a new file: 16 KiB pages suit ~500-byte rows (measured ~15%
    # faster inserts than 4 KiB).
    conn.execute("PRAGMA page_size = 16384")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys = OFF")
    # Each request's savepoint journals the pages it touches; in memory, not a temp file.
    conn.execute("PRAGMA temp_store = MEMORY")
    # The writer's large page cache keeps the right edge of the table and its index hot;
    # readers stream through cold pages once, so a small cache (and the OS') is enough.
    conn.execute(f"PRAGMA cache_size = {-16384 if readonly else -131072}")
    # Fewer, larger checkpoints. The writer process replaces this with its own checkpoint
    # thread at the same threshold (writer.Checkpoints); other connections rarely write.
    conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def available_migrations() -> list[tuple[str, str]]:
    folder = resources.files(MIGRATIONS_PACKAGE).joinpath("migrations")
    found = sorted(
        (entry.name.removesuffix(".sql"), entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return found


def applied_migrations(conn: apsw.Connection) -> set[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def pending(conn: apsw.Connection) -> list[str]:
    done = applied_migrations(conn)
    return [name for name, _ in available_migrations() if name not in done]


def upgrade(conn: apsw.Connection) -> list[str]:
    """Apply every pending migration, each in its own transaction."""
    applied: list[str] = []
    conn.execute("BEGIN IMMEDIATE")  # one upgrader at a time, even across processes
    try:
        done = applied_migrations(conn)
        for name, sql in available_migrations():
            if name in done:
                continue
            conn.execute("SAVEPOINT migration")
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (name, int(time.time() * 1_000_000)),
            )
            conn.execute("RELEASE migration")
            applied.append(name)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied
