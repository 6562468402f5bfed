from rqs.storage.sqlite.store import SqliteStorage

__all__ = ["SqliteStorage"]
