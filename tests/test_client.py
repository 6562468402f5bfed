"""rqs.client against a real server over HTTP."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import rqs.client
from rqs.client import AsyncClient, Client, ClientError, RetentionGap
from rqs.settings import Settings
from tests.support import Server, running_server, samples


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(Settings(data_dir=tmp_path)) as srv:
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, token=server.admin.token) as c:
        yield c


def envelopes(n: int, type_: str = "CONVERSION", start: int = 0) -> list[dict[str, object]]:
    return [{"type": type_, "id": f"e{i}", "data": {"n": i}} for i in range(start, start + n)]


def expire_everything(server: Server, client: Client) -> int:
    """Move the server's clock past retention and purge: a real retention gap."""
    server.clock.advance(31 * 86400)
    return client.purge()


def test_ingest_objects_bytes_and_ndjson(client: Client) -> None:
    r = client.ingest(samples())
    assert (r.accepted, r.stored, r.duplicates) == (len(samples()), len(samples()), 0)
    assert (r.first_index, r.last_index) == (1, len(samples()))
    assert r.indexes == list(range(1, len(samples()) + 1))
    again = client.ingest(envelopes(2) + envelopes(1, start=1), ndjson=True)
    assert (again.stored, again.duplicates) == (2, 1)
    raw = client.ingest(b'{"type": "SMS_INBOUND", "data": {"message": "STOP"}}\n', ndjson=True)
    assert raw.indexes == [len(samples()) + 3]
    assert client.event(raw.indexes[0]).payload == {"message": "STOP"}


def test_events_page_and_filters(client: Client) -> None:
    client.ingest(samples() * 3)
    page = client.events(limit=10)
    assert [e.index for e in page.events] == list(range(1, 11))
    assert page.has_more and page.next_index == 11 and page.next_after == 10
    assert page.oldest_index == 1 and page.newest_index == 3 * len(samples())
    clicks = client.events(type="EMAIL_CLICKED")
    assert [e.type for e in clicks.events] == ["EMAIL_CLICKED"] * 3 and not clicks.has_more
    both = client.events(type=["EMAIL_OPTIN", "EMAIL_OPTOUT"])
    assert {e.type for e in both.events} == {"EMAIL_OPTIN", "EMAIL_OPTOUT"}
    assert {e.channel for e in client.events(channel=["Sms", "Mms"]).events} == {"Sms", "Mms"}
    assert len(client.events(campaign="SMS_Fail").events) == 3
    later = datetime.now(UTC) + timedelta(hours=1)
    assert client.events(since=later).events == []
    assert len(client.events(until=later, limit=5).events) == 5


def test_iter_events_follows_next_index_through_every_page(client: Client) -> None:
    client.ingest(samples() * 3)
    every = list(client.iter_events(limit=7))
    assert [e.index for e in every] == list(range(1, 3 * len(samples()) + 1))
    sms = list(client.iter_events(channel="Sms", limit=2))
    assert len(sms) == 3 * sum(1 for p in samples() if p["channelType"] == "Sms")
    assert all(e.channel == "Sms" for e in sms)
    assert [e.index for e in client.iter_events(after=80, limit=1)] == [81, 82, 83, 84]


def test_retention_gap_names_the_oldest_index(server: Server, client: Client) -> None:
    client.ingest(samples())
    assert expire_everything(server, client) == len(samples())
    newest = client.ingest(envelopes(1)).indexes[0]
    with pytest.raises(RetentionGap) as gap:
        client.events(after=3)
    assert gap.value.status == 410 and gap.value.oldest_index == newest
    assert gap.value.code == "gone"
    with pytest.raises(RetentionGap):
        next(client.iter_events(after=0))
    with pytest.raises(RetentionGap):
        client.event(2)
    # Without `after` a read starts at the oldest retained event: no gap.
    assert [e.index for e in client.iter_events()] == [newest]


def test_retention_overtaking_a_reader_between_pages(server: Server, client: Client) -> None:
    client.ingest(samples())
    reader = client.iter_events(after=0, limit=5)
    assert [e.index for e in itertools.islice(reader, 5)] == [1, 2, 3, 4, 5]
    expire_everything(server, client)
    client.ingest(envelopes(1))
    with pytest.raises(RetentionGap) as gap:
        next(reader)
    assert gap.value.oldest_index == len(samples()) + 1


def test_follow_tails_new_events_and_sleeps_only_when_idle(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.ingest(envelopes(25))
    sleeps: list[float] = []

    class Stop(Exception):
        pass

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            client.ingest(envelopes(1, "SMS_INBOUND", start=100))
        else:
            raise Stop

    monkeypatch.setattr(rqs.client, "_sleep", fake_sleep)
    seen = []
    with pytest.raises(Stop):
        for event in client.follow(after=0, poll_interval=7, limit=10):
            seen.append(event.index)
    assert seen == list(range(1, 27))
    assert sleeps == [7, 7]  # none while pages were full


def test_follow_without_after_starts_at_the_call(client: Client) -> None:
    client.ingest(envelopes(3))
    tail = client.follow(poll_interval=0)
    client.ingest(envelopes(2, start=3))
    assert [e.index for e in itertools.islice(tail, 2)] == [4, 5]
    filtered = client.follow(after=0, poll_interval=0, type="SMS_INBOUND")
    client.ingest(envelopes(1, "SMS_INBOUND", start=9))
    assert next(filtered).index == 6


def test_stats_are_typed_and_keep_the_whole_body(client: Client) -> None:
    client.ingest(samples())
    client.ingest([{"failureType": "EMAIL_TELEPORTED", "channelType": "Email"}])
    s = client.stats()
    assert (s.retained, s.oldest_index, s.newest_index) == (len(samples()) + 1, 1, 29)
    assert {t.type for t in s.by_type} >= {"SMS_RECEIPT", "EMAIL_TELEPORTED"}
    assert [t.catalogued for t in s.by_type if t.type == "EMAIL_TELEPORTED"] == [False]
    assert s.by_channel["Email"]["retained"] == 1 + sum(
        1 for p in samples() if p["channelType"] == "Email")
    assert s.raw["uncatalogued"] == {"retained": 1, "ingested": 1}


def test_errors_carry_status_and_the_server_body(server: Server, client: Client) -> None:
    with pytest.raises(ClientError) as invalid:
        client.ingest([{"type": "A"}, {"failureType": "EMAIL_CLICKED"}])
    assert invalid.value.status == 422 and invalid.value.code == "validation_failed"
    assert invalid.value.body["problems"][0]["field"] == "data"
    with pytest.raises(ClientError) as missing:
        client.event(999)
    assert missing.value.status == 404 and not isinstance(missing.value, RetentionGap)
    with pytest.raises(ClientError) as bad_limit:
        client.events(limit=0)
    assert bad_limit.value.body["parameter"] == "limit"


def test_authentication_modes(server: Server) -> None:
    admin = server.admin
    with Client(server.url, key_id=admin.key.id, secret=admin.secret) as basic:
        assert basic.stats().retained == 0
    with Client(server.url) as anonymous, pytest.raises(ClientError) as no_auth:
        anonymous.stats()
    assert no_auth.value.status == 401
    with Client(server.url, token=f"{admin.key.id}.wrong") as wrong, \
            pytest.raises(ClientError) as denied:
        wrong.stats()
    assert denied.value.status == 403
    ingest_only = server.new_key("ingest")
    with Client(server.url, token=ingest_only.token) as writer:
        assert writer.ingest(envelopes(1)).stored == 1
        with pytest.raises(ClientError) as scope:
            writer.events()
        assert scope.value.status == 403
    with pytest.raises(ValueError):
        Client(server.url, token="a.b", key_id="a", secret="b")


def free_port_url() -> str:
    """A loopback port that was just free: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_unreachable_server_is_a_client_error_without_status() -> None:
    url = free_port_url()
    with Client(url, timeout=2) as c:
        with pytest.raises(ClientError) as exc:
            c.stats()
        assert exc.value.status is None and url in exc.value.message
        timeout = c._http.timeout
        assert (timeout.read, timeout.connect) == (2, 2)


async def test_async_client(server: Server) -> None:
    async with AsyncClient(server.url, token=server.admin.token) as c:
        assert (await c.ingest(samples())).stored == len(samples())
        assert [e.index async for e in c.iter_events(limit=5)] == list(
            range(1, len(samples()) + 1))
        assert (await c.event(1)).type == "EMAIL_BOUNCED"
        tail = c.follow(after=len(samples()) - 1, poll_interval=0)
        assert (await anext(tail)).index == len(samples())
        await tail.aclose()
        server.clock.advance(31 * 86400)
        assert await c.purge() == len(samples())
        await c.ingest(envelopes(1))
        with pytest.raises(RetentionGap) as gap:
            await c.events(after=0)
        assert gap.value.oldest_index == len(samples()) + 1
        assert (await c.stats()).retained == 1
