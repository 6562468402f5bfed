from rqs.storage.postgres.store import PostgresStorage

__all__ = ["PostgresStorage"]
