"""Fixtures for push delivery: a real rqs server, a real receiver, workers driven by hand.

The server runs without its background loop; tests build ``DeliveryWorker``s on the
server's own storage and call ``run_once(now)`` with the server's FakeClock, so retry
schedules are crossed by moving the clock, never by sleeping. The retry schedule is
``1,2,5`` seconds and jitter is pinned to zero (a fixed ``random()`` of 0.5).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from rqs.service.delivery import DeliveryWorker, RunStats
from rqs.service.delivery_options import options_from
from rqs.settings import Settings
from rqs.storage import open_storage
from rqs.storage.base import Storage
from tests.delivery.receiver import Receiver
from tests.support import FakeClock, Server, running_server

SCHEDULE = (1, 2, 5)


class NoJitter:
    def random(self) -> float:
        return 0.5  # the middle of the +-20% band: delays are exactly the schedule


@dataclass
class Env:
    server: Server
    receiver: Receiver
    api: httpx.Client
    workers: list[DeliveryWorker] = field(default_factory=list)
    riid: int = 0
    own_storage: Storage | None = None  # PostgreSQL: the test loop's own pool

    @property
    def clock(self) -> FakeClock:
        return self.server.clock

    @property
    def storage(self) -> Storage:
        """Workers' storage. SQLite: the server's own (one process owns the file; its writer
        and readers serve any event loop). PostgreSQL: a pool opened on the test's loop,
        like a separate ``rqs worker`` process would have."""
        if self.own_storage is not None:
            return self.own_storage
        storage: Storage = self.server.app.state.queue.storage  # type: ignore[attr-defined]
        return storage

    def worker(self, **kw: Any) -> DeliveryWorker:
        w = DeliveryWorker(self.storage, options_from(self.server.settings), clock=self.clock,
                           rng=NoJitter(), **kw)
        self.workers.append(w)
        return w

    async def deliver(self, worker: DeliveryWorker | None = None) -> RunStats:
        """One pass at the current (fake) time."""
        return await (worker or self.default_worker).run_once(self.clock.now)

    @property
    def default_worker(self) -> DeliveryWorker:
        return self.workers[0] if self.workers else self.worker()

    # --- API shortcuts ----------------------------------------------------------------

    def callback(self, name: str, path: str | None = None, *, batch_size: int = 200,
                 backup: str | None = None, user: str = "hook", password: str = "s3cret",
                 **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "url": self.receiver.url(path or name),
                                "batch_size": batch_size,
                                "basic_auth": {"user_name": user, "password": password}}
        if backup:
            body["backup_url"] = self.receiver.url(backup)
        body.update(extra)
        r = self.api.post("/v1/callbacks", json=body)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        for p in {path or name, backup} - {None}:
            assert p is not None
            self.receiver.accept(p, [created["signing_secret"]], user, password)
        return created

    def subscribe(self, name: str, callback: str, types: list[str] | None = None,
                  **extra: Any) -> dict[str, Any]:
        body = {"name": name, "callback": callback,
                "event_types": types or ["EMAIL_BOUNCED", "EMAIL_CLICKED"], **extra}
        r = self.api.post("/v1/subscriptions", json=body)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    def ingest(self, n: int, type_name: str = "EMAIL_BOUNCED",
               campaign: str = "Spring") -> list[str]:
        """``n`` Responsys-shaped events with increasing riids; returns the riids."""
        items = []
        for _ in range(n):
            self.riid += 1
            items.append({"failureType": type_name, "channelType": "Email",
                          "riid": str(self.riid), "campaignName": campaign,
                          "customerId": f"C{self.riid}"})
        r = self.api.post("/v1/events", content=json.dumps(items).encode(),
                          headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        return [str(i["riid"]) for i in items]

    def get(self, path: str) -> Any:
        r = self.api.get(path)
        assert r.status_code == 200, r.text
        return r.json()


def delivery_settings(tmp_path: Path, **changes: Any) -> Settings:
    # NORMAL: these tests are about delivery, not durability; it keeps commits fast.
    values: dict[str, Any] = {"data_dir": tmp_path, "retry_schedule": SCHEDULE,
                              "allow_private_callbacks": True, "sqlite_synchronous": "NORMAL"}
    return Settings(**(values | changes))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()
    assert r.problems == [], r.problems


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Override per test with ``@pytest.mark.parametrize("settings", [{...}], indirect=True)``;
    ``{"postgres": True}`` runs the server on a fresh PostgreSQL database (see BACKENDS)."""
    params = dict(getattr(request, "param", {}))
    if params.pop("postgres", False):
        params["database_url"] = request.getfixturevalue("pg_url")
    return delivery_settings(tmp_path, **params)


# For tests that must hold on every backend: @pytest.mark.parametrize("settings", BACKENDS, ...)
BACKENDS = [pytest.param({}, id="sqlite"),
            pytest.param({"postgres": True}, id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    with running_server(settings) as srv:
        yield srv


@pytest.fixture
async def env(server: Server, receiver: Receiver) -> AsyncIterator[Env]:
    e = Env(server, receiver, server.client())
    if server.settings.database_url:
        e.own_storage = open_storage(server.settings)
        await e.own_storage.open()
    try:
        yield e
    finally:
        for w in e.workers:
            await w.close()
        if e.own_storage is not None:
            await e.own_storage.close()


def live_server(settings: Settings) -> AbstractContextManager[Server]:
    """rqs with its background loops on and the real clock, as ``rqs serve`` runs it."""
    return running_server(settings, live=True)
