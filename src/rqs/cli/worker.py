"""``rqs worker``: push delivery in a process of its own, next to or instead of ``rqs serve``.

With PostgreSQL, run as many as you like: lanes are leased in the database, so no batch is
sent by two workers at once. With SQLite, ``rqs serve`` already delivers; run a worker only
with ``RQS_DELIVERY_IN_SERVE=0`` on the server (one process should own the file's writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import click

from rqs.cli.common import load_settings, settings_options
from rqs.errors import RqsError
from rqs.service.delivery import DeliveryWorker
from rqs.service.delivery_options import options_from
from rqs.settings import Settings
from rqs.storage import open_storage


async def run_worker(settings: Settings, once: bool) -> int:
    storage = open_storage(settings)
    await storage.open()
    worker = DeliveryWorker(storage, options_from(settings))
    try:
        if once:
            stats = await worker.run_once()
            return stats.requests
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(worker.run_forever())
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on every platform
                loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return worker.totals.requests
    finally:
        await worker.close()
        await storage.close()


# What only the HTTP service uses.
_SERVE_ONLY = ("host", "port", "workers", "max_batch_items", "max_body_bytes",
               "max_poll_limit", "default_poll_limit", "delivery_in_serve", "access_log")


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit")
@settings_options(skip=_SERVE_ONLY)
def worker(once: bool, **overrides: Any) -> None:
    """Deliver events to subscribed callbacks. Every flag mirrors an RQS_* variable."""
    settings = load_settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sent = asyncio.run(run_worker(settings, once))
    except RqsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"sent {sent} callback request(s)")


def register(group: click.Group) -> None:
    group.add_command(worker)
