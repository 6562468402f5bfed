"""Storage backends behind one contract (``rqs.storage.base.Storage``)."""

from __future__ import annotations

from rqs.settings import Settings
from rqs.storage.base import Storage


def open_storage(settings: Settings) -> Storage:
    """The backend the settings name; not yet opened."""
    if settings.database_url:
        from rqs.storage.postgres import PostgresStorage

        return PostgresStorage(settings)
    from rqs.storage.sqlite import SqliteStorage

    return SqliteStorage(settings)
