"""A real webhook receiver for the delivery tests: aiohttp on 127.0.0.1, in its own thread.

Every request is checked the way a careful customer would: the Standard Webhooks signature
with the independent ``standardwebhooks`` package (against each expected secret), and the
Basic credentials. Anything wrong is recorded in ``problems``, which the fixture asserts
empty after each test. Responses can be scripted per path (fail, 429, 410, slow...).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Hit:
    path: str
    msg_id: str
    body: bytes
    status: int
    at: float  # time.monotonic() when it arrived

    @property
    def events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.body)
        return found


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Expect:
    secrets: list[str]
    user: str | None = None
    password: str | None = None


class Receiver:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.problems: list[str] = []
        self.expect: dict[str, Expect] = {}
        self.script: dict[str, deque[Reply]] = defaultdict(deque)
        self.default: dict[str, Reply] = {}
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)
        self.arrived = threading.Condition()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1024)
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None

    # --- configuration, from the test thread ------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def accept(self, path: str, secrets: list[str], user: str | None = None,
               password: str | None = None) -> None:
        self.expect[path] = Expect(secrets, user, password)

    def respond(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with these, then with the default."""
        self.script[path].extend(replies)

    def set_default(self, path: str, reply: Reply | None) -> None:
        if reply is None:
            self.default.pop(path, None)
        else:
            self.default[path] = reply

    # --- reading what arrived ------------------------------------------------------------

    def ok(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path and 200 <= h.status < 300]

    def tried(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def riids(self, path: str) -> list[str]:
        return [str(e["riid"]) for h in self.ok(path) for e in h.events]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        with self.arrived:
            return bool(self.arrived.wait_for(predicate, timeout))

    # --- the server ----------------------------------------------------------------------

    def start(self) -> Receiver:
        self._thread.start()
        self._started.wait()
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._sock.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.SockSite(self._runner, self._sock)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    def _check(self, path: str, request: web.Request, body: bytes) -> None:
        exp = self.expect.get(path)
        if exp is None:
            self.problems.append(f"{path}: no expectation configured")
            return
        headers = dict(request.headers)
        for secret in exp.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError as exc:
                self.problems.append(f"{path}: signature check failed with a secret: {exc}")
        if exp.user is not None:
            want = "Basic " + base64.b64encode(f"{exp.user}:{exp.password}".encode()).decode()
            if request.headers.get("Authorization") != want:
                self.problems.append(f"{path}: wrong or missing Basic credentials")
        if request.headers.get("Content-Type") != "application/json":
            self.problems.append(f"{path}: content type {request.headers.get('Content-Type')}")
        try:
            if not isinstance(json.loads(body), list):
                self.problems.append(f"{path}: the body is not a JSON array")
        except ValueError:
            self.problems.append(f"{path}: the body is not JSON")

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        self._check(path, request, body)
        script = self.script[path]
        reply = script.popleft() if script else self.default.get(path, Reply())
        self.in_flight[path] += 1
        self.max_in_flight[path] = max(self.max_in_flight[path], self.in_flight[path])
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        finally:
            self.in_flight[path] -= 1
        hit = Hit(path, request.headers.get("webhook-id", ""), body, reply.status,
                  time.monotonic())
        with self.arrived:
            self.hits.append(hit)
            self.arrived.notify_all()
        return web.Response(status=reply.status, headers=reply.headers, text="")
