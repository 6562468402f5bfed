"""The native push API's JSON: request bodies (msgspec structs) and response shapes."""

from __future__ import annotations

from typing import Any

import msgspec

from rqs.domain import delivery as d
from rqs.domain.events import format_time
from rqs.service.push_admin import CallbackSpec, SubscriptionSpec


class BasicAuthIn(msgspec.Struct, forbid_unknown_fields=True):
    user_name: str
    password: str = ""


class CallbackIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    url: str | None = None
    batch_size: int | None = None
    basic_auth: BasicAuthIn | None = None
    backup_url: str | None = None
    signing_secret: str | None = None
    status: str | None = None
    status_reason: str | None = None


class FilterIn(msgspec.Struct, forbid_unknown_fields=True):
    campaign_names: list[str]
    event_types: list[str] = []


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    callback: str | None = None
    event_types: list[str] | None = None
    filters: list[FilterIn] | None = None
    status: str | None = None
    status_reason: str | None = None
    start: str | int | None = None


class ReplayIn(msgspec.Struct, forbid_unknown_fields=True):
    from_index: int | None = None
    through_index: int | None = None
    since: str | float | None = None
    until: str | float | None = None


class SecretIn(msgspec.Struct, forbid_unknown_fields=True):
    signing_secret: str | None = None


def time_json(micros: int | None) -> str | None:
    return format_time(micros) if micros is not None else None


def callback_json(cb: d.Callback, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": cb.name, "url": cb.url, "batch_size": cb.batch_size,
        "backup_url": cb.backup_url,
        "basic_auth": {"user_name": cb.auth_user} if cb.auth_user is not None else None,
        "status": cb.status.value, "status_reason": cb.status_reason,
        "failing_since": time_json(cb.failing_since), "verified_at": time_json(cb.verified_at),
        "created_at": time_json(cb.created_at), "updated_at": time_json(cb.updated_at),
    }
    if secret:
        out["signing_secret"] = cb.secrets[0].value
    return out


def subscription_json(s: d.Subscription) -> dict[str, Any]:
    return {"name": s.name, "callback": s.callback, "event_types": list(s.event_types),
            "filters": [{"event_types": list(f.event_types),
                         "campaign_names": list(f.campaign_names)} for f in s.filters],
            "status": s.status.value, "status_reason": s.status_reason,
            "position": s.position, "created_at": time_json(s.created_at),
            "updated_at": time_json(s.updated_at)}


def delivery_json(x: d.Delivery) -> dict[str, Any]:
    return {"id": x.id, "webhook_id": x.msg_id, "subscription_id": x.subscription_id,
            "replay_id": x.replay_id, "first_index": x.first_index, "last_index": x.last_index,
            "count": x.count, "state": x.state.value, "attempts": x.attempts,
            "next_attempt_at": time_json(x.next_attempt_at), "last_status": x.last_status,
            "last_error": x.last_error, "created_at": time_json(x.created_at),
            "updated_at": time_json(x.updated_at)}


def replay_json(r: d.Replay) -> dict[str, Any]:
    return {"id": r.id, "subscription_id": r.subscription_id, "from_index": r.after_index + 1,
            "through_index": r.through_index, "since": time_json(r.since),
            "until": time_json(r.until),
            "position": r.position, "state": r.state.value, "delivered": r.delivered,
            "created_at": time_json(r.created_at), "updated_at": time_json(r.updated_at)}


def attempt_json(a: d.Attempt) -> dict[str, Any]:
    return {"at": time_json(a.at), "url": a.url, "status_code": a.status_code,
            "latency_ms": a.latency_ms, "error": a.error, "outcome": a.outcome}


def callback_spec(body: CallbackIn, name: str | None = None) -> CallbackSpec:
    auth = body.basic_auth
    return CallbackSpec(name=name or body.name, url=body.url, batch_size=body.batch_size,
                        auth_user=auth.user_name if auth else None,
                        auth_password=auth.password if auth else None,
                        backup_url=body.backup_url, signing_secret=body.signing_secret,
                        status=body.status, status_reason=body.status_reason)


def subscription_spec(body: SubscriptionIn, name: str | None = None) -> SubscriptionSpec:
    filters = None if body.filters is None else [
        d.CampaignFilter(tuple(f.event_types), tuple(f.campaign_names)) for f in body.filters]
    return SubscriptionSpec(name=name or body.name, callback=body.callback,
                            event_types=body.event_types, filters=filters, status=body.status,
                            status_reason=body.status_reason, start=body.start)
