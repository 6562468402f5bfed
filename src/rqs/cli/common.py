"""Options shared by commands: each flag mirrors an ``RQS_*`` variable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from rqs import settings as settings_mod
from rqs.errors import RqsError
from rqs.settings import Settings
from rqs.storage import open_storage
from rqs.storage.base import Storage

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def store_options(fn: F) -> F:
    """``--data-dir`` and ``--database-url``: which store a local command opens."""
    fn = click.option("--database-url", default=None, metavar="URL",
                      help="PostgreSQL URL instead of SQLite (env: RQS_DATABASE_URL)")(fn)
    fn = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                      help="Directory of the SQLite store (env: RQS_DATA_DIR; "
                      "default ./rqs-data)")(fn)
    return fn


def load_settings(**overrides: Any) -> Settings:
    try:
        return settings_mod.from_env(**overrides)
    except RqsError as exc:
        raise click.UsageError(exc.message) from None


def with_storage(settings: Settings, work: Callable[[Storage], Coroutine[Any, Any, T]]) -> T:
    """Open the store, run ``work`` on it, close it; rqs errors become clean CLI errors."""

    async def run() -> T:
        storage = open_storage(settings)
        await storage.open()
        try:
            return await work(storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except RqsError as exc:
        raise click.ClickException(exc.message) from None
