"""PostgreSQL restarts under a running rqs: 503 with Retry-After while it is gone, recovery
on its own when it returns, and no acknowledged event lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.system import procs

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pg_ctlcluster is needed to restart PostgreSQL in this test")
        pytest.skip("no local PostgreSQL cluster to restart")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0


@pytest.fixture
def cluster() -> Iterator[list[str]]:
    ctl = _cluster()
    yield ctl
    if not _ready():  # never leave the machine without its database
        subprocess.run([*ctl, "start"], check=True)


def test_restart_gives_503_then_recovers_without_loss(
    tmp_path: Path, pg_url: str, cluster: list[str]
) -> None:
    key = procs.create_key(tmp_path, extra=("--database-url", pg_url))
    port = procs.free_port()
    server = procs.start(tmp_path, port, "--database-url", pg_url)
    url = f"http://127.0.0.1:{port}"
    acked: set[str] = set()
    try:
        with httpx.Client(base_url=url, auth=(key["id"], key["secret"]), timeout=30) as c:
            def send(n: int) -> httpx.Response:
                batch = [{"type": "SMS_INBOUND", "id": f"e{n}-{i}", "data": {"message": "STOP"}}
                         for i in range(50)]
                r = c.post("/v1/events", json=batch)
                if r.status_code == 200:
                    acked.update(b["id"] for b in batch)
                return r

            assert send(0).status_code == 200
            subprocess.run([*cluster, "stop", "-m", "fast"], check=True)
            started = time.monotonic()
            down = send(1)
            assert down.status_code == 503, down.text
            assert int(down.headers["retry-after"]) >= 1
            assert c.get("/v1/events").status_code == 503
            assert time.monotonic() - started < 25, "requests must fail fast, not hang"

            subprocess.run([*cluster, "start"], check=True)
            deadline = time.monotonic() + 60
            n = 2
            while send(n).status_code != 200:  # recovery is the pool reconnecting by itself
                assert time.monotonic() < deadline, "rqs did not recover after the restart"
                n += 1
                time.sleep(0.2)
            events = c.get("/v1/events?limit=100000").json()["events"]
    finally:
        server.terminate()
        server.wait()
    stored = {e["id"] for e in events}
    assert acked <= stored
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))
