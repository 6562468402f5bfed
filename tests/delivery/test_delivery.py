"""Delivery end to end: signed, authenticated, ordered, byte-exact, retried, dead-lettered."""

from __future__ import annotations

import pytest

from tests.delivery.conftest import BACKENDS, Env
from tests.delivery.receiver import Reply


async def test_batches_arrive_signed_in_order_byte_for_byte(env: Env) -> None:
    env.callback("cb", batch_size=3)
    env.subscribe("sub", "cb", ["EMAIL_BOUNCED", "EMAIL_CLICKED"])
    # Odd spacing, a type the subscription does not want, and unicode: all kept as sent.
    items = [b'{"failureType":"EMAIL_BOUNCED","riid":"1",  "x": [1, 2]}',
             b'{"failureType":"SMS_FAILED","riid":"2","channelType":"Sms"}',
             b'{ "failureType" : "EMAIL_CLICKED", "riid":"3", "n":"\\u00e9t\xc3\xa9"}',
             b'{"failureType":"EMAIL_BOUNCED","riid":"4"}',
             b'{"failureType":"EMAIL_BOUNCED","riid":"5"}']
    r = env.api.post("/v1/events", content=b"[" + b",".join(items) + b"]",
                     headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    stats = await env.deliver()
    assert (stats.requests, stats.succeeded, stats.events) == (2, 2, 4)
    hits = env.receiver.ok("cb")
    assert [h.body for h in hits] == [b"[" + b",".join([items[0], items[2], items[3]]) + b"]",
                                      b"[" + items[4] + b"]"]
    assert len({h.msg_id for h in hits}) == 2
    assert all(h.msg_id.startswith("msg_") for h in hits)
    # Nothing new: nothing sent, and the subscription's position passed the SMS event.
    assert (await env.deliver()).requests == 0
    status = env.get("/v1/subscriptions/sub/status")
    assert status["subscription"]["position"] == 5 and status["behind"] == 0


async def test_only_events_after_the_subscription_are_sent(env: Env) -> None:
    env.callback("cb")
    env.ingest(3)
    env.subscribe("sub", "cb")
    env.ingest(2)
    await env.deliver()
    assert env.receiver.riids("cb") == ["4", "5"]


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_receiver_down_then_up_everything_arrives_in_order_once(env: Env) -> None:
    env.callback("cb", batch_size=2)
    env.subscribe("sub", "cb")
    env.receiver.set_default("cb", Reply(503))
    sent = env.ingest(5)
    stats = await env.deliver()
    assert (stats.requests, stats.failed) == (1, 1)  # head of line: one batch in flight
    assert (await env.deliver()).requests == 0  # not due before the first delay (1 s)
    env.clock.advance(1)
    assert (await env.deliver()).failed == 1
    sent += env.ingest(2)  # more arrive while it is down: they queue behind
    env.clock.advance(1.9)
    assert (await env.deliver()).requests == 0  # second delay is 2 s
    env.receiver.set_default("cb", None)
    env.clock.advance(0.1)
    stats = await env.deliver()
    assert stats.succeeded == 4 and stats.failed == 0
    assert env.receiver.riids("cb") == sent
    tries = env.receiver.tried("cb")
    assert [h.status for h in tries[:3]] == [503, 503, 200]
    assert len({h.msg_id for h in tries[:3]}) == 1  # the same webhook-id on every retry
    assert len({h.msg_id for h in env.receiver.ok("cb")}) == 4
    first = env.get("/v1/subscriptions/sub/deliveries?limit=10")["deliveries"][-1]
    assert (first["state"], first["attempts"], first["webhook_id"]) == ("succeeded", 3,
                                                                        tries[0].msg_id)
    log = env.get(f"/v1/deliveries/{first['id']}/attempts")["attempts"]
    assert [a["status_code"] for a in log] == [503, 503, 200]
    assert [a["outcome"] for a in log] == ["retry", "retry", "succeeded"]
    assert all(a["latency_ms"] >= 0 and a["at"] for a in log)
    assert log[0]["error"].startswith("HTTP 503")


async def test_connection_refused_is_retried(env: Env) -> None:
    cb = env.callback("cb")
    env.api.put("/v1/callbacks/cb", json={"url": "http://127.0.0.1:9/nothing-listens"})
    env.subscribe("sub", "cb")
    env.ingest(1)
    assert (await env.deliver()).failed == 1
    delivery = env.get("/v1/subscriptions/sub/deliveries")["deliveries"][0]
    assert delivery["state"] == "pending" and delivery["last_status"] is None
    assert delivery["last_error"]
    assert cb["name"] == "cb"


async def test_429_with_retry_after_is_honoured(env: Env) -> None:
    env.callback("cb")
    env.subscribe("sub", "cb")
    env.receiver.respond("cb", Reply(429, {"Retry-After": "30"}))
    env.ingest(1)
    await env.deliver()
    env.clock.advance(5)  # the schedule alone would have retried after 1 s
    assert (await env.deliver()).requests == 0
    env.clock.advance(25)
    assert (await env.deliver()).succeeded == 1
    assert env.receiver.riids("cb") == ["1"]


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_4xx_goes_to_dead_letters_at_once_and_the_rest_follows(env: Env) -> None:
    env.callback("cb", batch_size=2)
    env.subscribe("sub", "cb")
    env.receiver.respond("cb", Reply(422))
    env.ingest(4)
    stats = await env.deliver()
    assert (stats.requests, stats.failed, stats.succeeded) == (2, 1, 1)
    assert env.receiver.riids("cb") == ["3", "4"]
    dead = env.get("/v1/dead-letters")["deliveries"]
    assert len(dead) == 1 and dead[0]["first_index"] == 1 and dead[0]["last_index"] == 2
    assert dead[0]["attempts"] == 1 and dead[0]["last_status"] == 422
    # Redrive: the dead batch goes out again, as a new message.
    r = env.api.post(f"/v1/dead-letters/{dead[0]['id']}/redrive")
    assert r.status_code == 202, r.text
    await env.deliver()
    assert env.receiver.riids("cb") == ["3", "4", "1", "2"]
    assert env.receiver.ok("cb")[-1].msg_id != env.receiver.tried("cb")[0].msg_id


async def test_retries_run_out_then_the_batch_is_dead(env: Env) -> None:
    env.callback("cb")
    env.subscribe("sub", "cb")
    env.receiver.set_default("cb", Reply(500))
    env.ingest(1)
    for delay in (0, 1, 2, 5):
        env.clock.advance(delay)
        assert (await env.deliver()).requests == 1
    assert len(env.receiver.tried("cb")) == 4  # the first attempt and three retries
    dead = env.get("/v1/dead-letters?subscription=sub")["deliveries"]
    assert len(dead) == 1 and "gave up after 4 attempts" in dead[0]["last_error"]
    env.clock.advance(100)
    assert (await env.deliver()).requests == 0


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_410_disables_the_callback_and_reenabling_resumes(env: Env) -> None:
    env.callback("cb", batch_size=1)
    env.subscribe("sub", "cb")
    env.ingest(1)
    env.receiver.respond("cb", Reply(410))
    await env.deliver()
    cb = env.get("/v1/callbacks/cb")
    assert cb["status"] == "DISABLED" and "410" in cb["status_reason"]
    env.ingest(2)
    env.clock.advance(3600)
    assert (await env.deliver()).requests == 0
    r = env.api.put("/v1/callbacks/cb", json={"status": "ACTIVE"})
    assert r.status_code == 200 and r.json()["status_reason"] is None
    stats = await env.deliver()
    assert stats.succeeded == 3
    assert env.receiver.riids("cb") == ["1", "2", "3"]
    tries = env.receiver.tried("cb")
    assert tries[0].msg_id == tries[1].msg_id  # the batch that met the 410, resent as is


async def test_backup_url_after_three_failed_attempts(env: Env) -> None:
    env.callback("cb", "primary", backup="backup")
    env.subscribe("sub", "cb")
    env.receiver.set_default("primary", Reply(500))
    env.ingest(2)
    for delay in (0, 1, 2):
        env.clock.advance(delay)
        await env.deliver()
    assert len(env.receiver.tried("primary")) == 3 and not env.receiver.tried("backup")
    env.clock.advance(5)
    await env.deliver()
    assert env.receiver.riids("backup") == ["1", "2"]
    assert env.receiver.tried("backup")[0].msg_id == env.receiver.tried("primary")[0].msg_id


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_pause_keeps_the_position_and_resume_delivers_everything(env: Env) -> None:
    env.callback("cb", batch_size=2)
    env.subscribe("sub", "cb")
    env.ingest(1)
    await env.deliver()
    r = env.api.put("/v1/subscriptions/sub", json={"status": "PAUSED",
                                                   "status_reason": "maintenance"})
    assert r.status_code == 200 and r.json()["status"] == "PAUSED"
    env.ingest(5)
    assert (await env.deliver()).requests == 0
    r = env.api.put("/v1/subscriptions/sub", json={"status": "ACTIVE"})
    assert r.status_code == 200
    await env.deliver()
    assert env.receiver.riids("cb") == [str(i) for i in range(1, 7)]


async def test_campaign_filters(env: Env) -> None:
    env.callback("cb")
    env.subscribe("sub", "cb", ["EMAIL_BOUNCED", "EMAIL_CLICKED"], filters=[
        {"event_types": ["EMAIL_CLICKED"], "campaign_names": ["Spring"]}])
    env.ingest(1, "EMAIL_CLICKED", "Spring")  # 1: passes
    env.ingest(1, "EMAIL_CLICKED", "Autumn")  # 2: filtered out
    env.ingest(1, "EMAIL_BOUNCED", "Autumn")  # 3: bounces are not filtered
    await env.deliver()
    assert env.receiver.riids("cb") == ["1", "3"]
