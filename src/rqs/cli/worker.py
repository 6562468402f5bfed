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
from pathlib import Path

import click

from rqs.cli.common import load_settings, store_options
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


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit")
@click.option("--log-level", default=None, help="debug, info, warning (env: RQS_LOG_LEVEL)")
@store_options
def worker(once: bool, log_level: str | None, data_dir: Path | None,
           database_url: str | None) -> None:
    """Deliver events to subscribed callbacks (RQS_RETRY_SCHEDULE, RQS_ALLOW_PRIVATE_CALLBACKS)."""
    settings = load_settings(log_level=log_level, data_dir=data_dir, database_url=database_url)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options_from(settings)
        sent = asyncio.run(run_worker(settings, once))
    except RqsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"sent {sent} callback request(s)")


def register(group: click.Group) -> None:
    group.add_command(worker)
