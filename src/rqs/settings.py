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


DAY = 86_400.0


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every field is ``RQS_<NAME>`` in the environment and ``--<name>`` on ``rqs serve``
    (``rqs worker`` takes the ones that matter to delivery)."""

    host: str = field(default="127.0.0.1", metadata=_doc("interface to listen on"))
    port: int = field(default=8080, metadata=_doc("port to listen on"))
    data_dir: Path = field(default=Path("rqs-data"), metadata=_doc("where the SQLite store lives"))
    database_url: str | None = field(
        default=None, metadata=_doc("postgresql://... to use PostgreSQL instead of SQLite"))
    retention_days: float = field(default=30.0, metadata=_doc("days events are kept"))
    max_batch_items: int = field(default=100_000, metadata=_doc("items per ingest request"))
    max_body_bytes: int = field(default=256 * 1024 * 1024,
                                metadata=_doc("request body cap in bytes"))
    max_poll_limit: int = field(default=100_000, metadata=_doc("most events per retrieval"))
    default_poll_limit: int = field(default=10_000,
                                    metadata=_doc("events per retrieval without a limit"))
    purge_interval_seconds: float = field(
        default=60.0, metadata=_doc("seconds between background retention runs"))
    purge_step_rows: int = field(default=5_000, metadata=_doc("rows deleted per purge step"))
    sqlite_synchronous: str = field(
        default="FULL", metadata=_doc("SQLite durability: FULL fsyncs before every 2xx"))
    workers: int = field(default=1, metadata=_doc("server processes (PostgreSQL only)"))
    log_level: str = field(default="info", metadata=_doc("debug, info, warning or error"))
    access_log: bool = field(
        default=False, metadata=_doc("log every HTTP request to stdout (uvicorn's access "
                                     "log; off: it costs ingest throughput)"))
    retry_schedule: tuple[int, ...] = field(
        default=DEFAULT_RETRY_SCHEDULE,
        metadata=_doc("push retry delays in seconds, comma-separated"))
    allow_private_callbacks: bool = field(
        default=False, metadata=_doc("allow callbacks to loopback and private addresses"))
    pool_size: int = field(default=8, metadata=_doc("PostgreSQL connections per process"))
    callback_disable_after: float = field(
        default=5 * DAY,
        metadata=_doc("seconds a callback may fail without a success before it is disabled"))
    delivery_timeout: float = field(default=30.0,
                                    metadata=_doc("seconds per push request, connect included"))
    delivery_poll_interval: float = field(
        default=1.0, metadata=_doc("seconds between looks for due push work when nothing "
                                   "wakes the worker"))
    delivery_in_serve: bool = field(
        default=True, metadata=_doc("deliver push callbacks inside rqs serve (off: run "
                                    "rqs worker)"))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "rqs.db"

    @property
    def backend(self) -> str:
        return "postgres" if self.database_url else "sqlite"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def convert(name: str, annotation: str, raw: str) -> Any:
    """``raw`` (an environment value or a flag) as the field's type."""
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
        raw = env.get(f"RQS_{f.name.upper()}")
        if raw is not None:
            annotation = str(f.type).replace(" | None", "")
            values[f.name] = convert(f.name, annotation, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    if settings.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise InvalidRequest("RQS_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
    if settings.default_poll_limit > settings.max_poll_limit:
        raise InvalidRequest("RQS_DEFAULT_POLL_LIMIT exceeds RQS_MAX_POLL_LIMIT")
    for name in ("callback_disable_after", "delivery_timeout", "delivery_poll_interval"):
        if getattr(settings, name) <= 0:
            raise InvalidRequest(f"RQS_{name.upper()} must be positive")
    if not settings.retry_schedule or min(settings.retry_schedule) < 0:
        raise InvalidRequest("RQS_RETRY_SCHEDULE needs one or more delays in seconds, >= 0")
    return settings


def to_env(settings: Settings) -> dict[str, str]:
    """The ``RQS_*`` variables that make ``from_env`` rebuild these settings (how
    ``rqs serve --workers N`` hands its flags to the worker processes)."""
    return {f"RQS_{f.name.upper()}": as_text(value)
            for f in fields(Settings) if (value := getattr(settings, f.name)) is not None}


def as_text(value: Any) -> str:
    """A setting's value as ``RQS_*`` writes it (``convert`` reads it back)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)
