"""Shared fixtures. Keep each group of fixtures in its own delimited block."""

from __future__ import annotations

# ======================================================================================
# Storage backends: `storage` (every backend), `pg_url` (a fresh migrated database).
#
# PostgreSQL: one template database is migrated per session; each test gets its own
# copy (CREATE DATABASE ... TEMPLATE, cheap) that is dropped WITH (FORCE) afterwards.
# The server comes from RQS_TEST_DATABASE_URL; when it cannot be reached the postgres
# tests are skipped locally and fail under CI=true.
# ======================================================================================
import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from rqs.settings import Settings
from rqs.storage.base import Storage

PG_ADMIN_URL = os.environ.get(
    "RQS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_POOL_SIZE = 4


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def _db_url(name: str) -> str:
    return psycopg.conninfo.make_conninfo(PG_ADMIN_URL, dbname=name)


def _drop_db(name: str) -> None:
    with _admin() as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


class _Databases:
    """Copies of the template: the next one is made while a test runs, and used ones are
    dropped in the background (each CREATE or DROP DATABASE takes ~0.2 s)."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.workers = ThreadPoolExecutor(2, thread_name_prefix="rqs-test-db")
        self.next: Future[str] = self.workers.submit(self._create)
        self.drops: list[Future[None]] = []

    def _create(self) -> str:
        name = f"rqs_test_{uuid.uuid4().hex[:16]}"
        with _admin() as conn:
            create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
            conn.execute(create.format(sql.Identifier(name), sql.Identifier(self.template)))
        return name

    def take(self) -> str:
        name = self.next.result()
        self.next = self.workers.submit(self._create)
        return name

    def drop(self, name: str) -> None:
        self.drops.append(self.workers.submit(_drop_db, name))

    def close(self) -> None:
        self.drop(self.next.result())
        for f in self.drops:
            f.result()
        self.workers.shutdown()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[_Databases]:
    """Fresh migrated databases; skipped (or failed under CI) without a server."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from rqs.storage.postgres import PostgresStorage

    template = f"rqs_test_template_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    try:
        store = PostgresStorage(Settings(database_url=_db_url(template), pool_size=1))

        async def migrate() -> None:
            await store.open()
            await store.close()

        asyncio.run(migrate())
        databases = _Databases(template)
        try:
            yield databases
        finally:
            databases.close()
    finally:
        _drop_db(template)


@pytest.fixture
def pg_url(pg_databases: _Databases) -> Iterator[str]:
    """URL of a fresh, migrated database of its own, dropped after the test."""
    name = pg_databases.take()
    try:
        yield _db_url(name)
    finally:
        pg_databases.drop(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return Settings(data_dir=tmp_path, database_url=url, pool_size=TEST_POOL_SIZE)
    return Settings(data_dir=tmp_path)


@pytest.fixture
async def storage(storage_settings: Settings) -> AsyncIterator[Storage]:
    """An opened Storage of each backend, empty."""
    from rqs.storage import open_storage

    store = open_storage(storage_settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# ======================================================================================
# end of storage fixtures
# ======================================================================================


# ======================================================================================
# Property-based tests (hypothesis): the same examples on every run, nothing written to
# disk. A failure then reproduces as it is, and CI cannot pass or fail by luck of the draw.
# ======================================================================================
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("rqs", derandomize=True, database=None, deadline=None)
hypothesis_settings.load_profile("rqs")
