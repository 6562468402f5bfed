"""The pure delivery core: classification, retry policy, signing, URL rules, filters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from rqs.domain import delivery as d
from rqs.errors import InvalidRequest


@pytest.mark.parametrize(("status", "outcome"), [
    (200, d.Outcome.SUCCESS), (204, d.Outcome.SUCCESS), (None, d.Outcome.RETRY),
    (408, d.Outcome.RETRY), (429, d.Outcome.RETRY), (500, d.Outcome.RETRY),
    (503, d.Outcome.RETRY), (301, d.Outcome.RETRY), (400, d.Outcome.REJECTED),
    (401, d.Outcome.REJECTED), (404, d.Outcome.REJECTED), (410, d.Outcome.GONE),
])
def test_classify(status: int | None, outcome: d.Outcome) -> None:
    assert d.classify(status) is outcome


def test_retry_delays_follow_the_schedule_with_jitter_then_give_up() -> None:
    schedule = (5.0, 30.0, 120.0)
    rng = random.Random(1)
    for attempt, base in enumerate(schedule, start=1):
        for _ in range(50):
            dec = d.next_attempt(attempt, d.Outcome.RETRY, schedule, rng)
            assert dec.action is d.Action.RETRY
            assert base * 0.8 <= dec.delay <= base * 1.2
    assert d.next_attempt(4, d.Outcome.RETRY, schedule, rng).action is d.Action.DEAD


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    rng = random.Random(2)
    assert d.next_attempt(1, d.Outcome.RETRY, (1.0,), rng, 30.0).delay == 30.0
    assert d.next_attempt(1, d.Outcome.RETRY, (100.0,), rng, 1.0).delay >= 80.0
    assert d.next_attempt(1, d.Outcome.RETRY, (1.0,), rng, 10**9).delay == d.MAX_RETRY_AFTER


def test_final_outcomes() -> None:
    rng = random.Random(3)
    assert d.next_attempt(1, d.Outcome.SUCCESS, (1.0,), rng).action is d.Action.SUCCEEDED
    assert d.next_attempt(1, d.Outcome.REJECTED, (1.0,), rng).action is d.Action.DEAD
    assert d.next_attempt(1, d.Outcome.GONE, (1.0,), rng).action is d.Action.DISABLE


def test_parse_retry_after() -> None:
    now = time.time()
    assert d.parse_retry_after("120", now) == 120.0
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 60))
    found = d.parse_retry_after(http_date, now)
    assert found is not None and 58 <= found <= 61
    assert d.parse_retry_after("soon", now) is None
    assert d.parse_retry_after(None, now) is None


def test_default_schedule_reaches_about_a_day() -> None:
    from rqs.settings import DEFAULT_RETRY_SCHEDULE

    assert 20 * 3600 <= sum(DEFAULT_RETRY_SCHEDULE) <= 36 * 3600


def test_signature_verifies_with_standardwebhooks_for_every_secret() -> None:
    a, b = d.generate_secret(), d.generate_secret()
    body = b'[{"riid":"1"}]'
    ts = int(time.time())
    header = d.sign([a, b], "msg_1", ts, body)
    assert header.count("v1,") == 2
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts), "webhook-signature": header}
    for secret in (a, b):
        assert Webhook(secret).verify(body, headers) == [{"riid": "1"}]


@pytest.mark.parametrize("size", [0, 1, 2_046, 2_047, 2_048, 4_095, 100_003])
def test_signature_of_bodies_hashed_in_pieces(size: int) -> None:
    # Large bodies are hashed in pieces (the event loop keeps the GIL): same signature.
    secret = d.generate_secret()
    body = b"[" + bytes(random.Random(size).randrange(32, 127) for _ in range(size)) + b"]"
    headers = {"webhook-id": "msg_2", "webhook-timestamp": "1700000000",
               "webhook-signature": d.sign([secret], "msg_2", 1_700_000_000, body)}
    wh = Webhook(secret)
    expected = wh.sign("msg_2", _at(1_700_000_000), body.decode())
    assert headers["webhook-signature"] == expected


@pytest.mark.parametrize("key_bytes", [16, 24, 63, 64, 65, 200])
def test_signature_is_hmac_sha256_for_every_key_length(key_bytes: int) -> None:
    # Keys longer than SHA-256's block are hashed first (RFC 2104); shorter ones padded.
    key = random.Random(key_bytes).randbytes(key_bytes)
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'[{"riid":"7"}]'
    mac = hmac.new(key, b"msg_3.1700000000." + body, hashlib.sha256).digest()
    assert d.sign([secret], "msg_3", 1_700_000_000, body) == (
        "v1," + base64.b64encode(mac).decode())


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_secrets_are_checked() -> None:
    assert d.check_secret(d.generate_secret()).startswith("whsec_")
    with pytest.raises(InvalidRequest):
        d.check_secret("whsec_short")
    with pytest.raises(InvalidRequest):
        d.check_secret("not base64 at all!")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4",
                                     "169.254.169.254", "::1", "fe80::1", "fc00::1", "0.0.0.0",
                                     "::ffff:127.0.0.1", "100.64.0.1", "224.0.0.1"])
def test_non_public_addresses(address: str) -> None:
    assert not d.is_public(address)


def test_public_addresses() -> None:
    assert d.is_public("93.184.216.34") and d.is_public("2606:4700::1111")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/x", "http:///x",
                                 "http://user:pw@example.com/", "http://example.com:99999/"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidRequest):
        d.check_url(url)


def test_campaign_rule() -> None:
    rule = d.CampaignRule.of([d.CampaignFilter(("EMAIL_CLICKED",), ("A", "B")),
                              d.CampaignFilter((), ("Z",))])
    assert rule.passes("EMAIL_CLICKED", b'{"campaignName":"A"}')
    assert not rule.passes("EMAIL_CLICKED", b'{"campaignName":"Z"}')
    assert rule.passes("EMAIL_BOUNCED", b'{"campaignName":"Z"}')  # the catch-all filter
    assert not rule.passes("EMAIL_BOUNCED", b'{"campaign_name":"A"}')
    assert not rule.passes("EMAIL_CLICKED", b'{"riid":"1"}')
    assert d.CampaignRule.of([d.CampaignFilter(("EMAIL_CLICKED",), ("A",))]).passes(
        "EMAIL_BOUNCED", b"{}")


def test_backup_url_from_the_fourth_attempt() -> None:
    cb = d.Callback("dom", "cb", "https://a.example/", 10, backup_url="https://b.example/")
    assert [cb.url_for_attempt(n) for n in (1, 2, 3, 4, 5)] == [cb.url] * 3 + [cb.backup_url] * 2
    assert d.Callback("dom", "cb", "https://a.example/", 10).url_for_attempt(9) == cb.url


def test_should_disable() -> None:
    assert not d.should_disable(None, 10**12, 1)
    assert d.should_disable(0, 10_000_000, 10)
    assert not d.should_disable(0, 9_999_999, 10)
