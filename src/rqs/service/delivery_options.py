"""Tunables of push delivery, from ``Settings`` and a few ``RQS_*`` variables of its own.

Variables read here (not ``Settings`` fields, so the shared settings module stays as is;
``Settings.extra`` with the lower-case name without ``RQS_`` wins over the environment):

* ``RQS_CALLBACK_DISABLE_AFTER``: seconds a callback may fail without a single success
  before it is disabled (default 5 days, as Svix).
* ``RQS_DELIVERY_TIMEOUT``: seconds per callback request, connect included (default 30).
* ``RQS_DELIVERY_POLL_INTERVAL``: seconds between claims when nothing wakes the worker
  (default 1; ingest in the same process wakes it at once).
* ``RQS_DELIVERY_IN_SERVE``: ``0`` keeps ``rqs serve`` from delivering (run ``rqs worker``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rqs.errors import InvalidRequest
from rqs.settings import DEFAULT_RETRY_SCHEDULE, Settings

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    schedule: tuple[float, ...] = tuple(float(x) for x in DEFAULT_RETRY_SCHEDULE)
    disable_after: float = 5 * DAY
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    # A lease outlives a request by a wide margin: a lane whose worker is still waiting for
    # an answer must never be taken over (Svix warns about exactly that).
    lease_seconds: float = 120.0
    poll_interval: float = 1.0
    linger: float = 2.0  # an idle lane stays held this long in the background loop
    max_lanes: int = 1000  # lanes one worker runs at once
    prefetch_batches: int = 8  # a lane reads this many batches' worth of events per scan
    batches_per_claim: int = 10_000  # then the lane is released so others get a turn
    allow_private: bool = False
    retention_days: float = 30.0
    purge_interval: float = 60.0
    purge_rows: int = 5_000
    in_serve: bool = True


def _get(settings: Settings, name: str) -> str | None:
    value = settings.extra.get(name)
    return value if value is not None else os.environ.get("RQS_" + name.upper())


def _float(settings: Settings, name: str, default: float) -> float:
    raw = _get(settings, name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"RQS_{name.upper()}={raw!r} is not a number") from None
    if value <= 0:
        raise InvalidRequest(f"RQS_{name.upper()} must be positive")
    return value


def options_from(settings: Settings) -> DeliveryOptions:
    if not settings.retry_schedule or min(settings.retry_schedule) < 0:
        raise InvalidRequest("RQS_RETRY_SCHEDULE needs one or more delays in seconds, >= 0")
    return DeliveryOptions(
        schedule=tuple(float(s) for s in settings.retry_schedule),
        disable_after=_float(settings, "callback_disable_after", 5 * DAY),
        request_timeout=_float(settings, "delivery_timeout", 30.0),
        poll_interval=_float(settings, "delivery_poll_interval", 1.0),
        allow_private=settings.allow_private_callbacks,
        retention_days=settings.retention_days,
        purge_interval=settings.purge_interval_seconds,
        purge_rows=settings.purge_step_rows,
        in_serve=(_get(settings, "delivery_in_serve") or "1").strip().lower()
        not in {"0", "false", "no", "off"},
    )
