"""kill -9 during sustained ingest: every acknowledged event survives, indexes stay gapless."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.system import procs

pytestmark = pytest.mark.slow


def test_kill_9_during_ingest_loses_no_acknowledged_event(tmp_path: Path) -> None:
    key = procs.create_key(tmp_path)
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    server = procs.start(tmp_path, port)
    acked: dict[str, int] = {}  # event id -> index the server acknowledged
    enough = threading.Event()
    stop = threading.Event()

    def ingest(worker: int) -> None:
        with httpx.Client(base_url=url, auth=(key["id"], key["secret"]), timeout=30) as c:
            batch_no = 0
            while not stop.is_set():
                ids = [f"w{worker}-b{batch_no}-{i}" for i in range(200)]
                batch = [{"type": "EMAIL_CLICKED", "id": x, "data": {"riid": x}} for x in ids]
                try:
                    r = c.post("/v1/events", json=batch)
                except httpx.HTTPError:
                    return  # the server died under us: this batch was never acknowledged
                if r.status_code == 200:
                    acked.update(zip(ids, r.json()["indexes"], strict=True))
                    if len(acked) >= 6_000:
                        enough.set()
                batch_no += 1

    workers = [threading.Thread(target=ingest, args=(w,)) for w in range(3)]
    for w in workers:
        w.start()
    assert enough.wait(timeout=120), "ingest did not get going"
    os.kill(server.pid, signal.SIGKILL)  # mid-stream: requests are in flight right now
    server.wait()
    stop.set()
    for w in workers:
        w.join()

    restarted = procs.start(tmp_path, port)
    try:
        with httpx.Client(base_url=url, auth=(key["id"], key["secret"]), timeout=60) as c:
            events = c.get("/v1/events?limit=100000").json()["events"]
    finally:
        restarted.terminate()
        restarted.wait()
    indexes = [e["index"] for e in events]
    assert indexes == list(range(1, len(indexes) + 1)), "indexes must stay gapless"
    stored = {e["id"]: e["index"] for e in events}
    missing = {i for i in acked if i not in stored}
    assert not missing, f"{len(missing)} acknowledged events were lost"
    assert all(stored[i] == idx for i, idx in acked.items())
