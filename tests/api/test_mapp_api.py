"""The Mapp Engage ``async`` API (``/api/rest/v{N}/async/...``) over real HTTP."""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from rqs.errors import StorageUnavailable
from tests.support import Server, samples

JSON = "application/json"
XML = "application/xml"
Result = tuple[str, list[tuple[str, str]]]


def call(c: httpx.Client, method: str, accept: str | None = JSON, version: int = 19,
         **params: object) -> httpx.Response:
    headers = {"accept": accept} if accept is not None else {}
    return c.get(f"/api/rest/v{version}/async/{method}", params=params, headers=headers)


def results(r: httpx.Response) -> list[Result]:
    """Async results as (queueId, [(name, value), ...]), checking the structure of either format."""
    assert r.status_code == 200, r.text
    if r.headers["content-type"].startswith(XML):
        root = ET.fromstring(r.content)
        assert root.tag == "asyncResults"
        out = []
        for item in root:
            assert item.tag == "asyncResult"
            assert item[0].tag == "queueId"
            assert {child.tag for child in item} <= {"queueId", "output"}
            pairs = []
            for output in item.findall("output"):
                assert [child.tag for child in output] == ["name", "value"]
                pairs.append((output.findtext("name") or "", output.findtext("value") or ""))
            out.append((item.findtext("queueId") or "", pairs))
        return out
    assert r.headers["content-type"].startswith(JSON)
    body = r.json()
    assert isinstance(body, list)
    for item in body:
        assert list(item) == ["queueId", "output"]
        assert all(list(o) == ["name", "value"] for o in item["output"])
    return [(i["queueId"], [(o["name"], o["value"]) for o in i["output"]]) for i in body]


def indexes(r: httpx.Response) -> list[int]:
    return [int(dict(pairs)["index"]) for _, pairs in results(r)]


def error(r: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert r.status_code == status, r.text
    if r.headers["content-type"].startswith(XML):
        root = ET.fromstring(r.content)
        assert root.tag == "error"
        body = {child.tag: child.text or "" for child in root}
    else:
        body = r.json()
    assert body["errorCode"] == code, body
    assert body["errorActor"] == ("SERVER" if status >= 500 else "CLIENT")
    assert body["message"]
    return body


def ingest(c: httpx.Client, items: list[dict[str, Any]]) -> list[int]:
    r = c.post("/v1/events", json=items)
    assert r.status_code == 200, r.text
    return list(r.json()["indexes"])


def prop_of(payload: dict[str, Any]) -> object:
    return ((payload.get("optionalData") or {}).get("props") or {}).get("prop")


def click(n: int) -> dict[str, Any]:
    return {"failureType": "EMAIL_CLICKED", "channelType": "Email", "riid": str(n),
            "campaignName": f"c{n}"}


def bounce(n: int) -> dict[str, Any]:
    return {"failureType": "EMAIL_BOUNCED", "channelType": "Email", "riid": str(n)}


# --- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [JSON, XML])
def test_poll_by_type_returns_flattened_results(server: Server, accept: str) -> None:
    c = server.client()
    ingest(c, samples())
    got = results(call(c, "pollByType", accept, type="allMessages", limit=100))
    assert [q for q, _ in got] == [f"rqs-default-{i}" for i in range(1, len(samples()) + 1)]
    for (_, pairs), payload in zip(got, samples(), strict=True):
        names = [n for n, _ in pairs]
        assert names[:4] == ["index", "type", "channel", "received_at"]
        assert pairs[3][1].endswith("Z")
        fields = dict(pairs)
        assert fields["failureType"] == payload["failureType"]
        assert fields["riid"] == payload.get("riid", fields.get("riid"))
        assert "optionalData" not in " ".join(names)


@pytest.mark.parametrize("accept", [JSON, XML])
def test_both_prop_shapes_become_outputs_under_their_own_names(server: Server, accept: str
                                                               ) -> None:
    c = server.client()
    single = next(p for p in samples() if isinstance(prop_of(p), dict))
    several = next(p for p in samples() if isinstance(prop_of(p), list))
    ingest(c, [single, several])
    (_, one), (_, two) = results(call(c, "pollByIndex", accept, topic="allMessages", index=1))
    assert dict(one)["EMAIL_ADDRESS_"] == "john.doe@oracle.com"
    assert [n for n, _ in two][-2:] == ["CUSTOM_COLUMN1", "EMAIL_ADDRESS_"]
    assert dict(two)["CUSTOM_COLUMN1"] == several["optionalData"]["props"]["prop"][0]["value"]


@pytest.mark.parametrize("accept", [JSON, XML])
def test_general_payloads_nesting_nulls_escaping_and_ids(server: Server, accept: str) -> None:
    c = server.client()
    data = {"n": 5, "ok": True, "gone": None, "deep": {"a": {"b": "x"}}, "list": ["p", "q"],
            "text": 'a & b < c > d "quoted" \u0001bell\r\n', "riid": "1",
            "optionalData": {"props": {"prop": [{"name": "riid", "value": "2"}]}}}
    r = c.post("/v1/events", json={"type": "CONVERSION", "id": "ext-7", "data": data,
                                   "occurred_at": "2026-01-02T03:04:05Z"})
    assert r.status_code == 200, r.text
    ((qid, pairs),) = results(call(c, "pollByType", accept, type="conversion"))
    assert qid == "ext-7"
    names = [n for n, _ in pairs]
    assert names[:5] == ["index", "type", "channel", "received_at", "occurred_at"]
    assert pairs[5:] == [("n", "5"), ("ok", "true"), ("deep.a.b", "x"), ("list.0", "p"),
                         ("list.1", "q"),
                         ("text", 'a & b < c > d "quoted" bell\r\n' if accept == XML
                          else 'a & b < c > d "quoted" \u0001bell\r\n'),
                         ("riid", "1"), ("riid", "2")]


def test_count_methods_answer_bare_integers(server: Server) -> None:
    c = server.client()
    ingest(c, [click(1), click(2), bounce(3)])
    assert call(c, "getSubmitCount", topic="linkClick").json() == 2
    assert call(c, "getSubmitCount").json() == 3
    xml = call(c, "getSubmitCount", XML, topic="mtaResponse")
    assert xml.headers["content-type"].startswith(XML)
    root = ET.fromstring(xml.content)
    assert (root.tag, root.text) == ("long", "1")
    for method in ("getPollCount", "getNextIndex"):
        assert ET.fromstring(call(c, method, XML, topic="linkClick").content).tag == "long"


@pytest.mark.parametrize("accept,expected", [
    (None, JSON), ("*/*", JSON), ("application/*", JSON), (JSON, JSON), (XML, XML),
    ("text/xml", XML), ("application/xml;q=0.5, application/json;q=0.9", JSON),
    ("application/json;q=0.1, application/xml", XML), ("text/html, */*;q=0.1", JSON),
])
def test_accept_negotiation(server: Server, accept: str | None, expected: str) -> None:
    r = call(server.client(), "getPollCount", accept, topic="linkClick")
    assert r.status_code == 200 and r.headers["content-type"].startswith(expected)


# --- versions and errors ---------------------------------------------------------------


def test_methods_exist_from_their_version(server: Server) -> None:
    c = server.client()
    assert call(c, "pollByType", version=13, type="linkClick").status_code == 200
    error(call(c, "pollByType", version=12, type="linkClick"), 404, "NO_SUCH_OBJECT")
    assert call(c, "pollByRange", version=19, type="linkClick", **{"from": 0, "to": 9}
                ).status_code == 200
    error(call(c, "pollByRange", version=12, type="linkClick", **{"from": 0, "to": 9}), 404,
          "NO_SUCH_OBJECT")
    assert call(c, "pollByIndex", version=9, topic="linkClick", index=1).status_code == 200
    error(call(c, "getNextIndex", XML, version=8, topic="linkClick"), 404, "NO_SUCH_OBJECT")
    for method in ("getPollCount", "getSubmitCount", "poll"):
        assert call(c, method, version=1, topic="linkClick").status_code == 200
    error(call(c, "poll", version=0, topic="linkClick"), 404, "NO_SUCH_OBJECT")
    error(call(c, "poll", version=20, topic="linkClick"), 404, "NO_SUCH_OBJECT")
    error(call(c, "submit", version=19), 404, "NO_SUCH_OBJECT")


@pytest.mark.parametrize("accept", [JSON, XML])
def test_parameter_errors(server: Server, accept: str) -> None:
    c = server.client()
    body = error(call(c, "pollByType", accept), 400, "MISSING_PARAMETER")
    assert body["parameterName"] == "type"
    assert error(call(c, "pollByType", accept, type="nope"), 400,
                 "INVALID_PARAMETER")["parameterName"] == "type"
    for bad in ("0", "-1", "100001", "abc", "1.5", "1_000"):
        assert error(call(c, "pollByType", accept, type="linkClick", limit=bad), 400,
                     "INVALID_PARAMETER")["parameterName"] == "limit"
    assert error(call(c, "pollByIndex", accept, topic="linkClick"), 400,
                 "MISSING_PARAMETER")["parameterName"] == "index"
    assert error(call(c, "pollByIndex", accept, topic="linkClick", index=0), 400,
                 "INVALID_PARAMETER")["parameterName"] == "index"
    assert error(call(c, "pollByRange", accept, type="linkClick", **{"from": 5}), 400,
                 "MISSING_PARAMETER")["parameterName"] == "to"
    assert error(call(c, "pollByRange", accept, type="linkClick", **{"from": 5, "to": 5}), 400,
                 "INVALID_PARAMETER")["parameterName"] == "to"
    assert error(call(c, "poll", accept), 400, "MISSING_PARAMETER")["parameterName"] == "topic"
    assert error(call(c, "poll", accept, topic="no-such-topic"), 404,
                 "NO_SUCH_OBJECT")["objectType"] == "Topic"
    error(call(c, "getNextIndex", accept, topic="no-such-topic"), 404, "NO_SUCH_OBJECT")
    error(call(c, "poll", "text/html", topic="linkClick"), 406, "NOT_ACCEPTABLE")


def test_authentication_errors(server: Server) -> None:
    anon = httpx.Client(base_url=server.url)
    r = call(anon, "pollByType", type="linkClick")
    error(r, 401, "AUTHENTICATION_REQUIRED")
    assert r.headers["www-authenticate"].startswith("Basic")
    wrong = httpx.Client(base_url=server.url, auth=(server.admin.key.id, "nope"))
    error(call(wrong, "pollByType", XML, type="linkClick"), 403, "PERMISSION_DENIED")
    ingest_only = server.client(server.new_key("ingest"))
    error(call(ingest_only, "pollByType", type="linkClick"), 403, "PERMISSION_DENIED")
    error(call(ingest_only, "getPollCount", topic="linkClick"), 403, "PERMISSION_DENIED")
    bearer = httpx.Client(base_url=server.url,
                          headers={"authorization": f"Bearer {server.admin.token}"})
    assert call(bearer, "getSubmitCount").json() == 0


def test_index_past_retention_is_gone(server: Server) -> None:
    c = server.client()
    ingest(c, [click(1), click(2)])
    server.clock.advance(31 * 86400)
    assert c.post("/v1/purge").json() == {"removed": 2}
    ingest(c, [click(3)])
    body = error(call(c, "pollByIndex", topic="linkClick", index=1), 410, "INDEX_EXPIRED")
    assert "oldest available is 3" in body["message"]
    error(call(c, "pollByIndex", XML, topic="linkClick", index=2), 410, "INDEX_EXPIRED")
    assert indexes(call(c, "pollByIndex", topic="linkClick", index=3)) == [3]


@pytest.mark.parametrize("method,params", [
    ("pollByType", {"type": "linkClick"}),
    ("pollByIndex", {"topic": "linkClick", "index": 1}),
    ("getNextIndex", {"topic": "linkClick"}),
])
def test_storage_unavailable_is_503_with_retry_after(
    server: Server, monkeypatch: pytest.MonkeyPatch, method: str, params: dict[str, object]
) -> None:
    async def down(domain: str) -> None:
        raise StorageUnavailable(retry_after=7)

    monkeypatch.setattr(server.app.state.queue.storage, "bounds", down)  # type: ignore[attr-defined]
    r = call(server.client(), method, XML, **params)
    error(r, 503, "SERVICE_UNAVAILABLE")
    assert r.headers["retry-after"] == "7"


def test_head_does_not_poll(server: Server) -> None:
    c = server.client()
    ingest(c, [click(1)])
    r = c.head("/api/rest/v19/async/pollByType", params={"type": "linkClick"})
    assert r.status_code == 405
    assert indexes(call(c, "pollByType", type="linkClick")) == [1]


# --- cursors ---------------------------------------------------------------------------


def test_poll_by_type_walks_a_cursor_without_gaps_or_overlap(server: Server) -> None:
    c = server.client()
    every = ingest(c, samples() * 3)
    seen: list[int] = []
    while True:
        page = indexes(call(c, "pollByType", XML if len(seen) % 2 else JSON,
                            type="allMessages", limit=7))
        if not page:
            break
        assert len(page) <= 7
        seen += page
    assert seen == every
    assert indexes(call(c, "pollByType", type="allMessages")) == []
    more = ingest(c, [click(99)])
    assert indexes(call(c, "pollByType", type="allMessages")) == more


def test_cursors_are_per_type_and_per_key(server: Server) -> None:
    c = server.client()
    ingest(c, [click(1), bounce(2), click(3), bounce(4)])
    assert indexes(call(c, "pollByType", type="linkClick", limit=1)) == [1]
    assert indexes(call(c, "pollByType", type="mtaResponse", limit=1)) == [2]
    assert indexes(call(c, "pollByType", type="EMAIL_CLICKED")) == [1, 3]  # its own cursor
    assert indexes(call(c, "pollByType", type="linkClick")) == [3]
    other = server.client(server.new_key("read"))
    assert indexes(call(other, "pollByType", type="linkClick")) == [1, 3]
    # poll keeps its own cursor even for a name pollByType uses
    assert indexes(call(c, "poll", topic="linkClick")) == [1, 3]


def test_disconnecting_mid_response_does_not_move_the_cursor(any_server: Server) -> None:
    server = any_server
    c = server.client()
    filler = "x" * 600
    ingest(c, [{**click(n), "failureReason": filler} for n in range(25_000)])
    url = urlparse(server.url)
    auth = base64.b64encode(f"{server.admin.key.id}:{server.admin.secret}".encode()).decode()
    with socket.create_connection((url.hostname or "", url.port or 80)) as raw:
        # A small receive window: the server fills it, the socket buffers, and then waits.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.sendall(f"GET /api/rest/v19/async/pollByType?type=linkClick&limit=100000 HTTP/1.1\r\n"
                    f"Host: {url.netloc}\r\nAuthorization: Basic {auth}\r\n"
                    "Accept: application/json\r\n\r\n".encode())
        start = raw.recv(4096)
        assert start.startswith(b"HTTP/1.1 200")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    # The next poll waits for the abandoned one to let go of the cursor, then starts over.
    assert indexes(call(c, "pollByType", type="linkClick", limit=2)) == [1, 2]
    # And the store is whole: a long read after it still gets every event.
    assert len(results(call(c, "pollByRange", type="linkClick", limit=100_000,
                            **{"from": 0, "to": 2**31}))) == 25_000


def test_reading_the_whole_response_moves_the_cursor(any_server: Server) -> None:
    c = any_server.client()
    ingest(c, [click(n) for n in range(12_000)])
    with c.stream("GET", "/api/rest/v19/async/pollByType",
                  params={"type": "linkClick", "limit": 11_000}) as r:
        body = b"".join(r.iter_bytes())
    assert len(json.loads(body)) == 11_000
    assert indexes(call(c, "pollByType", type="linkClick", limit=1)) == [11_001]


def test_concurrent_polls_on_one_cursor_share_the_events(server: Server) -> None:
    c = server.client()
    every = ingest(c, [click(n) for n in range(300)])
    barrier = threading.Barrier(2)
    got: list[list[int]] = []

    def poll() -> None:
        client = server.client()
        barrier.wait()
        got.append(indexes(call(client, "pollByType", type="linkClick", limit=200)))

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = sorted(got, key=len, reverse=True)
    assert first == sorted(first) and second == sorted(second)
    assert not set(first) & set(second)
    assert sorted(first + second) == every
    assert len(first) == 200


# --- topics, counts and indexes ----------------------------------------------------------


def test_poll_counts_and_next_index(server: Server) -> None:
    c = server.client()
    every = ingest(c, [click(1), bounce(2), click(3), click(4), bounce(5)])
    clicks = [every[0], every[2], every[3]]
    assert call(c, "getNextIndex", topic="linkClick").json() == 1
    assert indexes(call(c, "poll", topic="linkClick", limit=2)) == clicks[:2]
    assert call(c, "getPollCount", topic="linkClick").json() == 2
    assert call(c, "getPollCount", topic="mtaResponse").json() == 0
    following = call(c, "getNextIndex", topic="linkClick").json()
    assert following == clicks[1] + 1
    # pollByIndex picks up where poll stopped, and does not move anything
    assert indexes(call(c, "pollByIndex", topic="linkClick", index=following)) == clicks[2:]
    assert indexes(call(c, "pollByIndex", topic="linkClick", index=following)) == clicks[2:]
    assert call(c, "getPollCount", topic="linkClick").json() == 2
    assert indexes(call(c, "poll", topic="linkClick")) == clicks[2:]
    assert call(c, "getPollCount", topic="linkClick").json() == 3
    # pollByType is not poll: it leaves the topic's count alone
    call(c, "pollByType", type="linkClick")
    assert call(c, "getPollCount", topic="linkClick").json() == 3
    assert call(c, "getSubmitCount", topic="linkClick").json() == 3


def test_created_topics_work_with_poll_and_poll_by_index(server: Server) -> None:
    c = server.client()
    r = c.post("/v1/topics", json={"name": "sms-and-clicks", "types": ["linkClick"],
                                   "channels": ["Email"]})
    assert r.status_code == 201, r.text
    sms = {"failureType": "SMS_FAILED", "channelType": "Sms", "riid": "9"}
    every = ingest(c, [click(1), sms, bounce(2), click(3)])
    assert indexes(call(c, "poll", XML, topic="sms-and-clicks", limit=1)) == [every[0]]
    assert indexes(call(c, "poll", topic="sms-and-clicks")) == [every[3]]
    assert indexes(call(c, "pollByIndex", topic="sms-and-clicks", index=1)) == [every[0],
                                                                                 every[3]]
    assert call(c, "getSubmitCount", topic="sms-and-clicks").json() == 2
    assert call(c, "getPollCount", topic="sms-and-clicks").json() == 2


def test_poll_by_range_is_by_insertion_time_and_repeatable(server: Server) -> None:
    c = server.client()
    every = ingest(c, [click(1), bounce(2), click(3)])
    received = c.get("/v1/events/1").json()["received_at"]
    from datetime import datetime

    second = int(datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp())
    window = {"from": second, "to": second + 1}
    for accept in (JSON, XML):
        got = indexes(call(c, "pollByRange", accept, type="linkClick", **window))
        assert got == [every[0], every[2]]
    assert indexes(call(c, "pollByRange", type="allMessages", limit=1, **window)) == [every[0]]
    assert indexes(call(c, "pollByRange", type="linkClick",
                        **{"from": second - 10, "to": second})) == []
