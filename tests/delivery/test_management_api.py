"""The management APIs: Responsys' /rest/api/v1.3 notifications, the native /v1, SSRF rules."""

from __future__ import annotations

import httpx
import pytest

from rqs.adapters.webhook_sender import WebhookSender
from rqs.domain import catalog
from tests.delivery.conftest import Env
from tests.delivery.receiver import Reply

N = "/rest/api/v1.3/notifications"


def responsys_client(env: Env) -> httpx.Client:
    key = env.server.admin
    r = httpx.post(env.server.url + "/rest/api/v1.3/auth/token",
                   data={"user_name": key.key.id, "password": key.secret,
                         "auth_type": "password"})
    assert r.status_code == 200, r.text
    token = r.json()
    assert set(token) == {"authToken", "issuedAt", "endPoint"}
    assert token["endPoint"] == env.server.url
    # Responsys clients send the raw token, without "Bearer".
    c = httpx.Client(base_url=token["endPoint"], headers={"Authorization": token["authToken"]})
    env.server._clients.append(c)
    return c


def test_auth_token_refuses_wrong_secrets(env: Env) -> None:
    r = httpx.post(env.server.url + "/rest/api/v1.3/auth/token",
                   data={"user_name": env.server.admin.key.id, "password": "nope",
                         "auth_type": "password"})
    assert r.status_code == 403 and r.json()["errorCode"] == "UNAUTHORIZED"
    r = httpx.get(env.server.url + f"{N}/callbacks/x")
    assert r.status_code == 401 and set(r.json()) == {"type", "title", "errorCode", "detail",
                                                     "errorDetails"}


async def test_responsys_callbacks_and_subscriptions(env: Env) -> None:
    c = responsys_client(env)
    assert c.get(f"{N}/eventList").json() == list(catalog.RESPONSYS_EVENT_LIST)
    body = {"name": "cb", "url": env.receiver.url("cb"), "batchSize": 2,
            "authentication": {"type": "B", "data": {"userName": "u", "password": "p"}},
            "backupUrl ": env.receiver.url("backup")}  # the stray space of Oracle's sample
    r = c.post(f"{N}/callbacks", json=body)
    assert r.status_code == 200, r.text
    created = r.json()
    assert (created["name"], created["batchSize"], created["backupUrl"]) == (
        "cb", 2, env.receiver.url("backup"))
    assert created["signingSecret"].startswith("whsec_")
    assert "password" not in str(created)
    env.receiver.accept("cb", [created["signingSecret"]], "u", "p")
    for path in (f"{N}/callbacks/cb/actions/verify", f"{N}/callbacks/cb?action=verify"):
        r = c.get(path)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "Successfully verified [cb] "}
    got = c.get(f"{N}/callbacks/cb").json()
    assert {lk["rel"] for lk in got["links"]} == {"self", "deleteCallBack", "createCallBack",
                                                  "updateCallBack"}
    r = c.put(f"{N}/callbacks/cb", json={"name": "cb", "batchSize": 3, "authentication": {
        "type": "B", "data": {"userName": "u", "password": "p"}}})
    assert r.status_code == 200 and r.json()["batchSize"] == 3

    sub = {"name": "s1", "callBackName": "cb", "eventTypes": ["EMAIL_BOUNCED", "SMS_RECEIPT"],
           "filters": [{"eventTypes": ["EMAIL_BOUNCED"],
                        "values": [{"campaignNames": ["Spring"]}]}]}
    r = c.post(f"{N}/subscriptions", json=sub)
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["subscriptionName"], s["callBackName"], s["callBackUrl"], s["batchSize"],
            s["status"]) == ("s1", "cb", env.receiver.url("cb"), 3, "ACTIVE")
    assert s["filters"] == sub["filters"]
    assert [x["subscriptionName"] for x in c.get(f"{N}/subscriptions").json()] == ["s1"]
    per_cb = c.get(f"{N}/callbacks/cb/subscriptions").json()
    assert per_cb["callBackName"] == "cb" and per_cb["subscriptions"][0]["name"] == "s1"

    r = c.put(f"{N}/subscriptions/s1", json={"callBackName": "cb", "eventTypes":
                                             ["EMAIL_BOUNCED"], "status": "PAUSED",
                                             "statusReason": "holiday"})
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["statusReason"]) == ("PAUSED", "holiday")
    assert c.get(f"{N}/subscriptions/s1").json()["eventTypes"] == ["EMAIL_BOUNCED"]

    # Delete is refused while a subscription uses the callback, in Responsys' shape.
    r = c.delete(f"{N}/callbacks/cb")
    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_PARAMETER"
    assert c.delete(f"{N}/subscriptions/s1").json()["status"] is True
    r = c.delete(f"{N}/callbacks/cb")
    assert r.json() == {"message": "CallBack [cb] deleted successfully", "status": True}
    r = c.get(f"{N}/callbacks/cb")
    assert r.status_code == 404 and r.json()["errorCode"] == "OBJECT_NOT_FOUND"


@pytest.mark.parametrize("body", [
    {"name": "x", "url": "http://127.0.0.1/", "batchSize": 201},
    {"name": "x", "url": "http://127.0.0.1/", "batchSize": 0},
    {"name": "x", "url": "ftp://127.0.0.1/", "batchSize": 1},
    {"name": "", "url": "http://127.0.0.1/", "batchSize": 1},
    {"name": "x", "url": "http://127.0.0.1/", "batchSize": 1, "authentication": {"type": "O"}},
])
def test_responsys_invalid_callbacks(env: Env, body: dict[str, object]) -> None:
    r = responsys_client(env).post(f"{N}/callbacks", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "INVALID_PARAMETER"


def test_responsys_body_too_large_is_named(env: Env) -> None:
    r = responsys_client(env).post(f"{N}/callbacks", content=b" " * (2 << 20),
                                   headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["errorCode"] == "INVALID_REQUEST_BODY" and "limit" in r.json()["detail"]


def test_responsys_subscription_errors(env: Env) -> None:
    c = responsys_client(env)
    r = c.post(f"{N}/subscriptions", json={"name": "s", "callBackName": "none",
                                           "eventTypes": ["EMAIL_BOUNCED"]})
    assert r.status_code == 404 and r.json()["errorCode"] == "OBJECT_NOT_FOUND"
    env.callback("cb")
    r = c.post(f"{N}/subscriptions", json={"name": "s", "callbackName": "cb",
                                           "eventNames": ["NOT_AN_EVENT"]})
    assert r.status_code == 400 and "NOT_AN_EVENT" in r.json()["detail"]
    assert c.post(f"{N}/subscriptions", json={"name": "s", "callBackName": "cb",
                                              "eventTypes": ["EMAIL_BOUNCED"]}).status_code == 200
    r = c.post(f"{N}/subscriptions", json={"name": "s", "callBackName": "cb",
                                           "eventTypes": ["EMAIL_BOUNCED"]})
    assert r.status_code == 400  # exists already
    assert c.put(f"{N}/subscriptions/missing", json={"status": "PAUSED"}).status_code == 404


def test_verify_reports_an_unreachable_callback(env: Env) -> None:
    env.callback("cb")
    env.receiver.respond("cb", Reply(500))
    r = responsys_client(env).get(f"{N}/callbacks/cb/actions/verify")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Could not connect to callback url [")


def test_read_keys_cannot_manage(env: Env) -> None:
    reader = env.server.client(env.server.new_key("read"))
    r = reader.post("/v1/callbacks", json={"name": "x", "url": env.receiver.url("x")})
    assert r.status_code == 403
    assert reader.get("/v1/callbacks").status_code == 200


@pytest.mark.parametrize("settings", [{"allow_private_callbacks": False}], indirect=True)
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook",
                                 "http://10.0.0.8/hook", "http://169.254.169.254/latest",
                                 "http://[::1]/hook", "http://192.168.1.1/", "ftp://example.com/"])
def test_ssrf_private_targets_are_refused(env: Env, url: str) -> None:
    c = responsys_client(env)
    r = c.post(f"{N}/callbacks", json={"name": "x", "url": url, "batchSize": 1})
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "INVALID_PARAMETER"
    r = env.api.post("/v1/callbacks", json={"name": "y", "url": "https://example.com/",
                                            "backup_url": url})
    assert r.status_code == 400, r.text


async def test_the_sender_refuses_private_addresses_at_connect_time(env: Env) -> None:
    # Even if a stored URL now resolves to loopback (DNS rebinding), nothing is sent.
    sender = WebhookSender(allow_private=False, timeout=5)
    try:
        for url in (env.receiver.url("x").replace("127.0.0.1", "localhost"),
                    env.receiver.url("x")):
            result = await sender.send(url, b"[]", {"Content-Type": "application/json"})
            assert result.status is None and result.error
            assert "public" in result.error
    finally:
        await sender.close()
    assert env.receiver.hits == []


def test_native_status_and_listing(env: Env) -> None:
    env.callback("cb", batch_size=5)
    env.subscribe("sub", "cb", start=1)
    env.ingest(3)
    status = env.get("/v1/subscriptions/sub/status")
    assert status["behind"] == 3 and status["pending"] is None
    assert status["callback"]["status"] == "ACTIVE"
    assert [s["name"] for s in env.get("/v1/subscriptions?callback=cb")["subscriptions"]] == [
        "sub"]
    assert env.api.get("/v1/subscriptions/nope").status_code == 404
    assert env.api.get("/v1/deliveries/999").status_code == 404
    assert env.api.post("/v1/callbacks", json={"name": "cb", "url": env.receiver.url("cb")}
                        ).status_code == 409
    r = env.api.post("/v1/subscriptions", json={"name": "s2", "callback": "cb",
                                                "event_types": ["EMAIL_BOUNCED"], "start": 0})
    assert r.status_code == 400
    assert env.api.delete("/v1/subscriptions/sub").status_code == 204
    assert env.api.delete("/v1/callbacks/cb").status_code == 204
