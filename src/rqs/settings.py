"""One typed settings object, read from ``RQS_*`` environment variables.

CLI flags mirror these names (``--data-dir`` is ``RQS_DATA_DIR``); a flag wins over
the environment, the environment over the default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rqs.errors import InvalidRequest

# Seconds before each retry: 10 retries (11 attempts), the last about 23.7 hours after the
# first attempt.
DEFAULT_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("rqs-data")
    database_url: str | None = None  # postgresql://... ; None means SQLite in data_dir
    retention_days: float = 30.0
    max_batch_items: int = 100_000
    max_body_bytes: int = 256 * 1024 * 1024
    max_poll_limit: int = 100_000
    default_poll_limit: int = 10_000
    purge_interval_seconds: float = 60.0
    purge_step_rows: int = 5_000
    sqlite_synchronous: str = "FULL"
    workers: int = 1
    log_level: str = "info"
    retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    allow_private_callbacks: bool = False
    pool_size: int = 8
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "rqs.db"

    @property
    def backend(self) -> str:
        return "postgres" if self.database_url else "sqlite"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _convert(name: str, annotation: str, raw: str) -> Any:
    try:
        if annotation == "int":
            return int(raw)
        if annotation == "float":
            return float(raw)
        if annotation == "bool":
            if raw.strip().lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.strip().lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if annotation == "Path":
            return Path(raw)
        if annotation == "tuple[int, ...]":
            return tuple(int(p) for p in raw.split(",") if p.strip())
    except ValueError:
        raise InvalidRequest(f"RQS_{name.upper()}={raw!r} is not a valid {annotation}") from None
    return raw


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        raw = env.get(f"RQS_{f.name.upper()}")
        if raw is not None:
            annotation = str(f.type).replace(" | None", "")
            values[f.name] = _convert(f.name, annotation, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    if settings.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise InvalidRequest("RQS_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
    if settings.default_poll_limit > settings.max_poll_limit:
        raise InvalidRequest("RQS_DEFAULT_POLL_LIMIT exceeds RQS_MAX_POLL_LIMIT")
    return settings
