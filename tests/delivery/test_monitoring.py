"""GET /metrics (a domain's figures in the Prometheus text format) and GET /v1/consumers
(its cursors and subscriptions as JSON), both read from storage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rqs.service import metrics
from tests.delivery.conftest import BACKENDS, Env
from tests.delivery.receiver import Reply
from tests.support import Server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == metrics.CONTENT_TYPE
    found: Samples = {}
    # An independent parser: it rejects anything that is not the exposition format.
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset({"domain": "default", **labels}.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_metrics_follow_ingest_polls_and_delivery(env: Env) -> None:
    fresh = scrape(env.api)
    assert value(fresh, "rqs_index_newest") == 0
    assert "rqs_index_oldest" not in names(fresh)
    assert "rqs_last_received_timestamp_seconds" not in names(fresh)
    backend = (env.server.settings.database_url and "postgres") or "sqlite"
    info = [labels for name, labels in fresh if name == "rqs_info"]
    assert dict(info[0])["backend"] == backend

    env.callback("cb", batch_size=2)
    env.subscribe("sub", "cb")
    env.receiver.set_default("cb", Reply(503))
    env.ingest(3, "EMAIL_CLICKED")
    env.ingest(2)  # EMAIL_BOUNCED
    r = env.api.get("/api/rest/v19/async/pollByType", params={"type": "linkClick", "limit": 2},
                    headers={"accept": "application/json"})
    assert r.status_code == 200 and len(r.json()) == 2, r.text
    assert (await env.deliver()).failed == 1  # the first batch (two clicks) fails once
    env.clock.advance(30)

    got = scrape(env.api)
    assert value(got, "rqs_index_newest") == 5
    assert value(got, "rqs_index_oldest") == 1
    assert value(got, "rqs_index_purged_through") == 0
    clicks = {"type": "EMAIL_CLICKED", "channel": "Email"}
    bounces = {"type": "EMAIL_BOUNCED", "channel": "Email"}
    assert value(got, "rqs_events_ingested_total", **clicks) == 3
    assert value(got, "rqs_events_retained", **bounces) == 2
    newest = env.get("/v1/events/5")
    received = value(got, "rqs_last_received_timestamp_seconds")
    assert abs(received - _seconds(newest["received_at"])) < 0.001

    # pollByType cursors are named "type:<type>", poll cursors "topic:<topic>".
    cursor = {"key": env.server.admin.key.id, "cursor": "type:linkClick"}
    assert value(got, "rqs_cursor_position", **cursor) == 2
    assert value(got, "rqs_cursor_index_lag", **cursor) == 3
    assert value(got, "rqs_cursor_polled_total", **cursor) == 2
    assert value(got, "rqs_cursor_skipped_total", **cursor) == 0
    assert value(got, "rqs_cursor_last_poll_timestamp_seconds", **cursor) > 0

    sub = {"subscription": "sub", "callback": "cb"}
    assert value(got, "rqs_callback_active", callback="cb") == 1
    assert value(got, "rqs_callback_failing_seconds", callback="cb") == pytest.approx(30)
    assert value(got, "rqs_subscription_active", **sub) == 1
    assert value(got, "rqs_subscription_position", **sub) == 0
    assert value(got, "rqs_subscription_index_lag", **sub) == 5
    assert value(got, "rqs_subscription_pending_attempts", **sub) == 1
    assert value(got, "rqs_subscription_pending_age_seconds", **sub) == pytest.approx(30)

    seen = env.get("/v1/consumers")
    assert (seen["domain"], seen["newest_index"]) == ("default", 5)
    assert seen["cursors"] == [{
        "key_id": env.server.admin.key.id, "cursor": "type:linkClick", "position": 2,
        "lag": 3, "polled": 2, "skipped": 0,
        "last_poll": seen["cursors"][0]["last_poll"]}]
    assert seen["cursors"][0]["last_poll"].endswith("Z")
    [consumer] = seen["subscriptions"]
    pending = consumer.pop("pending")
    assert consumer == {"name": "sub", "callback": "cb", "status": "ACTIVE",
                        "callback_status": "ACTIVE",
                        "callback_failing_since": consumer["callback_failing_since"],
                        "position": 0, "lag": 5}
    assert consumer["callback_failing_since"] is not None
    assert (pending["first_index"], pending["last_index"], pending["attempts"],
            pending["last_status"]) == (1, 2, 1, 503)
    assert pending["next_attempt_at"] is not None and pending["last_error"].startswith("HTTP 503")

    # Paused, the batch waiting is not a delivery problem: nothing to alert on.
    assert env.api.put("/v1/subscriptions/sub", json={"status": "PAUSED"}).status_code == 200
    paused = scrape(env.api)
    assert value(paused, "rqs_subscription_active", **sub) == 0
    assert value(paused, "rqs_subscription_pending_attempts", **sub) == 0
    assert value(paused, "rqs_subscription_pending_age_seconds", **sub) == 0
    paused_view = env.get("/v1/consumers")["subscriptions"][0]
    assert (paused_view["status"], paused_view["pending"]) == ("PAUSED", None)
    assert env.api.put("/v1/subscriptions/sub", json={"status": "ACTIVE"}).status_code == 200

    # The receiver recovers: everything is delivered and the lags close.
    env.receiver.set_default("cb", None)
    while (await env.deliver()).requests:
        pass
    assert env.api.put("/v1/subscriptions/sub", json={"status": "PAUSED"}).status_code == 200
    done = scrape(env.api)
    assert value(done, "rqs_subscription_position", **sub) == 5
    assert value(done, "rqs_subscription_index_lag", **sub) == 0
    assert value(done, "rqs_subscription_pending_attempts", **sub) == 0
    assert value(done, "rqs_subscription_pending_age_seconds", **sub) == 0
    assert value(done, "rqs_subscription_active", **sub) == 0
    assert value(done, "rqs_callback_failing_seconds", callback="cb") == 0


def test_metrics_are_the_callers_domain_only_and_need_read(server: Server) -> None:
    mine = server.client()
    assert mine.post("/v1/events", json=[{"type": "SMS_INBOUND", "data": {}}] * 2
                     ).status_code == 200
    theirs = server.client(server.new_key("admin", domain="elsewhere"))
    assert theirs.post("/v1/events", json={"type": "SMS_INBOUND", "data": {}}).status_code == 200
    for client, group in ((mine, "smsResponse"), (theirs, "linkClick")):
        r = client.get("/api/rest/v19/async/pollByType", params={"type": group},
                       headers={"accept": "application/json"})
        assert r.status_code == 200, r.text
    got = scrape(mine)
    assert value(got, "rqs_index_newest") == 2
    assert {dict(labels)["domain"] for _, labels in got} == {"default"}
    assert {dict(labels)["cursor"] for name, labels in got if name == "rqs_cursor_position"
            } == {"type:smsResponse"}
    seen = scrape(theirs)
    assert {dict(labels)["domain"] for _, labels in seen} == {"elsewhere"}
    assert seen[("rqs_index_newest", frozenset({("domain", "elsewhere")}))] == 1
    assert {dict(labels)["cursor"] for name, labels in seen if name == "rqs_cursor_position"
            } == {"type:linkClick"}

    assert [c["cursor"] for c in mine.get("/v1/consumers").json()["cursors"]] == [
        "type:smsResponse"]
    assert [c["cursor"] for c in theirs.get("/v1/consumers").json()["cursors"]] == [
        "type:linkClick"]

    ingest_only = server.client(server.new_key("ingest"))
    for path in ("/metrics", "/v1/consumers"):
        r = ingest_only.get(path)
        assert r.status_code == 403 and "read" in r.text, r.text
        assert httpx.get(server.url + path).status_code == 401


def test_types_the_catalog_does_not_know_share_one_series(server: Server) -> None:
    c = server.client()
    made_up = [{"type": f"CUSTOM_{i}", "data": {}} for i in range(5)]
    assert c.post("/v1/events", json=[*made_up, {"type": "SMS_INBOUND", "data": {}}]
                  ).status_code == 200
    got = scrape(c)
    types = {dict(labels)["type"] for name, labels in got
             if name == "rqs_events_ingested_total"}
    assert types == {"SMS_INBOUND", metrics.UNCATALOGUED}
    assert sum(v for (name, labels), v in got.items() if name == "rqs_events_ingested_total"
               and dict(labels)["type"] == metrics.UNCATALOGUED) == 5
    assert c.get("/v1/stats").json()["uncatalogued"]["ingested"] == 5


def test_exposition_escapes_label_values() -> None:
    family = metrics.Family("rqs_x", "gauge", "A test family.")
    family.add(1.5, domain='a"b\\c\nd')
    text = metrics.exposition([family]).decode()
    parsed = list(text_string_to_metric_families(text))
    assert parsed[0].samples[0].labels == {"domain": 'a"b\\c\nd'}
    assert parsed[0].samples[0].value == 1.5


def _seconds(literal: Any) -> float:
    return datetime.fromisoformat(str(literal).replace("Z", "+00:00")).timestamp()
