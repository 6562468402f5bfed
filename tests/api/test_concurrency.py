"""Several ingest clients and pollers at once: every consumer sees every event exactly once,
in index order, with no gaps."""

from __future__ import annotations

import threading
import time

import httpx

from tests.support import Server

WRITERS, BATCHES, PER_BATCH = 4, 25, 80
TOTAL = WRITERS * BATCHES * PER_BATCH
TYPES = ["EMAIL_CLICKED", "EMAIL_BOUNCED", "SMS_INBOUND", "PUSH_CLICKED"]


def _ingest(server: Server, worker: int, errors: list[str]) -> None:
    with server.client() as c:
        for b in range(BATCHES):
            batch = [{"type": TYPES[(b + i) % 4], "id": f"w{worker}-{b}-{i}", "data": {"i": i}}
                     for i in range(PER_BATCH)]
            r = c.post("/v1/events", json=batch)
            if r.status_code != 200:
                errors.append(r.text)


def _index_of(result: dict[str, object]) -> int:
    outputs = result["output"]
    assert isinstance(outputs, list)
    return int(next(o["value"] for o in outputs if o["name"] == "index"))


def _native_consumer(server: Server, seen: list[int], deadline: float) -> None:
    after = 0
    with server.client() as c:
        while len(seen) < TOTAL and time.monotonic() < deadline:
            page = c.get(f"/v1/events?after={after}&limit=700").json()
            for e in page["events"]:
                seen.append(e["index"])
                after = e["index"]


def _cursor_consumer(client: httpx.Client, seen: list[int], shared_total: list[int],
                     lock: threading.Lock, deadline: float) -> None:
    while time.monotonic() < deadline:
        with lock:
            if shared_total[0] >= TOTAL:
                return
        r = client.get("/api/rest/v19/async/pollByType?type=allMessages&limit=500",
                       headers={"accept": "application/json"})
        assert r.status_code == 200, r.text
        got = [_index_of(x) for x in r.json()]
        seen.extend(got)
        with lock:
            shared_total[0] += len(got)


def test_concurrent_ingest_and_polls(server: Server) -> None:
    deadline = time.monotonic() + 120
    errors: list[str] = []
    native: list[list[int]] = [[] for _ in range(3)]
    shared_key = server.new_key("read")
    other_key = server.new_key("read")
    same_cursor: list[list[int]] = [[], []]
    other_cursor: list[int] = []
    lock = threading.Lock()
    shared_total, other_total = [0], [0]
    threads = [threading.Thread(target=_ingest, args=(server, w, errors)) for w in range(WRITERS)]
    threads += [threading.Thread(target=_native_consumer, args=(server, s, deadline))
                for s in native]
    threads += [threading.Thread(target=_cursor_consumer,
                                 args=(server.client(shared_key), s, shared_total, lock, deadline))
                for s in same_cursor]
    threads.append(threading.Thread(target=_cursor_consumer, args=(
        server.client(other_key), other_cursor, other_total, threading.Lock(), deadline)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    everything = list(range(1, TOTAL + 1))
    for seen in native:
        assert seen == everything
    assert other_cursor == everything
    # Two pollers on one cursor split the stream: disjoint, each in order, together complete.
    a, b = same_cursor
    assert a == sorted(a) and b == sorted(b)
    assert sorted(a + b) == everything
