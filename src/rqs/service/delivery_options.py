"""Tunables of push delivery. ``options_from`` takes them from ``Settings`` (the
``RQS_*`` variables); the rest are fixed here, and tests construct them directly."""

from __future__ import annotations

from dataclasses import dataclass

from rqs.settings import Settings

_DEFAULT = Settings()  # the shared tunables' defaults are the settings' own


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    schedule: tuple[float, ...] = tuple(float(x) for x in _DEFAULT.retry_schedule)
    disable_after: float = _DEFAULT.callback_disable_after
    request_timeout: float = _DEFAULT.delivery_timeout
    connect_timeout: float = 10.0
    # A lease outlives a request by a wide margin: a lane whose worker is still waiting for
    # an answer must never be taken over (Svix warns about exactly that).
    lease_seconds: float = 120.0
    poll_interval: float = _DEFAULT.delivery_poll_interval
    linger: float = 2.0  # an idle lane stays held this long in the background loop
    max_lanes: int = 1000  # lanes one worker runs at once
    prefetch_batches: int = 8  # a lane reads this many batches' worth of events per scan
    batches_per_claim: int = 10_000  # then the lane is released so others get a turn
    allow_private: bool = _DEFAULT.allow_private_callbacks
    retention_days: float = _DEFAULT.retention_days
    purge_interval: float = _DEFAULT.purge_interval_seconds
    purge_rows: int = _DEFAULT.purge_step_rows
    in_serve: bool = _DEFAULT.delivery_in_serve


def options_from(settings: Settings) -> DeliveryOptions:
    """The options ``settings`` set (``settings.from_env`` has validated them)."""
    return DeliveryOptions(
        schedule=tuple(float(s) for s in settings.retry_schedule),
        disable_after=settings.callback_disable_after,
        request_timeout=settings.delivery_timeout,
        poll_interval=settings.delivery_poll_interval,
        allow_private=settings.allow_private_callbacks,
        retention_days=settings.retention_days,
        purge_interval=settings.purge_interval_seconds,
        purge_rows=settings.purge_step_rows,
        in_serve=settings.delivery_in_serve,
    )
