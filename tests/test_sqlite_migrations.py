"""SQLite schema migrations from an empty file up to the newest, and the CLI around them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from rqs.cli.main import cli
from rqs.storage.sqlite import connection


def test_upgrade_from_empty_applies_every_migration_once(tmp_path: Path) -> None:
    conn = connection.connect(tmp_path / "rqs.db")
    names = [name for name, _ in connection.available_migrations()]
    assert connection.pending(conn) == names
    assert connection.upgrade(conn) == names
    assert connection.pending(conn) == []
    assert connection.upgrade(conn) == []
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"events", "domains", "commits", "event_ids", "type_counts", "api_keys", "topics",
            "cursors", "schema_migrations"} <= tables
    conn.close()


def test_db_check_and_upgrade_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    before = runner.invoke(cli, ["db", "check", "--data-dir", str(tmp_path)])
    assert before.exit_code == 1 and "pending" in before.output
    up = runner.invoke(cli, ["db", "upgrade", "--data-dir", str(tmp_path)])
    assert up.exit_code == 0 and "applied: 0001_initial" in up.output, up.output
    after = runner.invoke(cli, ["db", "check", "--data-dir", str(tmp_path)])
    assert after.exit_code == 0 and "up to date" in after.output
