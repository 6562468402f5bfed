"""The ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from rqs.errors import RqsError
from rqs.service.push_admin import push_for
from rqs.service.queue import Clock, ResponseQueue
from rqs.settings import Settings
from rqs.storage import open_storage
from rqs.storage.base import Storage
from rqs.web import dashboard, docs, mapp, native, responsys, subscriptions

log = logging.getLogger("rqs.web")


async def _purge_forever(queue: ResponseQueue) -> None:
    while True:
        await asyncio.sleep(queue.settings.purge_interval_seconds)
        try:
            await queue.purge()
        except RqsError as exc:
            log.warning("purge skipped: %s", exc)
        except Exception:
            log.exception("purge failed")


def create_app(
    settings: Settings,
    storage: Storage | None = None,
    *,
    clock: Clock = time.time,
    background: bool = True,
) -> Starlette:
    """The rqs app. Pass ``storage`` to share an opened one (the app then leaves it open)."""
    owned = storage is None
    store = storage if storage is not None else open_storage(settings)
    queue = ResponseQueue(store, settings, clock)
    push = push_for(queue)  # push delivery; ingest through ``queue`` wakes its worker

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owned:
            await store.open()
        # Every streamed response runs in an anyio task group, and anyio imports its
        # asyncio backend on first use: 14 ms of the first read after a start.
        async with anyio.create_task_group():
            pass
        tasks = [asyncio.create_task(_purge_forever(queue))] if background else []
        tasks += push.start(background)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await push.close()
            if owned:
                await store.close()

    routes: list[BaseRoute] = [*native.routes, *mapp.routes, *responsys.routes,
                               *subscriptions.routes, *docs.routes, *dashboard.routes]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.queue = queue
    app.state.push = push
    app.state.settings = settings
    return app
