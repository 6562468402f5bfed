"""Test support: a real rqs server on a loopback socket, in a thread of the test process.

The listening socket is bound before the server starts, so clients can connect at once:
the kernel queues them until the server accepts, and no test waits for start-up.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources

import httpx
import uvicorn

from rqs.service import keys
from rqs.settings import Settings
from rqs.storage import open_storage
from rqs.web.app import create_app


def samples() -> list[dict[str, object]]:
    """Every Responsys sample payload (the package bundles Oracle's samples)."""
    text = resources.files("rqs.data").joinpath("responsys-event-samples.json").read_text()
    return [s["payload"] for s in json.loads(text)]


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Server:
    url: str
    settings: Settings
    admin: keys.NewKey
    clock: FakeClock
    app: object = None
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, key: keys.NewKey | None = None, **kw: object) -> httpx.Client:
        k = key or self.admin
        c = httpx.Client(base_url=self.url, auth=(k.key.id, k.secret), timeout=60, **kw)  # type: ignore[arg-type]
        self._clients.append(c)
        return c

    def new_key(self, scope: str, domain: str = "default", name: str = "test") -> keys.NewKey:
        if domain != self.admin.key.domain:
            # The API lets an admin key manage its own domain only; the operator (CLI) can
            # create keys anywhere, as this does.
            return create_key(self.settings, scope, domain, name)
        r = self.client().post("/v1/keys", json={"name": name, "scope": scope})
        assert r.status_code == 201, r.text
        return _key_from_json(r.json())


def _key_from_json(body: dict[str, str]) -> keys.NewKey:
    from rqs.storage.base import ApiKey

    return keys.NewKey(ApiKey(body["id"], body["name"], body["scope"], body["domain"], "", 0),
                       body["secret"])


def create_key(settings: Settings, scope: str, domain: str, name: str) -> keys.NewKey:
    async def run() -> keys.NewKey:
        storage = open_storage(settings)
        await storage.open()
        try:
            return await keys.create_key(storage, name, scope, domain)
        finally:
            await storage.close()

    return asyncio.run(run())


def bootstrap_admin(settings: Settings) -> keys.NewKey:
    return create_key(settings, "admin", "default", "test admin")


@contextmanager
def running_server(
    settings: Settings, clock: FakeClock | None = None, *, live: bool = False
) -> Iterator[Server]:
    """``live``: background loops on and the real clock, as ``rqs serve`` runs it."""
    clock = clock or FakeClock()
    admin = bootstrap_admin(settings)
    app = create_app(settings, clock=time.time if live else clock, background=live)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, loop="asyncio", http="httptools", log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    srv = Server(f"http://127.0.0.1:{port}", settings, admin, clock, app)
    try:
        yield srv
    finally:
        for c in srv._clients:
            c.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
